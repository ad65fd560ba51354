"""Numba-CUDA kernels of the CUDA morphology path (imported only when that path runs)."""

from __future__ import annotations

import os

import numpy as np
from numba import cuda

_OPTS = {} if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" else {"cache": True}


@cuda.jit(**_OPTS)
def pad_kernel(mask, out, h0, h1, h2, border):
    """out (float32, padded shape) <- mask (uint8) placed at offset (h0, h1, h2), ``border`` elsewhere."""
    i = cuda.grid(1)
    p0, p1, p2 = out.shape
    if i >= p0 * p1 * p2:
        return
    z = i // (p1 * p2)
    r = i - z * p1 * p2
    y = r // p2
    x = r - y * p2
    zz, yy, xx = z - h0, y - h1, x - h2
    if 0 <= zz < mask.shape[0] and 0 <= yy < mask.shape[1] and 0 <= xx < mask.shape[2]:
        out[z, y, x] = np.float32(mask[zz, yy, xx])
    else:
        out[z, y, x] = border


@cuda.jit(**_OPTS)
def cmul_kernel(a, b):
    """a *= b for complex numbers stored as float32 pairs, shape (n, 2)."""
    i = cuda.grid(1)
    if i >= a.shape[0]:
        return
    ar = a[i, 0]
    ai = a[i, 1]
    br = b[i, 0]
    bi = b[i, 1]
    a[i, 0] = ar * br - ai * bi
    a[i, 1] = ar * bi + ai * br


@cuda.jit(**_OPTS)
def threshold_kernel(conv, out, o0, o1, o2):
    """out[z, y, x] = conv[z + o0, y + o1, x + o2] > 0.5 (uint8)."""
    i = cuda.grid(1)
    n0, n1, n2 = out.shape
    if i >= n0 * n1 * n2:
        return
    z = i // (n1 * n2)
    r = i - z * n1 * n2
    y = r // n2
    x = r - y * n2
    out[z, y, x] = 1 if conv[z + o0, y + o1, x + o2] > np.float32(0.5) else 0
