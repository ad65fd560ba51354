"""CPU dilation of a binary mask by a symmetric structuring element: FFT, direct (row decomposition) and EDT.

All three take a boolean mask, a symmetric odd-sized boolean kernel centred in its array, and the value of the
voxels outside the volume; they return ``scipy.ndimage.binary_dilation(mask, kernel, border_value=...)`` exactly.
"""

from __future__ import annotations

import os

import numpy as np
import scipy.fft
from scipy import ndimage as ndi

__all__ = ["dilate_fft", "dilate_direct", "dilate_edt", "cheapest_method", "pad"]


def _half(k: np.ndarray) -> tuple[int, int, int]:
    return tuple(s // 2 for s in k.shape)  # type: ignore[return-value]


def pad(m: np.ndarray, half, border_value: int, shape=None) -> np.ndarray:
    """Pad ``m`` by ``half`` voxels per side with ``border_value`` (and up to ``shape`` at the high end)."""
    if shape is None:
        shape = tuple(s + 2 * h for s, h in zip(m.shape, half))
    out = np.full(shape, bool(border_value), dtype=bool)
    out[tuple(slice(h, h + s) for h, s in zip(half, m.shape))] = m
    return out


def _fast_shape(shape) -> tuple[int, ...]:
    return tuple(scipy.fft.next_fast_len(int(s), real=True) for s in shape)


#: largest padded FFT grid processed at once (float32); bigger volumes are done in z-slabs with a halo
MAX_FFT_VOXELS = 8_000_000


def dilate_fft(m: np.ndarray, k: np.ndarray, *, border_value: int = 0, workers=None,
               max_voxels: int | None = None) -> np.ndarray:
    """Dilation as ``irfft(rfft(mask) * rfft(ball)) > 0.5`` in float32.

    The mask is padded by the ball's half-size with ``border_value``; the circular convolution then never wraps
    into the part that is kept, so no further padding is needed (the FFT length is only rounded up to a fast size).
    Volumes larger than ``max_voxels`` are processed in z-slabs, each with a halo of the ball's half-height taken
    from the neighbouring slices, which is exact and bounds the memory to a few times ``max_voxels`` floats.
    """
    if workers is None:
        workers = os.cpu_count() or 1
    if max_voxels is None:
        max_voxels = MAX_FFT_VOXELS
    hz = k.shape[0] // 2
    plane = (m.shape[1] + k.shape[1]) * (m.shape[2] + k.shape[2])
    slab = max(int(max_voxels // plane) - 2 * hz, 1)
    if slab >= m.shape[0]:
        return _dilate_fft_block(m, k, border_value, workers, {})
    out = np.empty(m.shape, dtype=bool)
    spectra: dict = {}  # the ball's spectrum, computed once per slab shape
    for z0 in range(0, m.shape[0], slab):
        z1 = min(z0 + slab, m.shape[0])
        a, b = max(z0 - hz, 0), min(z1 + hz, m.shape[0])
        out[z0:z1] = _dilate_fft_block(m[a:b], k, border_value, workers, spectra)[z0 - a : z1 - a]
    return out


def _ball_spectrum(k, shape, workers, spectra: dict):
    if shape not in spectra:
        spectra.clear()  # keep one spectrum alive at a time
        kernel = np.zeros(shape, dtype=np.float32)
        kernel[tuple(slice(0, n) for n in k.shape)] = k
        spectra[shape] = scipy.fft.rfftn(kernel, s=shape, axes=(0, 1, 2), workers=workers, overwrite_x=True)
    return spectra[shape]


def _dilate_fft_block(m, k, border_value, workers, spectra: dict):
    half = _half(k)
    shape = _fast_shape(s + 2 * h for s, h in zip(m.shape, half))
    axes = (0, 1, 2)
    kspec = _ball_spectrum(k, shape, workers, spectra)
    f = np.full(shape, 1.0 if border_value else 0.0, dtype=np.float32)
    f[tuple(slice(h, h + s) for h, s in zip(half, m.shape))] = m
    spec = scipy.fft.rfftn(f, s=shape, axes=axes, workers=workers, overwrite_x=True)
    del f
    spec *= kspec
    conv = scipy.fft.irfftn(spec, s=shape, axes=axes, workers=workers, overwrite_x=True)
    del spec
    # output index j holds the sum centred at j - half; keep the centres 0..n-1 of the original volume
    crop = tuple(slice(2 * h, 2 * h + s) for h, s in zip(half, m.shape))
    return conv[crop] > 0.5


def _rows(k: np.ndarray):
    """The ball as rows along x: (dz, dy, half-width) for every (dz, dy) row that is not empty."""
    hz, hy, hx = _half(k)
    rows = []
    for iz in range(k.shape[0]):
        for iy in range(k.shape[1]):
            n = int(k[iz, iy].sum())
            if n:
                rows.append((iz - hz, iy - hy, n // 2))
    return rows


def dilate_direct(m: np.ndarray, k: np.ndarray, *, border_value: int = 0) -> np.ndarray:
    """Dilation by rows: a running maximum along x per distinct row half-width, then one OR per (z, y) row."""
    hz, hy, hx = _half(k)
    p = pad(m, (hz, hy, hx), border_value).view(np.uint8)
    out = np.zeros(m.shape, dtype=bool)
    ov = out.view(np.uint8)
    nz, ny, nx = m.shape
    rows = _rows(k)
    for w in sorted({r[2] for r in rows}):
        g = ndi.maximum_filter1d(p, 2 * w + 1, axis=2, mode="constant", cval=0) if w else p
        g = g[:, :, hx : hx + nx]
        for dz, dy, ww in rows:
            if ww == w:
                np.bitwise_or(ov, g[hz + dz : hz + dz + nz, hy + dy : hy + dy + ny], out=ov)
    return out


def dilate_edt(m: np.ndarray, k: np.ndarray, spacing, *, border_value: int = 0) -> np.ndarray:
    """Dilation through the Euclidean distance to the nearest foreground voxel (with the voxel spacing)."""
    from . import _BALL_RTOL

    half = _half(k)
    p = pad(m, half, border_value)
    if not p.any():
        return np.zeros(m.shape, dtype=bool)
    crop = tuple(slice(h, h + s) for h, s in zip(half, m.shape))
    d = ndi.distance_transform_edt(~p, sampling=spacing)[crop]
    # the radius of the ball as built: its largest offset norm is <= r and the next lattice point is > r
    r2 = _ball_radius2(k, spacing) * (1.0 + _BALL_RTOL)
    np.square(d, out=d)
    return d <= r2


def _ball_radius2(k: np.ndarray, spacing) -> float:
    """Largest squared offset norm inside the ball: no lattice offset lies between it and the ball's radius."""
    half = _half(k)
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g.astype(np.float64) * s) ** 2 for g, s in zip(grids, spacing))
    return float(d2[k].max())


def cheapest_method(shape, k: np.ndarray) -> str:
    """Pick "direct" or "fft" from a cost model measured on 2 cores (see docs/benchmarks.md)."""
    rows = _rows(k)
    n_w = len({r[2] for r in rows})
    n = float(np.prod(shape))
    half = _half(k)
    p = float(np.prod(_fast_shape(s + 2 * h for s, h in zip(shape, half))))
    cost_direct = n * (len(rows) + n_w * 4.0) * 0.85  # ns, measured
    cost_fft = p * 70.0  # ns per padded voxel, measured
    return "direct" if cost_direct <= cost_fft else "fft"
