"""Where a predicted label map is unsure: a float32 map in [0, 1] on the scan's own grid.

Two sources, one map (docs/uncertainty.md):

- organs the network draws: the normalised entropy of its softmax, ``-sum p log p / log C`` (``method="entropy"``),
  or the disagreement between mirrored passes, the mutual information ``H(mean p) - mean H(p)`` normalised the same
  way (``method="tta"``);
- organs taken from the automatic labellers (the starter's lungs and bone, ``labelers="auto"``): the network's
  channels do not describe them, so their uncertainty is a band around the labeller's surface,
  ``BAND_PEAK * exp(-d / band_mm)`` with ``d`` the distance in mm to that surface, inside and outside. Inside such
  an organ the band replaces the network's value; outside it the larger of the two counts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ..organs import ORGANS
from ..resampling import Grid, nearest_indices
from ..volume import Volume

__all__ = ["uncertainty", "entropy_map", "mutual_information", "labeller_band", "calibration", "METHODS",
           "BAND_PEAK"]

METHODS = ("entropy", "tta")
#: uncertainty at the surface of an organ taken from the labellers (the band's peak)
BAND_PEAK = 0.2
#: the mirrored passes of ``method="tta"``, in order (axes flipped); the first is the plain pass
_FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (1,), (0,), (1, 2), (0, 2), (0, 1), (0, 1, 2))


def entropy_map(probabilities: np.ndarray) -> np.ndarray:
    """Normalised entropy of class probabilities ``(C, Z, Y, X)``: 0 for a certain voxel, 1 for a uniform one.

    Examples
    --------
    >>> entropy_map(np.full((4, 1, 1, 1), 0.25, dtype=np.float32)).round(3).ravel().tolist()
    [1.0]
    """
    p = np.asarray(probabilities, dtype=np.float32)
    if p.ndim != 4 or p.shape[0] < 2:
        raise ValueError(f"probabilities must be (classes, Z, Y, X) with at least 2 classes, got shape {p.shape}")
    out = np.zeros(p.shape[1:], dtype=np.float32)
    for channel in p:  # one channel at a time: no (C, Z, Y, X) temporary
        out -= channel * np.log(np.clip(channel, 1e-7, 1.0))
    out /= np.float32(np.log(p.shape[0]))
    return np.clip(out, 0.0, 1.0, out=out)


def mutual_information(passes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(mean probabilities, normalised mutual information)`` of several passes' probabilities (each
    ``(C, Z, Y, X)``): the entropy of the mean minus the mean entropy, 0 where every pass agrees."""
    if len(passes) < 2:
        raise ValueError(f"mutual information needs at least 2 passes, got {len(passes)}")
    mean = np.mean(passes, axis=0, dtype=np.float32)
    mi = entropy_map(mean) - np.mean([entropy_map(p) for p in passes], axis=0)
    return mean, np.clip(mi, 0.0, 1.0).astype(np.float32)


def labeller_band(labels: np.ndarray, value: int, spacing, *, band_mm: float = 3.0,
                  pool_mm: float = 1.0) -> np.ndarray:
    """``BAND_PEAK * exp(-d / band_mm)``, ``d`` the distance in mm to the surface of ``labels == value`` (inside
    and outside), computed on the organ's bounding box grown by ``6 * band_mm`` (0 beyond it).

    On a grid finer than ``pool_mm`` the distances are computed on every k-th voxel per axis (about ``pool_mm``
    apart) and each voxel takes its block's value. The default computes them on every voxel of a grid of 1 mm or
    coarser: ``pool_mm=3`` is 3 to 10 times faster on the bone of the 20-slice DICOM series, but thin bones fall
    between the samples and its bone AUROC drops from 0.803 to 0.715 (``benchmarks/bench_uncertainty.py
    --band-pool``).
    """
    if not band_mm > 0:
        raise ValueError(f"band_mm must be a positive distance in mm, got {band_mm!r}")
    out = np.zeros(labels.shape, dtype=np.float32)
    mask = labels == value
    boxes = ndimage.find_objects(mask.astype(np.uint8))
    if not boxes or boxes[0] is None:
        return out
    grow = [int(np.ceil(6 * band_mm / s)) for s in spacing]
    box = tuple(slice(max(b.start - g, 0), min(b.stop + g, n)) for b, g, n in zip(boxes[0], grow, labels.shape))
    f = [max(1, int(pool_mm // s)) for s in spacing]
    sub = mask[box][tuple(slice(k // 2, None, k) for k in f)]
    surface = sub ^ ndimage.binary_erosion(sub, border_value=1)
    surface |= ndimage.binary_dilation(sub) & ~sub  # both sides of the surface
    d = ndimage.distance_transform_edt(~surface, sampling=[s * k for s, k in zip(spacing, f)]).astype(np.float32)
    band = BAND_PEAK * np.exp(-d / np.float32(band_mm))
    if all(k == 1 for k in f):
        out[box] = band
    else:
        idx = [np.minimum(np.arange(b.stop - b.start) // k, n - 1) for b, k, n in zip(box, f, band.shape)]
        out[box] = band[np.ix_(*idx)]
    return out


def _to_scan(work_map: np.ndarray, volume: Volume, spacing: float) -> np.ndarray:
    """A working-grid map on the scan's own grid (nearest neighbour, as ``ct.predict`` puts labels back)."""
    if np.allclose(volume.spacing, (spacing,) * 3, atol=1e-3):
        return work_map
    idx = nearest_indices(Grid.working(volume, spacing), Grid.of(volume))
    return work_map[np.ix_(*idx)]


def _flipped(volume: Volume, axes: tuple[int, ...]) -> Volume:
    return volume if not axes else volume.with_array(np.ascontiguousarray(np.flip(volume.array, axes)))


def uncertainty(volume: Volume | str | Path, model: Any = None, *, method: str = "entropy", passes: int = 4,
                band_mm: float = 3.0, return_labels: bool = False, labelers: Any = "auto",
                progress: Callable[[int, int], Any] | None = None, **predict_options: Any):
    """Predict a CT and say where the prediction is unsure: a float32 map in [0, 1] on the scan's own grid.

    Parameters
    ----------
    volume : Volume or path
        CT in HU.
    model : None, "starter", path, module or Predictor
        As ``ct.predict`` (default: the built-in starter model).
    method : {"entropy", "tta"}
        ``"entropy"``: normalised entropy of the softmax of one pass (as fast as ``ct.predict``), or of the mean of
        the 8 mirrored passes with ``tta=True`` (the labels are then ``ct.predict(..., tta=True)``'s).
        ``"tta"``: disagreement (mutual information) between ``passes`` mirrored passes (``passes`` times slower).
    passes : int
        Mirrored passes of ``method="tta"`` (2 to 8; the first is the plain pass).
    band_mm : float
        Width of the band around the surface of the organs taken from the automatic labellers.
    return_labels : bool
        Also return the label map (the same as ``ct.predict(volume, model, labelers=labelers)``).
    labelers : "auto", None, bool, str or sequence of str
        As ``ct.predict``; those organs get the surface band instead of the network's uncertainty.
    progress : callable(done, total), optional
        Called after each pass.
    **predict_options
        Passed on to ``ct.predict`` (``overlap``, ``device``, ``threads``, ``postprocess_labels``, ...).

    Returns
    -------
    ndarray (float32) of the volume's shape, or (uncertainty, labels)

    Raises
    ------
    ValueError
        An unknown ``method``, ``passes`` outside 2..8, a non-positive ``band_mm``, ``return_probabilities``
        among the options, or ``tta`` with ``method="tta"``.

    Examples
    --------
    >>> u = ct.uncertainty(ct.read_volume("scan.nii.gz"))  # doctest: +SKIP
    >>> u, labels = ct.uncertainty("scan.nii.gz", method="tta", return_labels=True)  # doctest: +SKIP
    """
    from .hybrid import resolve_labelers
    from .predict import Predictor, _as_volume, predict

    if method not in METHODS:
        raise ValueError(f"uncertainty method must be one of {list(METHODS)}, got {method!r}")
    if method == "tta" and not 2 <= int(passes) <= len(_FLIPS):
        raise ValueError(f"passes must be 2 to {len(_FLIPS)} mirrored passes for method='tta', got {passes!r}")
    if "return_probabilities" in predict_options or (method == "tta" and "tta" in predict_options):
        raise ValueError("uncertainty chooses its own passes: leave out 'return_probabilities', and 'tta' with "
                         "method='tta' (it runs the mirrored passes itself)")
    if not band_mm > 0:
        raise ValueError(f"band_mm must be a positive distance in mm, got {band_mm!r}")
    volume = _as_volume(volume)
    pred = Predictor.coerce(model, device=predict_options.get("device") or "cpu")
    organs = resolve_labelers(labelers, pred.info or None)
    total = int(passes) if method == "tta" else 1
    labels, probs = predict(volume, pred, return_probabilities=True, labelers=organs or None, **predict_options)
    if progress is not None:
        progress(1, total)
    if method == "entropy":
        work = entropy_map(probs)
    else:
        runs = [probs]
        # the mirrored passes give probabilities only: no clean-up, and no anatomy check (a flipped scan has its
        # liver in the pelvis)
        extra = {**predict_options, "postprocess_labels": False, "plausible": False}
        for k, axes in enumerate(_FLIPS[1:total], start=2):
            _, p = predict(_flipped(volume, axes), pred, return_probabilities=True, labelers=None, **extra)
            runs.append(np.ascontiguousarray(np.flip(p, tuple(a + 1 for a in axes))))
            if progress is not None:
                progress(k, total)
        work = mutual_information(runs)[1]
    del probs
    spacing = float(predict_options.get("spacing") or pred.contract.spacing)  # the working grid predict used
    out = np.ascontiguousarray(_to_scan(work, volume, spacing), dtype=np.float32)
    for name in organs:
        value = next(v for v, o in ORGANS.items() if o.name == name)
        band = labeller_band(labels, value, volume.spacing, band_mm=band_mm)
        inside = labels == value
        out[inside] = band[inside]
        np.maximum(out, band, out=out)
    return (out, labels) if return_labels else out


def calibration(uncertainty_map: np.ndarray, labels: np.ndarray, reference: np.ndarray, *,
                bins: int = 10, mask: np.ndarray | None = None) -> dict:
    """How well an uncertainty map points at the wrong voxels of a label map.

    Parameters
    ----------
    uncertainty_map, labels, reference : ndarrays of one shape
    bins : int
        Quantile bins of the uncertainty (10: deciles).
    mask : bool ndarray, optional
        Voxels counted (default: all).

    Returns
    -------
    dict
        ``auroc``: the chance that a wrong voxel is more uncertain than a right one (0.5: no better than chance);
        ``error_rate``: the fraction of wrong voxels; ``bins``: one row per bin with its uncertainty range, voxel
        count and error rate, least uncertain first.
    """
    from scipy.stats import rankdata

    u, lab, ref = (np.asarray(a) for a in (uncertainty_map, labels, reference))
    if not u.shape == lab.shape == ref.shape:
        raise ValueError(f"uncertainty, labels and reference must share one shape, got {u.shape}, {lab.shape}, "
                         f"{ref.shape}")
    keep = np.ones(u.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    s, wrong = u[keep].astype(np.float64), (lab != ref)[keep]
    n1, n0 = int(wrong.sum()), int(wrong.size - wrong.sum())
    ranks = rankdata(s)
    auroc = float((ranks[wrong].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")
    order = np.argsort(s, kind="stable")
    rows = []
    for part in np.array_split(order, bins):
        if part.size:
            rows.append({"low": float(s[part[0]]), "high": float(s[part[-1]]), "voxels": int(part.size),
                         "error_rate": float(wrong[part].mean())})
    return {"auroc": auroc, "error_rate": float(wrong.mean()) if wrong.size else float("nan"), "bins": rows}
