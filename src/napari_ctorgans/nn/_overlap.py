"""The loss functions themselves: the IOU loss and its power family, the Dice loss, weighted cross-entropy.

Public through :mod:`napari_ctorgans.nn.losses` (definitions there); this module holds their input checks and sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..organs import IGNORE_LABEL

_SUM_TOL = 1e-3


# --------------------------------------------------------------------------------------------- validation helpers
def _check_probs(probs: Any, *, check_simplex: bool = True) -> torch.Tensor:
    if not isinstance(probs, torch.Tensor):
        raise TypeError(f"probs must be a torch.Tensor of shape (N, C, D, H, W), got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise TypeError(f"probs must be a floating-point tensor, got dtype {probs.dtype}")
    if probs.ndim < 3:
        raise ValueError(
            f"probs must have shape (N, C, *spatial) such as (N, C, D, H, W), got shape {tuple(probs.shape)}"
        )
    if not bool(torch.isfinite(probs.detach()).all()):
        raise ValueError("probs contains NaN or infinite values; check the model output and the learning rate")
    if check_simplex:
        lo, hi = float(probs.detach().min()), float(probs.detach().max())
        if lo < -_SUM_TOL or hi > 1 + _SUM_TOL:
            raise ValueError(
                f"probs must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                "pass softmax(logits, dim=1) or use get_loss(..., from_logits=True)"
            )
        if probs.shape[1] > 1:
            err = float((probs.detach().sum(dim=1) - 1).abs().max())
            if err > _SUM_TOL * max(1, probs.shape[1]):
                raise ValueError(
                    f"probs must sum to one over the class axis (dim 1), but a voxel is off by {err:.4g}; "
                    "pass softmax(logits, dim=1), not sigmoid or raw logits"
                )
    return probs


def _prepare(
    probs: Any, target: Any, ignore_index: int | None, *, check_simplex: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Return (probs, one-hot target as probs.dtype, mask (N, 1, *spatial) or None)."""
    probs = _check_probs(probs, check_simplex=check_simplex)
    if not isinstance(target, torch.Tensor):
        if isinstance(target, np.ndarray):
            target = torch.from_numpy(target)
        else:
            raise TypeError(f"target must be a torch.Tensor (one-hot or integer labels), got {type(target).__name__}")
    target = target.to(probs.device)
    n_classes = probs.shape[1]
    if target.shape == probs.shape and (target.is_floating_point() or target.dtype == torch.bool or n_classes > 1):
        target = target.to(probs.dtype)
        if not bool(torch.isfinite(target).all()):
            raise ValueError("target contains NaN or infinite values")
        lo, hi = float(target.min()), float(target.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"one-hot target must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]")
        return probs, target, None
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(
            f"target of shape {tuple(target.shape)} and dtype {target.dtype} does not match probs of shape "
            f"{tuple(probs.shape)}: pass a one-hot float target of the same shape or integer labels of shape "
            f"{(probs.shape[0], *probs.shape[2:])}"
        )
    if target.ndim == probs.ndim and target.shape[1] == 1:
        target = target[:, 0]
    expected = (probs.shape[0], *probs.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target has shape {tuple(target.shape)} but probs has shape {tuple(probs.shape)}; integer labels must "
            f"have shape {expected} (N, *spatial), one-hot targets shape {tuple(probs.shape)}"
        )
    target = target.long()
    mask = None
    if ignore_index is not None:
        valid = target != ignore_index
        if not bool(valid.all()):
            mask = valid.unsqueeze(1)
            target = torch.where(valid, target, torch.zeros_like(target))
    if target.numel():
        lo, hi = int(target.min()), int(target.max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"target contains label {bad} but probs has {n_classes} classes (dim 1): labels must be in "
                f"[0, {n_classes - 1}]" + ("" if ignore_index is None else f" or equal ignore_index={ignore_index}")
                + "; check num_classes or pass ignore_index for unlabelled voxels"
            )
    one_hot = F.one_hot(target, n_classes).movedim(-1, 1).to(probs.dtype)
    if mask is not None:
        one_hot = one_hot * mask
    return probs, one_hot, mask


def _as_weights(weights: Any, n_classes: int, like: torch.Tensor) -> torch.Tensor | None:
    if weights is None:
        return None
    w = torch.as_tensor(np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights,
                                   dtype=np.float64))
    if w.ndim != 1 or w.numel() != n_classes:
        raise ValueError(
            f"weights must have one value per class ({n_classes}, the size of probs' dim 1), got shape {tuple(w.shape)}"
        )
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}")
    return w.to(device=like.device, dtype=like.dtype)


def _check_power(power: float) -> float:
    power = float(power)
    if not np.isfinite(power) or power <= 0:
        raise ValueError(f"power must be a positive number (the m of the power family, 1 = plain IOU), got {power!r}")
    return power


# ------------------------------------------------------------------------------------------------ overlap losses
def _overlap_loss(
    kind: str,
    probs: Any,
    target: Any,
    *,
    power: float,
    weights: Any,
    ignore_index: int | None,
    include_background: bool,
    batch: bool,
    reduction: str,
) -> torch.Tensor:
    power = _check_power(power)
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    p, y, mask = _prepare(probs, target, ignore_index)
    n_classes = p.shape[1]
    w = _as_weights(weights, n_classes, p)
    if power > 1.0:
        p = p**power
    elif power < 1.0:
        # p^m with the (infinite) derivative at p = 0 replaced by 0, the value kept exact
        p = torch.where(p > 0, p.clamp_min(torch.finfo(p.dtype).tiny) ** power, torch.zeros_like(p))
    if mask is not None:
        p = p * mask
    dims = tuple(range(2, p.ndim))
    inter = (p * y).sum(dims)  # (N, C)
    sum_p = p.sum(dims)
    sum_y = y.sum(dims)
    if batch:
        inter, sum_p, sum_y = inter.sum(0, keepdim=True), sum_p.sum(0, keepdim=True), sum_y.sum(0, keepdim=True)
    if kind == "iou":
        num, den = inter, sum_p + sum_y - inter
    else:
        num, den = 2 * inter, sum_p + sum_y
    empty = den <= 0
    # the paper's convention: the loss is 1 at p = y = 0 (the score 0/0 is taken as 0)
    score = torch.where(empty, torch.zeros_like(num), num / torch.where(empty, torch.ones_like(den), den))
    loss = 1 - score  # (N or 1, C)
    if w is not None:
        loss = loss * w
    if not include_background:
        loss = loss[:, 1:]
    if reduction == "none":
        return loss
    return loss.mean()


def iou_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    power: float = 1.0,
    weights: Any = None,
    ignore_index: int | None = None,
    include_background: bool = True,
    batch: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Smooth IOU (Jaccard) loss of Rister et al. eq. 5, with the power family of eq. 8.

    Parameters
    ----------
    probs : Tensor, shape (N, C, D, H, W)
        Class probabilities (softmax over dim 1), in [0, 1] and summing to one per voxel.
    target : Tensor, shape (N, C, D, H, W) float one-hot, or (N, D, H, W) integer labels
        Reference. Integer labels must be in ``[0, C)`` or equal ``ignore_index``.
    power : float, optional
        The exponent ``m > 0`` applied to ``probs`` (eq. 8); 1 is the plain IOU loss.
    weights : sequence of C floats or Tensor, optional
        Per-class weights ``w_l`` (see :func:`class_weights`); the loss is ``(1/C) sum_l w_l L_l``.
    ignore_index : int, optional
        Integer label that marks unlabelled voxels (``ct.organs.IGNORE_LABEL``); they are left out of every sum.
    include_background : bool, optional
        When False, class 0 is dropped from the average.
    batch : bool, optional
        Sum over the batch before taking the ratio (one IOU per class for the whole batch) instead of per example.
    reduction : {"mean", "none"}
        ``"none"`` returns the per-example, per-class losses, shape (N, C) (or (1, C) with ``batch=True``).

    Returns
    -------
    Tensor
        Scalar loss in [0, max(weights)] (or per-class losses). A class with ``p = y = 0`` contributes 1.

    Raises
    ------
    ValueError
        Probabilities outside [0, 1], not summing to one, NaN; labels >= C; mismatched shapes; bad ``power``.
    TypeError
        ``probs`` or ``target`` not a tensor.

    Examples
    --------
    >>> import torch
    >>> from napari_ctorgans.nn import losses
    >>> p = torch.tensor([[[0.25, 1.0], [0.75, 0.0]]])  # (N=1, C=2, 2 voxels)
    >>> y = torch.tensor([[1, 0]])
    >>> round(float(losses.iou_loss(p, y)), 4)  # class 0: 1 - 1/1.25, class 1: 1 - 0.75/1
    0.225
    """
    return _overlap_loss(
        "iou", probs, target, power=power, weights=weights, ignore_index=ignore_index,
        include_background=include_background, batch=batch, reduction=reduction,
    )


def dice_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    power: float = 1.0,
    weights: Any = None,
    ignore_index: int | None = None,
    include_background: bool = True,
    batch: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Soft Dice loss, eq. 6 of Rister et al.: ``1 - 2 sum(p y) / (sum(p) + sum(y))``, per class, averaged.

    Same parameters, conventions and errors as :func:`iou_loss` (``power`` applies ``p^m`` as in eq. 8; with
    ``weights`` from :func:`class_weights` this is the multi-class Dice loss ``L_MD`` of 001 eq. 6).

    Examples
    --------
    >>> import torch
    >>> from napari_ctorgans.nn import losses
    >>> p = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # voxel 0 is class 1, voxel 1 class 0
    >>> float(losses.dice_loss(p, torch.tensor([[1, 0]])))
    0.0
    >>> float(losses.dice_loss(p, torch.tensor([[0, 1]])))
    1.0
    """
    return _overlap_loss(
        "dice", probs, target, power=power, weights=weights, ignore_index=ignore_index,
        include_background=include_background, batch=batch, reduction=reduction,
    )


def weighted_cross_entropy(
    probs: torch.Tensor,
    target: torch.Tensor,
    *,
    weights: Any = None,
    ignore_index: int | None = None,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Weighted cross-entropy, eq. 4 of Rister et al.: ``(1/n) sum_k weight(y_k) * (-log p_k[y_k])``.

    Parameters
    ----------
    probs, target, ignore_index
        As in :func:`iou_loss`.
    weights : sequence of C floats, optional
        Weight of each class. Default: ``w_c = 1 - f_c`` with ``f_c`` the fraction of (labelled) voxels of class c
        in ``target``. For two classes this gives the foreground the weight ``1 - w`` and the background ``w``,
        where ``w = mean(y)``: the balancing the paper describes ("all objects weigh the same"; false positives
        are cheap, so the model exaggerates small objects). Eq. 4 as printed swaps the two; pass
        ``weights=(1 - w, w)`` to get that reading.
    eps : float, optional
        Probabilities are clamped to ``[eps, 1]`` before the logarithm.

    Returns
    -------
    Tensor
        Scalar: the weighted sum of voxel losses divided by the number of labelled voxels.

    Examples
    --------
    >>> import torch
    >>> from napari_ctorgans.nn import losses
    >>> p = torch.full((1, 2, 4), 0.5)
    >>> round(float(losses.weighted_cross_entropy(p, torch.tensor([[1, 0, 0, 0]]))), 4)  # (3*.25 + .75) log2 / 4
    0.2599
    """
    p, y, mask = _prepare(probs, target, ignore_index)
    n_classes = p.shape[1]
    w = _as_weights(weights, n_classes, p)
    n_valid = y.sum() if mask is None else mask.sum().to(p.dtype)
    if w is None:
        freq = y.sum(dim=tuple(d for d in range(y.ndim) if d != 1)) / n_valid.clamp_min(1)
        w = 1 - freq
    logp = torch.log(p.clamp(min=eps, max=1.0))
    voxel = -(y * logp * w.view(1, -1, *([1] * (p.ndim - 2)))).sum(1)
    return voxel.sum() / n_valid.clamp_min(1)
