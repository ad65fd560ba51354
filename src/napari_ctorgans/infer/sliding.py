"""Sliding-window inference: overlapping tiles, blended class probabilities (tensor in, tensor out)."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["sliding_window", "SlidingWindowInferer", "tile_starts", "importance_map"]

_MODES = ("constant", "gaussian")


def _as_roi(roi_size: Any) -> tuple[int, int, int]:
    if isinstance(roi_size, (int, np.integer)):
        roi = (int(roi_size),) * 3
    else:
        try:
            if isinstance(roi_size, str):
                raise TypeError
            roi = tuple(int(r) for r in roi_size)
        except TypeError:
            raise TypeError(f"roi_size must be an int or 3 ints (z, y, x), got {roi_size!r}") from None
    if len(roi) != 3 or min(roi) < 1:
        raise ValueError(f"roi_size must be 3 positive tile sizes (z, y, x) in voxels, got {roi_size!r}; e.g. (64, 64, 64)")
    return roi  # type: ignore[return-value]


def tile_starts(size: int, roi: int, overlap: float) -> list[int]:
    """Start indices of the tiles along one axis (the same grid as MONAI's ``dense_patch_slices``).

    The step is ``int(roi * (1 - overlap))`` (at least 1); the last tile is shifted back so it ends at the border.
    ``size`` must be at least ``roi`` (the caller pads smaller images).
    """
    if roi >= size:
        return [0]
    step = max(int(roi * (1 - overlap)), 1)
    n = next(d for d in range(math.ceil(size / step)) if d * step + roi >= size) + 1
    return [min(i * step, size - roi) for i in range(n)]


@functools.lru_cache(maxsize=16)
def _importance_map_cpu(roi: tuple[int, int, int], mode: str, sigma_scale: float) -> torch.Tensor:
    if mode == "constant":
        return torch.ones(roi, dtype=torch.float32)
    w = None
    for i, n in enumerate(roi):
        sigma = n * sigma_scale
        x = torch.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1, dtype=torch.float32)
        g = torch.exp(x**2 / (-2 * sigma**2))
        w = g if w is None else w.unsqueeze(-1) * g[(None,) * i]
    # keep the map free of zeros (a zero weight at a tile corner would give 0/0 where only that tile covers)
    floor = max(float(w.min()), 1e-3)
    return torch.clamp(w, min=floor)


def importance_map(roi_size: Any, *, mode: str = "gaussian", sigma_scale: float = 0.125, device=None, dtype=None) -> torch.Tensor:
    """Blending weights of one tile, cached per size and mode; never zero (smallest weight at least 1e-3).

    Parameters
    ----------
    roi_size : int or 3 ints
        Tile size (z, y, x) in voxels.
    mode : {"constant", "gaussian"}
        Equal weights, or a Gaussian with standard deviation ``sigma_scale * roi_size`` per axis.
    sigma_scale : float
        Gaussian width relative to the tile size.
    device, dtype : optional
        Where and how to return the map (float32 on the CPU by default).

    Returns
    -------
    torch.Tensor, shape roi_size
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    w = _importance_map_cpu(_as_roi(roi_size), mode, float(sigma_scale))
    return w.to(device=device or "cpu", dtype=dtype or torch.float32)


def _as_input(image: Any) -> torch.Tensor:
    if isinstance(image, np.ndarray):
        if image.ndim != 3:
            raise ValueError(f"image as a numpy array must be a (D, H, W) volume, got shape {image.shape}")
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch tensor (N, C, D, H, W) or a numpy (D, H, W) array, got {type(image).__name__}")
    if image.ndim == 3:
        image = image[None, None]
    if image.ndim != 5:
        raise ValueError(f"image must have shape (N, C, D, H, W), got {tuple(image.shape)}; add axes with image[None, None]")
    if not image.is_floating_point():
        image = image.float()
    return image


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def check_model_output(scores: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """Refuse a model output that is not one score per class on its input's voxels (N, classes, Z, Y, X)."""
    shape, want = tuple(scores.shape), tuple(tiles.shape)
    if len(shape) != 5 or shape[0] != want[0] or shape[2:] != want[2:]:
        raise ValueError(
            f"the model returned an output of shape {shape} for an input of shape {want} (N, channels, Z, Y, X); a "
            "segmentation model must return (N, classes, Z, Y, X) on its input's grid, one score per class and "
            "voxel. Use a model whose output has the size of its input (no stride or pooling left unrestored)"
        )
    return scores


def _mirror_axes(tta: bool | Sequence[int]) -> list[tuple[int, ...]]:
    if tta is False or tta is None:
        return [()]
    axes = (0, 1, 2) if tta is True else tuple(int(a) for a in tta)
    if any(a not in (0, 1, 2) for a in axes):
        raise ValueError(f"tta must be True/False or spatial axes among (0, 1, 2), got {tta!r}")
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def sliding_window(
    image: Any,
    model: Callable[[torch.Tensor], torch.Tensor],
    *,
    roi_size: Any,
    overlap: float = 0.25,
    mode: str = "constant",
    batch_size: int = 1,
    sigma_scale: float = 0.125,
    sw_device: Any = None,
    device: Any = None,
    progress: Callable[[int, int], Any] | None = None,
    tta: bool | Sequence[int] = False,
    cval: float = 0.0,
    softmax: bool = True,
) -> torch.Tensor:
    """Class probabilities of a whole volume from overlapping tiles.

    The tile grid, padding and blending follow MONAI's ``sliding_window_inference`` (with the model's softmax as the
    predictor), so both give the same probabilities.

    Parameters
    ----------
    image : torch.Tensor (N, C, D, H, W) or numpy.ndarray (D, H, W)
        Network input (already windowed as in training).
    model : callable
        Maps a batch of tiles (B, C, *roi_size) to logits (B, classes, *roi_size).
    roi_size : int or 3 ints
        Tile size in voxels; an image smaller than a tile is padded with ``cval`` (centred) and cropped back.
    overlap : float in [0, 1)
        Fraction of a tile shared with its neighbour along each axis.
    mode : {"constant", "gaussian"}
        Equal weights, or Gaussian weights that trust tile centres more than their borders.
    batch_size : int
        Tiles per forward pass.
    sigma_scale : float
        Gaussian width relative to the tile size (``mode="gaussian"``).
    sw_device : torch.device or str, optional
        Device where the model runs (default: the image's device).
    device : torch.device or str, optional
        Device where the probabilities are stitched (default: the image's device). When it runs out of memory the
        stitching moves to the CPU.
    progress : callable(done, total), optional
        Called after each batch of tiles.
    tta : bool or sequence of axes
        Mirroring test-time augmentation: average over flips of the given spatial axes (True: all three; 8 passes).
    cval : float
        Padding value for images smaller than a tile.
    softmax : bool
        Apply a softmax over classes to the model output (set False when the model already returns probabilities).

    Returns
    -------
    torch.Tensor, shape (N, classes, D, H, W), float32
        Blended probabilities.

    Raises
    ------
    ValueError, TypeError
        For an image that is not 3D/5D, a bad ``roi_size``, ``overlap``, ``mode`` or ``batch_size``.

    Examples
    --------
    >>> import numpy as np, torch
    >>> net = torch.nn.Conv3d(1, 3, 3, padding=1)
    >>> probs = sliding_window(np.zeros((20, 30, 30), np.float32), net, roi_size=16)
    >>> tuple(probs.shape)
    (1, 3, 20, 30, 30)
    """
    x = _as_input(image)
    roi = _as_roi(roi_size)
    if not (0.0 <= float(overlap) < 1.0):
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}; 0.25 to 0.5 is usual")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive number of tiles, got {batch_size!r}")
    batch_size = int(batch_size)
    sw_device = torch.device(sw_device) if sw_device is not None else x.device
    device = torch.device(device) if device is not None else x.device
    n_img = x.shape[0]
    size0 = tuple(x.shape[2:])
    # centred padding when the image is smaller than a tile (same split as MONAI)
    pads = [max(r - s, 0) for r, s in zip(roi, size0)]
    if any(pads):
        pad_arg: list[int] = []
        for p in reversed(pads):
            pad_arg += [p // 2, p - p // 2]
        x = torch.nn.functional.pad(x, pad_arg, mode="constant", value=cval)
    size = tuple(x.shape[2:])
    starts = [tile_starts(s, r, float(overlap)) for s, r in zip(size, roi)]
    windows = [(b, *c) for b in range(n_img) for c in itertools.product(*starts)]
    w_tile = importance_map(roi, mode=mode, sigma_scale=sigma_scale, device=sw_device)
    flips = _mirror_axes(tta)

    out: torch.Tensor | None = None
    count: torch.Tensor | None = None

    def _alloc(n_cls: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        o = torch.zeros((n_img, n_cls, *size), dtype=torch.float32, device=dev)
        c = torch.zeros((1, 1, *size), dtype=torch.float32, device=dev)
        w_dev = w_tile.to(dev)
        for z, y, xx in itertools.product(*starts):
            c[0, 0, z : z + roi[0], y : y + roi[1], xx : xx + roi[2]] += w_dev
        return o, c

    total = len(windows)
    with torch.inference_mode():
        for i0 in range(0, total, batch_size):
            chunk = windows[i0 : i0 + batch_size]
            tiles = torch.cat(
                [x[b : b + 1, :, z : z + roi[0], y : y + roi[1], xx : xx + roi[2]] for b, z, y, xx in chunk]
            ).to(sw_device)
            probs = None
            for axes in flips:
                dims = [a + 2 for a in axes]
                inp = torch.flip(tiles, dims) if dims else tiles
                logits = check_model_output(model(inp), inp)
                p = torch.softmax(logits.float(), dim=1) if softmax else logits.float()
                if dims:
                    p = torch.flip(p, dims)
                probs = p if probs is None else probs + p
            probs = probs / len(flips) if len(flips) > 1 else probs
            probs = probs * w_tile
            if out is None:
                try:
                    out, count = _alloc(probs.shape[1], device)
                except RuntimeError as exc:  # short of memory on the stitching device: stitch on the CPU
                    if not _is_oom(exc) or device.type == "cpu":
                        raise
                    device = torch.device("cpu")
                    out, count = _alloc(probs.shape[1], device)
            probs = probs.to(device)
            for k, (b, z, y, xx) in enumerate(chunk):
                out[b, :, z : z + roi[0], y : y + roi[1], xx : xx + roi[2]] += probs[k]
            if progress is not None:
                progress(min(i0 + batch_size, total), total)
        assert out is not None and count is not None
        out /= count
    if any(pads):
        sl = tuple(slice(p // 2, p // 2 + s) for p, s in zip(pads, size0))
        out = out[(slice(None), slice(None), *sl)]
    return out


class SlidingWindowInferer:
    """A model-independent sliding-window setup: ``SlidingWindowInferer(roi_size=64)(image, model)``.

    Parameters are those of :func:`sliding_window` (all keyword-only) and are validated on construction.
    """

    def __init__(self, *, roi_size: Any, overlap: float = 0.25, mode: str = "constant", batch_size: int = 1, **options: Any):
        _as_roi(roi_size)
        if not (0.0 <= float(overlap) < 1.0):
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}; 0.25 to 0.5 is usual")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        self.options = dict(roi_size=roi_size, overlap=overlap, mode=mode, batch_size=batch_size, **options)

    def __call__(self, image: Any, model: Callable[[torch.Tensor], torch.Tensor], **overrides: Any) -> torch.Tensor:
        return sliding_window(image, model, **{**self.options, **overrides})

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"SlidingWindowInferer({opts})"
