"""Whole-volume prediction: resample, window, tile, argmax, post-process, back to the volume's own grid."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from ..organs import ORGANS
from ..volume import Volume
from .sliding import sliding_window

__all__ = ["predict", "Predictor", "postprocess", "KEEP_COMPONENTS"]

#: connected components kept per organ after prediction (None: all components of at least ``min_voxels``):
#: one liver, one bladder, two lungs, two kidneys; bone is many pieces at 3 mm (ribs), so all of them.
KEEP_COMPONENTS: dict[int, int | None] = {1: 1, 2: 1, 3: 2, 4: 2, 5: None, 6: 1}


def postprocess(labels: np.ndarray, *, keep: Mapping[int, int | None] | None = None, fill_holes: bool = True,
                min_voxels: int = 8) -> np.ndarray:
    """Clean a predicted label map: keep the largest connected components per organ and fill holes.

    Parameters
    ----------
    labels : ndarray (Z, Y, X) of int
    keep : dict value -> number of components (None: all of at least ``min_voxels``), default :data:`KEEP_COMPONENTS`
    fill_holes : bool
        Fill cavities enclosed by an organ (3D) with that organ where they are background.
    min_voxels : int
        Smallest component kept for organs with ``keep=None``.

    Returns
    -------
    ndarray, same shape and dtype
    """
    keep = KEEP_COMPONENTS if keep is None else keep
    out = np.array(labels, copy=True)
    struct = ndimage.generate_binary_structure(3, 1)
    for value in [int(v) for v in np.unique(out) if v != 0]:
        box = ndimage.find_objects((out == value).astype(np.int8))[0]
        sub = out[box]
        mask = sub == value
        comp, n = ndimage.label(mask, structure=struct)
        if n > 1 or value not in keep or keep.get(value) is None:
            sizes = np.bincount(comp.ravel())[1:]
            k = keep.get(value, None)
            if k is None:
                good = np.flatnonzero(sizes >= min_voxels) + 1
            else:
                good = np.argsort(sizes)[::-1][:k] + 1
            kept = np.isin(comp, good)
            sub[mask & ~kept] = 0
            mask = kept
        if fill_holes:
            filled = ndimage.binary_fill_holes(mask)
            sub[filled & ~mask & (sub == 0)] = value
    return out


def _fixed_window() -> tuple[float, float]:
    from ..augment import AugmentParams

    p = AugmentParams()
    return (float(np.mean(p.window_low)), float(np.mean(p.window_high)))


class Predictor:
    """A model with the settings it was trained with: ``Predictor.from_checkpoint(path)(volume) -> labels``.

    Parameters
    ----------
    model : torch.nn.Module
    spacing : float
        Working spacing in mm.
    window : (low, high)
        HU window used in training without augmentation.
    roi_size : 3 ints
        Tile size (the training crop size).
    info : dict, optional
        Checkpoint information.
    """

    def __init__(self, model: torch.nn.Module, *, spacing: float = 3.0, window: tuple[float, float] | None = None,
                 roi_size: Any = (64, 64, 64), info: dict | None = None):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.spacing = float(spacing)
        self.window = tuple(float(w) for w in (window or _fixed_window()))
        self.roi_size = tuple(int(r) for r in (roi_size if np.ndim(roi_size) else (roi_size,) * 3))
        self.info = dict(info or {})

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: Any = "cpu") -> "Predictor":
        from ..train.checkpoint import load_checkpoint

        model, info = load_checkpoint(path, device=device)
        tc = info.get("train_config") or {}
        return cls(model, spacing=float(info.get("spacing", tc.get("spacing", 3.0))),
                   window=tuple(info.get("window") or tc.get("window") or _fixed_window()),
                   roi_size=tuple(tc.get("crop_size", (64, 64, 64))), info=info)

    @classmethod
    def coerce(cls, obj: Any, *, device: Any = "cpu") -> "Predictor":
        if isinstance(obj, Predictor):
            return obj
        if isinstance(obj, (str, Path)):
            return cls.from_checkpoint(obj, device=device)
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], torch.nn.Module):
            return cls.from_checkpoint_info(obj[0], obj[1])
        if isinstance(obj, torch.nn.Module):
            return cls(obj)
        raise TypeError(
            "checkpoint_or_model must be a checkpoint path, a torch.nn.Module, a (model, info) pair from "
            f"ct.load_checkpoint, or a Predictor; got {type(obj).__name__}"
        )

    @classmethod
    def from_checkpoint_info(cls, model: torch.nn.Module, info: dict) -> "Predictor":
        tc = info.get("train_config") or {}
        return cls(model, spacing=float(info.get("spacing", tc.get("spacing", 3.0))),
                   window=tuple(info.get("window") or tc.get("window") or _fixed_window()),
                   roi_size=tuple(tc.get("crop_size", (64, 64, 64))), info=info)

    def __call__(self, volume: Volume, **options: Any) -> np.ndarray:
        return predict(volume, self, **options)


def predict(volume: Volume | str | Path, checkpoint_or_model: Any, *, spacing: float | None = None,
            roi_size: Any = None, overlap: float = 0.5, mode: str = "gaussian", batch_size: int = 1,
            tta: bool = False, postprocess_labels: bool = True, device: Any = None,
            progress: Callable[[int, int], Any] | None = None, return_probabilities: bool = False):
    """Segment a CT volume; the label map comes back on the volume's own grid.

    Steps: resample to the working spacing (anti-aliased), window the HU values as in training, blend the model's
    probabilities over overlapping tiles (:func:`sliding_window`), argmax, keep the largest connected components
    per organ and fill holes (:func:`postprocess`), resample back by nearest neighbour.

    Parameters
    ----------
    volume : Volume or path
        CT in HU.
    checkpoint_or_model : path, torch.nn.Module, (model, info) or Predictor
        A checkpoint from :func:`ct.train` carries its working spacing, window and tile size.
    spacing : float, optional
        Working spacing in mm (default: the checkpoint's, else 3).
    roi_size : int or 3 ints, optional
        Tile size (default: the training crop size).
    overlap : float
        Tile overlap in [0, 1).
    mode : {"gaussian", "constant"}
        Tile blending.
    batch_size : int
        Tiles per forward pass.
    tta : bool
        Mirroring test-time augmentation (8 passes).
    postprocess_labels : bool
        Apply :func:`postprocess`.
    device : str or torch.device, optional
        Where the model runs (default: CUDA when available, else CPU); probabilities are stitched on the CPU
        when the GPU is short of memory.
    progress : callable(done, total), optional
        Called after each batch of tiles.
    return_probabilities : bool
        Also return the probabilities at the working spacing, ``(classes, Z, Y, X)`` float32.

    Returns
    -------
    ndarray (uint8) of the volume's shape, or (labels, probabilities)

    Raises
    ------
    TypeError, ValueError
        Bad volume or model; ``MemoryError`` with advice when the device runs out of memory.

    Examples
    --------
    >>> labels = ct.predict(ct.read_volume("scan.nii.gz"), "runs/demo/best.pt")  # doctest: +SKIP
    """
    import napari_ctorgans as ct

    from ..train.loop import window_image

    if isinstance(volume, (str, Path)):
        volume = ct.read_volume(volume)
    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a ct.Volume or a file path, got {type(volume).__name__}; "
                        "wrap an array with ct.Volume(array, spacing=...)")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    pred = Predictor.coerce(checkpoint_or_model, device=device)
    model = pred.model.to(device).eval()
    work_spacing = float(spacing or pred.spacing)
    roi = roi_size if roi_size is not None else pred.roi_size
    target = (work_spacing,) * 3
    if np.allclose(volume.spacing, target, atol=1e-3):
        work = volume
    else:
        work = ct.resample(volume, work_spacing, kind="image")
    x = torch.from_numpy(window_image(work.array, pred.window))[None, None]
    try:
        probs = sliding_window(x, model, roi_size=roi, overlap=overlap, mode=mode, batch_size=batch_size,
                               sw_device=device, device=device, progress=progress, tta=tta)[0]
    except RuntimeError as exc:
        if "out of memory" not in str(exc).lower():
            raise
        raise MemoryError(f"out of memory predicting {volume!r} on {device}: lower batch_size (now {batch_size}) "
                          f"or roi_size, or pass device='cpu'") from exc
    del x
    labels = probs.argmax(0).to("cpu", torch.uint8).numpy()
    if not return_probabilities:
        del probs
    if postprocess_labels:
        labels = postprocess(labels)
    if work is volume:
        out = labels
    else:
        out = np.asarray(ct.resample(work.with_array(labels), kind="labels", like=volume).array, dtype=np.uint8)
    if return_probabilities:
        return out, probs.cpu().numpy()
    return out


def organ_names(values) -> dict[int, str]:
    return {int(v): ORGANS[int(v)].name for v in values if int(v) in ORGANS}
