"""Planning a prediction before any work: where the body is, which tiles, how much memory, how many tiles."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..contract import DEFAULT_OVERLAP
from ..resampling import Grid
from .sliding import _as_roi, _mirror_axes, tile_starts

__all__ = ["body_box", "TilePlan", "plan_tiles", "bytes_per_voxel", "MAX_TILE_PASSES", "DEFAULT_MEMORY_BUDGET"]

#: network memory allowed for one forward pass when predict chooses the tile (bytes)
DEFAULT_MEMORY_BUDGET = 1.0e9
#: more tile passes than this (tiles x TTA flips) are refused before any work starts
MAX_TILE_PASSES = 20_000
#: tiles may re-compute at most this many times the volume's voxels (overlap, TTA)
MAX_WORK_FACTOR = 64.0


def bytes_per_voxel(model) -> float:
    """Peak bytes per input voxel of one forward pass in inference mode, estimated from the model's widths.

    The widest full-resolution stage holds the skip, the upsampled and the concatenated features at once; every
    coarser level costs an eighth of the one above it. Models without a ``config`` count as 64 channels.
    """
    cfg = getattr(model, "config", None)
    if cfg is None:
        widest = 64
    elif getattr(cfg, "arch", "unet3d") == "inception_fcn":
        widest = int(64 * float(cfg.width))
    else:
        widest = int(cfg.base_width) * (2 if cfg.double_in_level else 1)
    classes = int(getattr(cfg, "num_classes", 6))
    # ~5 feature maps of the widest level live at once, the coarser levels add 1/7 of that; logits and softmax
    return 4.0 * (5 * widest * 8 / 7 + 3 * classes + 2)


def body_box(array: np.ndarray, source: Grid, work: Grid, *, margin_mm: float = 12.0,
             threshold_hu: float = -300.0, work_mm: float = 6.0,
             padding: tuple[float, float] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Index box ``(lo, hi)`` on the working grid ``work`` that holds the patient's body (couch and air left out).

    The body mask of :func:`ct.label_body` is computed on the scan subsampled by integer factors to about
    ``work_mm`` (a few hundred thousand voxels), so the cost is a small fraction of the prediction. Padding outside
    the reconstruction field reads as air there (:mod:`napari_ctorgans.padding`; ``padding``: the HU range of the
    DICOM padding tags, ``ct.padding.padding_range(volume)``). None when no body is found (not a CT in HU, or an
    empty scan): then the whole grid is used.
    """
    from ..labelers._common import strides
    from ..labelers.body import label_body
    from ..padding import fill_padding

    f = strides(source.spacing, work_mm)
    sub = np.ascontiguousarray(fill_padding(array[:: f[0], :: f[1], :: f[2]], padding=padding))
    sp = tuple(s * k for s, k in zip(source.spacing, f))
    try:
        with warnings.catch_warnings():  # "does not look like a CT": then the whole grid is used, said by None
            warnings.simplefilter("ignore")
            mask = label_body(sub, spacing=sp, thickness_mm=max(10.0, 2.5 * max(sp)), work_mm=0)
    except (ValueError, TypeError):
        return None
    if not mask.any():
        return None
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    lo_src = np.array([i[0] * k for i, k in zip(idx, f)], dtype=float) - np.asarray(f)
    hi_src = np.array([(i[-1] + 1) * k for i, k in zip(idx, f)], dtype=float) + np.asarray(f)
    matrix, offset = work.index_map(source)  # source index -> working index
    corners = np.stack(np.meshgrid(*zip(lo_src, hi_src), indexing="ij"), -1).reshape(-1, 3)
    wk = corners @ matrix.T + offset
    pad = margin_mm / np.asarray(work.spacing)
    lo = np.maximum(np.floor(wk.min(0) - pad).astype(int), 0)
    hi = np.minimum(np.ceil(wk.max(0) + pad).astype(int) + 1, np.asarray(work.shape))
    if np.any(hi <= lo):
        return None
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi)


@dataclass(frozen=True)
class TilePlan:
    """Tiles of one prediction: ``roi`` (None: the whole box in one pass), their count and estimated memory."""

    roi: tuple[int, int, int] | None
    tiles: int
    passes: int
    network_bytes: float
    stitch_bytes: float

    @property
    def whole(self) -> bool:
        return self.roi is None


def _round_up(n: int, m: int) -> int:
    return int(math.ceil(n / m) * m)


def plan_tiles(shape, *, size_multiple: int, per_voxel: float, classes: int, roi_size=None, overlap: float = DEFAULT_OVERLAP,
               tta=False, memory_budget: float | None = None, what: str = "the scan") -> TilePlan:
    """Choose the tiles for a working-grid box of ``shape``, or check the ones asked for, before any work.

    Without ``roi_size`` the whole box is one pass when its forward pass fits ``memory_budget``; otherwise the
    largest cube-like tile (a multiple of ``size_multiple``) that fits, with ``overlap``.

    Raises
    ------
    ValueError
        When the tiles would take more than :data:`MAX_TILE_PASSES` passes or recompute the volume more than
        :data:`MAX_WORK_FACTOR` times (``overlap=0.999``, ``roi_size=1``), or one pass would exceed the memory
        budget: the message gives the numbers and a fix.
    """
    shape = tuple(int(s) for s in shape)
    budget = float(memory_budget or DEFAULT_MEMORY_BUDGET)
    flips = len(_mirror_axes(tta))
    voxels = float(np.prod(shape))
    m = max(int(size_multiple), 1)
    if roi_size is None:
        padded = tuple(_round_up(s, m) for s in shape)
        need = float(np.prod(padded)) * per_voxel
        if need <= budget:
            return TilePlan(None, 1, flips, need, 0.0)
        side = max(m, int((budget / per_voxel) ** (1 / 3)) // m * m)
        roi = tuple(min(side, _round_up(s, m)) for s in shape)
    else:
        roi = _as_roi(roi_size)
    if not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}; 0.25 is the default, 0.5 for smoother borders")
    grid = [max(s, r) for s, r in zip(shape, roi)]
    tiles = int(np.prod([len(tile_starts(s, r, float(overlap))) for s, r in zip(grid, roi)]))
    passes = tiles * flips
    net = float(np.prod(roi)) * per_voxel
    stitch = 4.0 * (classes + 1) * float(np.prod(grid))
    work = passes * float(np.prod(roi)) / max(voxels, 1.0)
    if passes > MAX_TILE_PASSES or work > MAX_WORK_FACTOR:
        raise ValueError(
            f"predicting {what} (working grid {'x'.join(map(str, shape))}) with roi_size={roi} and overlap={overlap} "
            f"would run {passes:,} tile passes{' (with TTA)' if flips > 1 else ''}, computing the volume "
            f"{work:,.0f} times over (limits: {MAX_TILE_PASSES:,} passes, {MAX_WORK_FACTOR:.0f} times); "
            "leave roi_size and overlap unset to let predict choose the tiles, or use roi_size >= 32 and "
            "overlap <= 0.5")
    if net > 4.0 * budget:
        raise ValueError(
            f"one forward pass of roi_size={roi} needs about {net / 1e9:.1f} GB for this model (budget "
            f"{budget / 1e9:.1f} GB); use a smaller roi_size, or leave it unset to let predict choose")
    return TilePlan(roi, tiles, passes, net, stitch)
