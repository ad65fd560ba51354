"""The per-scan work of the prompt engine, done once and kept between prompts.

The engine works on the scan averaged over integer blocks of voxels to about 3 mm (``work_mm``, at most 10 % more),
so a work voxel is an exact block of scan voxels and a region found there goes back to the scan by one linear
interpolation.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from scipy import ndimage as ndi

from ..labelers._common import as_ct


def block_mean(arr: np.ndarray, factors) -> np.ndarray:
    """Average of ``arr`` over blocks of ``factors`` voxels (the last, partial blocks padded with their edge)."""
    pad = [(0, (-n) % f) for n, f in zip(arr.shape, factors)]
    out = arr.astype(np.float32, copy=False)
    if any(p[1] for p in pad):
        out = np.pad(out, pad, mode="edge")
    for ax, f in enumerate(factors):
        if f > 1:
            shape = out.shape[:ax] + (out.shape[ax] // f, f) + out.shape[ax + 1:]
            out = out.reshape(shape).mean(axis=ax + 1, dtype=np.float32)
    return out


def work_factors(spacing, work_mm: float) -> tuple[int, int, int]:
    """The largest integer block per axis whose size stays within 10 % above ``work_mm`` (1.6 mm slices are
    paired to 3.2 mm; 2 mm slices stay single)."""
    return tuple(max(1, int(1.1 * work_mm // s)) for s in spacing)  # type: ignore[return-value]


def body_mask(img: np.ndarray, threshold_hu: float = -300.0) -> np.ndarray:
    """The patient on the work grid: the largest connected part above ``threshold_hu``, its holes filled in
    every axial slice (lungs and bowel gas inside). A quick bound for growth (``ct.label_body`` is the careful
    one, with the couch and cut fields of view handled)."""
    from ..labelers._common import fill_holes_axial, largest_component

    return fill_holes_axial(largest_component(img > threshold_hu))


def upsample_linear(values: np.ndarray, factors) -> np.ndarray:
    """``values`` on a grid ``factors`` times finer (each coarse voxel an exact block), linearly interpolated
    between the blocks' centres, one axis at a time with numpy (no scipy: the GIL stays free)."""
    out = values.astype(np.float32, copy=False)
    for ax, f in enumerate(factors):
        if f == 1:
            continue
        n = out.shape[ax]
        x = (np.arange(n * f) + 0.5) / f - 0.5
        x0 = np.clip(np.floor(x).astype(int), 0, n - 1)
        x1 = np.clip(x0 + 1, 0, n - 1)
        shape = [1] * out.ndim
        shape[ax] = -1
        w = np.clip(x - np.floor(x), 0, 1).astype(np.float32).reshape(shape)
        w = np.where((x < 0).reshape(shape), 0, w)
        out = np.take(out, x0, axis=ax) * (1 - w) + np.take(out, x1, axis=ax) * w
    return out


class WorkGrid:
    """A scan on the engine's ~3 mm work grid: the smoothed image and the body mask, computed once.

    Parameters
    ----------
    volume : Volume
        CT in Hounsfield units (or an ndarray with ``spacing``).
    work_mm : float
        Target spacing of the work grid (integer blocks of the scan's voxels, never coarser than this).
    smooth_mm : float
        Gaussian smoothing (sigma, mm) of the work image; reduces noise in the intensity model.
    """

    def __init__(self, volume, *, spacing=None, work_mm: float = 3.0, smooth_mm: float = 1.5):
        arr, sp = as_ct(volume, spacing)
        self.scan_shape = tuple(arr.shape)
        self.scan_spacing = tuple(float(s) for s in sp)
        self.factors = work_factors(sp, work_mm)
        self.spacing = tuple(s * f for s, f in zip(sp, self.factors))
        img = block_mean(arr, self.factors)
        self.shape = img.shape
        self.image = ndi.gaussian_filter(img, [smooth_mm / s for s in self.spacing]) if smooth_mm > 0 else img
        self.body = body_mask(img)
        self.voxel_ml = float(np.prod(self.spacing)) / 1000.0
        self.scan_voxel_ml = float(np.prod(self.scan_spacing)) / 1000.0

    # ------------------------------------------------------------------------------------------ scan <-> work grid
    def to_work(self, mask: np.ndarray) -> np.ndarray:
        """A scan-grid mask on the work grid: a work voxel is in when at least half of its block is."""
        mask = np.asarray(mask, dtype=bool)
        if self.factors == (1, 1, 1):
            return mask
        pad = [(0, (-n) % f) for n, f in zip(mask.shape, self.factors)]
        if any(p[1] for p in pad):
            mask = np.pad(mask, pad, mode="edge")
        (a, b, c), (fa, fb, fc) = mask.shape, self.factors
        counts = np.count_nonzero(mask.reshape(a // fa, fa, b // fb, fb, c // fc, fc), axis=(1, 3, 5))
        return 2 * counts >= fa * fb * fc

    def to_work_float(self, values: np.ndarray) -> np.ndarray:
        return block_mean(np.asarray(values, dtype=np.float32), self.factors)

    def scan_box(self, box) -> tuple[slice, ...]:
        """The scan voxels of a box of work voxels."""
        return tuple(slice(b.start * f, min(b.stop * f, n)) for b, f, n in zip(box, self.factors, self.scan_shape))

    def to_scan(self, mask: np.ndarray, box) -> tuple[tuple[slice, ...], np.ndarray]:
        """A work-grid mask of ``box`` on the scan grid: ``(scan box, mask)``, by linear interpolation at 0.5."""
        sbox = self.scan_box(box)
        if self.factors == (1, 1, 1):
            return sbox, np.asarray(mask, dtype=bool)
        up = upsample_linear(mask, self.factors)
        shape = tuple(s.stop - s.start for s in sbox)
        return sbox, up[tuple(slice(0, n) for n in shape)] >= 0.5

    def to_index(self, points) -> np.ndarray:
        """Scan voxel positions (z, y, x) as work-grid indices."""
        pts = np.asarray(points, dtype=float).reshape(-1, 3)
        idx = np.floor((np.round(pts) + 0.5) / np.asarray(self.factors)).astype(int)
        return np.clip(idx, 0, np.asarray(self.shape) - 1)


#: id(volume) -> (weak reference to the volume, {work_mm: WorkGrid}); a Volume is not hashable
_CACHE: dict[int, tuple] = {}
_LOCK = threading.Lock()


def work_grid(volume, work_mm: float = 3.0) -> WorkGrid:
    """The :class:`WorkGrid` of a :class:`Volume`, cached while the volume lives (per ``work_mm``)."""
    from ..volume import Volume

    if not isinstance(volume, Volume):
        raise TypeError(f"volume must be a napari_ctorgans.Volume, got {type(volume)!r}")
    key = id(volume)
    with _LOCK:
        ref, per = _CACHE.get(key, (None, None))
        if ref is None or ref() is not volume:
            ref, per = weakref.ref(volume, lambda _r, k=key: _CACHE.pop(k, None)), {}
            _CACHE[key] = (ref, per)
        grid = per.get(work_mm)
    if grid is None or grid.scan_shape != tuple(volume.shape):
        grid = WorkGrid(volume, work_mm=work_mm)
        with _LOCK:
            per[work_mm] = grid
    return grid
