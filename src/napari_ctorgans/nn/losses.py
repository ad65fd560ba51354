"""Segmentation losses: the IOU loss and its power family, the Dice loss, weighted cross-entropy, class weights.

Definitions (SPEC section 5; Rister et al. section V-C; 001 section 2.3), per class ``l`` with probabilities ``p``
and binary labels ``y`` summed over the voxels of one example:

* IOU loss (eq. 5, power family eq. 8): ``L = 1 - sum(p^m y) / (sum(p^m) + sum(y) - sum(p^m y))``
* Dice loss (eq. 6): ``L = 1 - 2 sum(p^m y) / (sum(p^m) + sum(y))``
* both are **1 when p = y = 0** (the class is absent and predicted absent), the value the paper chooses so the loss is
  smooth; it is then constant (no gradient) in that example.
* multi-class: ``L_MD = (1/L) sum_l w_l L_l`` (001 eq. 6) with weights from :func:`class_weights`
  (uniform ``1``, simple ``N / (L |R_l| + eps)``, square ``N / (L |R_l|^2 + eps)``, ``eps = 1``), then the mean over
  the batch.

All functions take ``probs`` of shape ``(N, C, D, H, W)`` (softmax output; any number of spatial axes works) and
``target`` either one-hot of the same shape or integer labels ``(N, D, H, W)``. Integer voxels equal to
``ignore_index`` (``ct.organs.IGNORE_LABEL = 255`` for "not labelled") are left out of every sum.
:func:`get_loss` builds a callable that takes logits (default) or probabilities, for the training loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..organs import DEFAULT_CLASSES, IGNORE_LABEL

__all__ = [
    "iou_loss",
    "dice_loss",
    "weighted_cross_entropy",
    "class_weights",
    "get_loss",
    "SegmentationLoss",
    "LOSSES",
    "WEIGHTING_SCHEMES",
]

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


# ------------------------------------------------------------------------------------------------- class weights
#: the class-weighting schemes of :func:`class_weights`
WEIGHTING_SCHEMES = ("uniform", "simple", "square", "sqrt")


def class_weights(
    labels: Any,
    scheme: str = "uniform",
    *,
    num_classes: int | None = None,
    eps: float = 1.0,
    ignore_index: int | None = IGNORE_LABEL,
) -> torch.Tensor:
    """Class weights for the multi-class Dice/IOU loss (001, eqs. 3-5).

    ``uniform``: ``W_l = 1``; ``simple``: ``W_l = N / (L |R_l| + eps)``; ``square``: ``W_l = N / (L |R_l|^2 + eps)``;
    ``sqrt``: the square root of ``simple`` (between uniform and simple: rare classes count more, without the
    false positives that full inverse-frequency weights give cross-entropy), with ``N`` the number of labelled voxels, ``L = num_classes`` and ``|R_l|`` the voxel count of class ``l``.

    Parameters
    ----------
    labels : array, Tensor, or sequence of them
        Integer label maps (the whole training set, or one batch).
    scheme : {"uniform", "simple", "square", "sqrt"}
    num_classes : int, optional
        ``L``, the number of classes the model predicts (default: the organ table's, background included: 6).
    eps : float, optional
        Avoids division by zero (001 uses 1).
    ignore_index : int or None, optional
        Label not counted (unlabelled voxels).

    Returns
    -------
    Tensor, shape (num_classes,), float32

    Examples
    --------
    >>> import numpy as np
    >>> from napari_ctorgans.nn import losses
    >>> losses.class_weights(np.array([0, 0, 0, 1]), "simple", num_classes=2).tolist()
    [0.5714285969734192, 1.3333333730697632]
    """
    if scheme not in WEIGHTING_SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(map(repr, WEIGHTING_SCHEMES))}, got {scheme!r}")
    if num_classes is None:
        num_classes = DEFAULT_CLASSES
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    if float(eps) < 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    parts = labels if isinstance(labels, (list, tuple)) else [labels]
    counts = np.zeros(num_classes, dtype=np.float64)
    for part in parts:
        arr = part.detach().cpu().numpy() if isinstance(part, torch.Tensor) else np.asarray(part)
        if arr.dtype.kind not in "iub":
            raise TypeError(f"labels must be integer label maps, got dtype {arr.dtype}")
        flat = arr.ravel().astype(np.int64)
        if ignore_index is not None:
            flat = flat[flat != ignore_index]
        if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
            bad = flat.min() if flat.min() < 0 else flat.max()
            raise ValueError(f"labels contain {bad}, outside [0, num_classes={num_classes}); pass num_classes")
        counts += np.bincount(flat, minlength=num_classes)
    n = counts.sum()
    if scheme == "uniform":
        w = np.ones(num_classes)
    elif scheme == "simple":
        w = n / (num_classes * counts + eps)
    elif scheme == "sqrt":
        w = np.sqrt(n / (num_classes * counts + eps))
    else:
        w = n / (num_classes * counts**2 + eps)
    return torch.as_tensor(w, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------------- factory
class SegmentationLoss(torch.nn.Module):
    """A loss ``loss(pred, target) -> scalar`` built by :func:`get_loss` (see there)."""

    def __init__(
        self,
        name: str,
        *,
        from_logits: bool = True,
        power: float = 1.0,
        weighting: str | Sequence[float] | torch.Tensor = "uniform",
        ignore_index: int | None = IGNORE_LABEL,
        include_background: bool = True,
        batch: bool = False,
        cross_entropy_weight: float = 0.0,
    ) -> None:
        super().__init__()
        key = loss_name(name)
        if key not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
        self.name = key
        self.from_logits = bool(from_logits)
        self.power = _check_power(power)
        if isinstance(weighting, str):
            if weighting not in ("uniform", "simple", "square"):
                raise ValueError(f"weighting must be 'uniform', 'simple', 'square' or C numbers, got {weighting!r}")
            self.weighting: Any = weighting
        else:
            self.weighting = torch.as_tensor(np.asarray(weighting, dtype=np.float64))
        self.ignore_index = ignore_index
        self.include_background = include_background
        self.batch = batch
        self.cross_entropy_weight = float(cross_entropy_weight)
        if not (self.cross_entropy_weight >= 0.0 and np.isfinite(self.cross_entropy_weight)):
            raise ValueError(f"cross_entropy_weight must be a finite number >= 0, got {cross_entropy_weight!r}")
        if self.cross_entropy_weight and key == "cross_entropy":
            raise ValueError("cross_entropy_weight adds cross-entropy to the 'iou' or 'dice' loss; "
                             "the 'cross_entropy' loss needs no extra term")

    def _weights(self, target: torch.Tensor, n_classes: int) -> Any:
        if not isinstance(self.weighting, str):
            return self.weighting
        if self.weighting == "uniform":
            return None
        labels = target.argmax(1) if target.shape[1:2] == (n_classes,) and target.is_floating_point() else target
        return class_weights(labels, self.weighting, num_classes=n_classes, ignore_index=self.ignore_index)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.from_logits:
            if not isinstance(pred, torch.Tensor) or pred.ndim < 3:
                raise ValueError("pred must be logits of shape (N, C, *spatial)")
            if not bool(torch.isfinite(pred).all()):
                raise ValueError("logits contain NaN or infinite values; lower the learning rate or check the input")
            probs = torch.softmax(pred, dim=1)
        else:
            probs = pred
        weights = self._weights(target, probs.shape[1])
        if self.name == "cross_entropy":
            return weighted_cross_entropy(probs, target, weights=weights, ignore_index=self.ignore_index)
        fn = iou_loss if self.name == "iou" else dice_loss
        loss = fn(
            probs, target, power=self.power, weights=weights, ignore_index=self.ignore_index,
            include_background=self.include_background, batch=self.batch,
        )
        if self.cross_entropy_weight > 0:
            # plain (unweighted) cross-entropy: its gradient does not vanish where the softmax saturates, so a
            # small organ that the overlap score has driven to p ~ 0 early in training can still come back
            ones = torch.ones(probs.shape[1], dtype=probs.dtype, device=probs.device)
            loss = loss + self.cross_entropy_weight * weighted_cross_entropy(
                probs, target, weights=ones, ignore_index=self.ignore_index)
        return loss

    def extra_repr(self) -> str:
        extra = f", cross_entropy_weight={self.cross_entropy_weight}" if self.cross_entropy_weight else ""
        return (f"name={self.name!r}, from_logits={self.from_logits}, power={self.power}, "
                f"weighting={self.weighting!r}{extra}")


LOSSES = ("iou", "dice", "cross_entropy")
_ALIASES = {"jaccard": "iou", "wce": "cross_entropy", "ce": "cross_entropy", "weighted_cross_entropy": "cross_entropy"}


def loss_name(name: str) -> str:
    """The canonical name of a loss (``"jaccard"`` -> ``"iou"``, ``"wce"`` -> ``"cross_entropy"``, ...)."""
    key = str(name).lower().replace("-", "_")
    return _ALIASES.get(key, key)


def get_loss(name: str, **kwargs: Any) -> SegmentationLoss:
    """Build a loss module by name, for the training loop.

    Parameters
    ----------
    name : {"iou", "dice", "cross_entropy"}
        Also accepted: "jaccard" (= "iou"), "wce" / "ce" / "weighted_cross_entropy" (= "cross_entropy").
    from_logits : bool, default True
        True: the callable takes raw network output (logits) and applies ``softmax(dim=1)``. False: it takes
        probabilities, which are validated (in [0, 1], summing to one).
    power : float, default 1
        The power-family exponent ``m`` (IOU and Dice only).
    weighting : {"uniform", "simple", "square"} or C numbers, default "uniform"
        Class weights. A scheme name computes 001's weights from each call's ``target`` (batch statistics);
        for dataset-wide weights compute them once with :func:`class_weights` and pass the numbers.
        For "cross_entropy", "uniform" means the default balancing of :func:`weighted_cross_entropy`.
    ignore_index : int or None, default 255 (``ct.organs.IGNORE_LABEL``)
        Integer label of unlabelled voxels, left out of the loss.
    include_background, batch : bool
        As in :func:`iou_loss`.
    cross_entropy_weight : float, default 0
        IOU and Dice only: add this multiple of the plain cross-entropy. The overlap score alone lets a small,
        low-contrast organ die early in training: once its softmax probability is near 0 everywhere, the gradient
        through the softmax vanishes. The cross-entropy gradient does not. On phantoms, pure IOU left the bladder at
        Dice 0; the ``cpu-quick`` preset uses 0.5 and reaches 0.93 (docs/training.md).

    Returns
    -------
    SegmentationLoss
        A ``torch.nn.Module``; ``loss(pred, target)`` returns a scalar tensor.

    Examples
    --------
    >>> import torch
    >>> from napari_ctorgans.nn.losses import get_loss
    >>> loss = get_loss("iou", power=1, weighting="simple")
    >>> logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    >>> target = torch.randint(0, 3, (2, 4, 4, 4))
    >>> loss(logits, target).backward()
    """
    return SegmentationLoss(name, **kwargs)
