"""Segmentation losses: the IOU loss and its power family, the Dice loss, weighted cross-entropy, class weights.

Definitions (SPEC section 5; Rister et al. section V-C; 001 section 2.3), per class ``l`` with probabilities ``p``
and binary labels ``y`` summed over the voxels of one example:

* IOU loss (eq. 5, power family eq. 8): ``L = 1 - sum(p^m y) / (sum(p^m) + sum(y) - sum(p^m y))``
* Dice loss (eq. 6): ``L = 1 - 2 sum(p^m y) / (sum(p^m) + sum(y))``
* both are **1 when p = y = 0** (the class is absent and predicted absent), the value the paper chooses so the loss is
  smooth; it is then constant (no gradient) in that example.
* multi-class: ``L_MD = (1/L) sum_l w_l L_l`` (001 eq. 6) with weights from :func:`class_weights`
  (uniform ``1``, simple ``N / (L |R_l| + eps)``, square ``N / (L |R_l|^2 + eps)``, ``eps = 1``, or sqrt, the
  square root of simple), then the mean over the batch.

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

from ..organs import DEFAULT_CLASSES, IGNORE_LABEL
from ._overlap import _check_power, dice_loss, iou_loss, weighted_cross_entropy

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
            if weighting not in WEIGHTING_SCHEMES:
                raise ValueError(f"weighting must be one of {', '.join(map(repr, WEIGHTING_SCHEMES))} or C numbers, "
                                 f"got {weighting!r}")
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
    weighting : {"uniform", "simple", "square", "sqrt"} (:data:`WEIGHTING_SCHEMES`) or C numbers, default "uniform"
        Class weights. A scheme name computes :func:`class_weights` from each call's ``target`` (batch statistics);
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
