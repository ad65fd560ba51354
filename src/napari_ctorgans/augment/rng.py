"""Counter-based random numbers and per-voxel sampling helpers, shared by the CPU and CUDA backends.

The functions here are plain Python with scalar arithmetic only; ``cpu.py`` compiles them with ``numba.njit`` and
``cuda.py`` with ``numba.cuda.jit(device=True)``, so both backends run the same arithmetic. Random numbers are
keyed by ``(key, voxel index)``: there is no generator state, so the result does not depend on the thread count
or on the order in which voxels are visited.

Noise model
-----------
``normal_from_hash`` turns one 64-bit hash into an approximately standard normal number by summing its four
16-bit words (an Irwin-Hall sum of 4 uniforms, rescaled to mean 0 and variance 1). The approximation has the exact
mean and variance, is bounded to +-3.46 sigma and has kurtosis 2.7 instead of 3; for augmentation noise this is
indistinguishable in practice and it costs a handful of integer operations instead of a log, sqrt and cos.
"""

from __future__ import annotations

import math

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_MASK16 = np.uint64(0xFFFF)
_S16 = np.uint64(16)
_S32 = np.uint64(32)
_S48 = np.uint64(48)
# variance of a discrete uniform on {0..65535}/65535 is (65535 + 2) / (12 * 65535); four of them summed
_NORM_SCALE = 1.0 / (65535.0 * math.sqrt(4.0 * (65535.0 + 2.0) / (12.0 * 65535.0)))
_NORM_MEAN = 2.0 * 65535.0


def hash64(key, index):
    """SplitMix64 finaliser of ``key + (index + 1) * golden``: a 64-bit hash of (key, index)."""
    z = np.uint64(key) + (np.uint64(index) + np.uint64(1)) * _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


def normal_from_hash(h):
    """Approximately N(0, 1) from one 64-bit hash (sum of its four 16-bit words, see the module docstring)."""
    s = (h & _MASK16) + ((h >> _S16) & _MASK16) + ((h >> _S32) & _MASK16) + (h >> _S48)
    return (float(np.int32(s)) - _NORM_MEAN) * _NORM_SCALE


def trilinear(flat, nz, ny, nx, pz, py, px, out_value):
    """Trilinear sample at (pz, py, px) of a C-ordered (nz, ny, nx) volume given as the 1D array ``flat``.

    Neighbours outside the volume count as ``out_value`` (scipy.ndimage mode "grid-constant").
    """
    fz = math.floor(pz)
    fy = math.floor(py)
    fx = math.floor(px)
    z0 = int(fz)
    y0 = int(fy)
    x0 = int(fx)
    if z0 < -1 or y0 < -1 or x0 < -1 or z0 >= nz or y0 >= ny or x0 >= nx:
        return out_value
    tz = pz - fz
    ty = py - fy
    tx = px - fx
    sy = nx
    sz = ny * nx
    if z0 >= 0 and y0 >= 0 and x0 >= 0 and z0 + 1 < nz and y0 + 1 < ny and x0 + 1 < nx:
        i = z0 * sz + y0 * sy + x0
        v000 = float(flat[i])
        v001 = float(flat[i + 1])
        v010 = float(flat[i + sy])
        v011 = float(flat[i + sy + 1])
        v100 = float(flat[i + sz])
        v101 = float(flat[i + sz + 1])
        v110 = float(flat[i + sz + sy])
        v111 = float(flat[i + sz + sy + 1])
    else:
        v000 = out_value
        v001 = out_value
        v010 = out_value
        v011 = out_value
        v100 = out_value
        v101 = out_value
        v110 = out_value
        v111 = out_value
        zin0 = z0 >= 0
        zin1 = z0 + 1 < nz
        yin0 = y0 >= 0
        yin1 = y0 + 1 < ny
        xin0 = x0 >= 0
        xin1 = x0 + 1 < nx
        i = z0 * sz + y0 * sy + x0
        if zin0 and yin0 and xin0:
            v000 = float(flat[i])
        if zin0 and yin0 and xin1:
            v001 = float(flat[i + 1])
        if zin0 and yin1 and xin0:
            v010 = float(flat[i + sy])
        if zin0 and yin1 and xin1:
            v011 = float(flat[i + sy + 1])
        if zin1 and yin0 and xin0:
            v100 = float(flat[i + sz])
        if zin1 and yin0 and xin1:
            v101 = float(flat[i + sz + 1])
        if zin1 and yin1 and xin0:
            v110 = float(flat[i + sz + sy])
        if zin1 and yin1 and xin1:
            v111 = float(flat[i + sz + sy + 1])
    c00 = v000 + tx * (v001 - v000)
    c01 = v010 + tx * (v011 - v010)
    c10 = v100 + tx * (v101 - v100)
    c11 = v110 + tx * (v111 - v110)
    c0 = c00 + ty * (c01 - c00)
    c1 = c10 + ty * (c11 - c10)
    return c0 + tz * (c1 - c0)


def nearest_flat(nz, ny, nx, pz, py, px):
    """Flat index of the voxel nearest to (pz, py, px) in a C-ordered (nz, ny, nx) volume, or -1 outside it."""
    iz = int(math.floor(pz + 0.5))
    iy = int(math.floor(py + 0.5))
    ix = int(math.floor(px + 0.5))
    if iz < 0 or iy < 0 or ix < 0 or iz >= nz or iy >= ny or ix >= nx:
        return -1
    return (iz * ny + iy) * nx + ix


def bspline_row(ctrl, out_row, z, y, spacing):
    """Contract the control grid over (z, y) for one output row: ``out_row[k, c] = sum_ij wz_i wy_j ctrl[iz+i, iy+j, k, c]``.

    Cubic B-spline weights with knots every ``spacing`` output voxels; control index j sits at (j - 1) * spacing.
    """
    tz = z / spacing
    ty = y / spacing
    iz = int(math.floor(tz))
    iy = int(math.floor(ty))
    uz = tz - iz
    uy = ty - iy
    nk = ctrl.shape[2]
    for k in range(nk):
        for c in range(3):
            out_row[k, c] = 0.0
    for i in range(4):
        if i == 0:
            wz = (1.0 - uz) * (1.0 - uz) * (1.0 - uz) / 6.0
        elif i == 1:
            wz = (3.0 * uz * uz * uz - 6.0 * uz * uz + 4.0) / 6.0
        elif i == 2:
            wz = (-3.0 * uz * uz * uz + 3.0 * uz * uz + 3.0 * uz + 1.0) / 6.0
        else:
            wz = uz * uz * uz / 6.0
        for j in range(4):
            if j == 0:
                wy = (1.0 - uy) * (1.0 - uy) * (1.0 - uy) / 6.0
            elif j == 1:
                wy = (3.0 * uy * uy * uy - 6.0 * uy * uy + 4.0) / 6.0
            elif j == 2:
                wy = (-3.0 * uy * uy * uy + 3.0 * uy * uy + 3.0 * uy + 1.0) / 6.0
            else:
                wy = uy * uy * uy / 6.0
            w = wz * wy
            for k in range(nk):
                for c in range(3):
                    out_row[k, c] += w * ctrl[iz + i, iy + j, k, c]


def bspline_x(row, x, spacing):
    """Finish the B-spline sum along x from a contracted row (see ``bspline_row``): the (z, y, x) displacement."""
    tx = x / spacing
    ix = int(math.floor(tx))
    u = tx - ix
    w0 = (1.0 - u) * (1.0 - u) * (1.0 - u) / 6.0
    w1 = (3.0 * u * u * u - 6.0 * u * u + 4.0) / 6.0
    w2 = (-3.0 * u * u * u + 3.0 * u * u + 3.0 * u + 1.0) / 6.0
    w3 = u * u * u / 6.0
    dz = w0 * row[ix, 0] + w1 * row[ix + 1, 0] + w2 * row[ix + 2, 0] + w3 * row[ix + 3, 0]
    dy = w0 * row[ix, 1] + w1 * row[ix + 1, 1] + w2 * row[ix + 2, 1] + w3 * row[ix + 3, 1]
    dx = w0 * row[ix, 2] + w1 * row[ix + 1, 2] + w2 * row[ix + 2, 2] + w3 * row[ix + 3, 2]
    return dz, dy, dx


def bspline_voxel(ctrl, z, y, x, spacing, c):
    """Component ``c`` of the B-spline displacement at output voxel (z, y, x), same arithmetic as the row path."""
    tz = z / spacing
    ty = y / spacing
    tx = x / spacing
    iz = int(math.floor(tz))
    iy = int(math.floor(ty))
    ix = int(math.floor(tx))
    uz = tz - iz
    uy = ty - iy
    u = tx - ix
    total = 0.0
    for kk in range(4):
        acc = 0.0
        for i in range(4):
            if i == 0:
                wz = (1.0 - uz) * (1.0 - uz) * (1.0 - uz) / 6.0
            elif i == 1:
                wz = (3.0 * uz * uz * uz - 6.0 * uz * uz + 4.0) / 6.0
            elif i == 2:
                wz = (-3.0 * uz * uz * uz + 3.0 * uz * uz + 3.0 * uz + 1.0) / 6.0
            else:
                wz = uz * uz * uz / 6.0
            for j in range(4):
                if j == 0:
                    wy = (1.0 - uy) * (1.0 - uy) * (1.0 - uy) / 6.0
                elif j == 1:
                    wy = (3.0 * uy * uy * uy - 6.0 * uy * uy + 4.0) / 6.0
                elif j == 2:
                    wy = (-3.0 * uy * uy * uy + 3.0 * uy * uy + 3.0 * uy + 1.0) / 6.0
                else:
                    wy = uy * uy * uy / 6.0
                acc += (wz * wy) * ctrl[iz + i, iy + j, ix + kk, c]
        if kk == 0:
            total = (1.0 - u) * (1.0 - u) * (1.0 - u) / 6.0 * acc
        elif kk == 1:
            total = total + (3.0 * u * u * u - 6.0 * u * u + 4.0) / 6.0 * acc
        elif kk == 2:
            total = total + (-3.0 * u * u * u + 3.0 * u * u + 3.0 * u + 1.0) / 6.0 * acc
        else:
            total = total + u * u * u / 6.0 * acc
    return total
