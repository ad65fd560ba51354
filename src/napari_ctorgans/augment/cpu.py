"""CPU backend: one fused, parallel Numba pass over the output voxels.

Per output voxel, in the paper's order: affine (+ optional B-spline elastic) sampling coordinate, nearest-neighbour
label, occlusion test (an occluded voxel skips the image fetch, noise and window and is 0 in the output), trilinear
image sample, additive noise from a counter-based hash of (key, voxel index), window to [0, 1]. No full-size
temporary arrays; coordinates in float64 so labels match scipy and the CUDA backend exactly.
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np
from numba import njit, prange

from . import rng as _r

_jit = njit(cache=True, nogil=True, inline="always")
hash64 = _jit(_r.hash64)
normal_from_hash = _jit(_r.normal_from_hash)
trilinear = _jit(_r.trilinear)
nearest_flat = _jit(_r.nearest_flat)
bspline_row = _jit(_r.bspline_row)
bspline_x = _jit(_r.bspline_x)


@njit(cache=True, nogil=True, inline="always")
def _x_range(b0, s0, n0, b1, s1, n1, b2, s2, n2, nx, low, high_off, pad):
    """x range [lo, hi) of a row where ``low <= b_k + s_k x < n_k + high_off`` on every axis, widened by ``pad``
    voxels at both ends (``pad`` < 0 shrinks it: a conservative inner range)."""
    lo = 0.0
    hi = float(nx)
    for k in range(3):
        if k == 0:
            b, s, n = b0, s0, n0
        elif k == 1:
            b, s, n = b1, s1, n1
        else:
            b, s, n = b2, s2, n2
        top = n + high_off
        if s == 0.0:
            if b < low or b >= top:
                return 0, 0
        elif s > 0.0:
            lo = max(lo, (low - b) / s)
            hi = min(hi, (top - b) / s)
        else:
            lo = max(lo, (top - b) / s)
            hi = min(hi, (low - b) / s)
    if hi < lo:
        return 0, 0
    ilo = int(math.floor(lo)) - pad
    ihi = int(math.ceil(hi)) + pad
    ilo = min(max(ilo, 0), nx)
    ihi = min(max(ihi, 0), nx)
    if ihi <= ilo:
        return 0, 0
    return ilo, ihi


@njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _augment_kernel(
    image, labels, out_img, out_lab, mat, off, occ_lo, occ_hi, sigma, key, win_a, win_scale, out_value,
    ctrl, spacing, use_elastic, use_labels, out_label,
):  # fmt: skip
    nz, ny, nx = out_img.shape
    lz, ly, lx = labels.shape
    iz_, iy_, ix_ = image.shape
    flat = image.reshape(iz_ * iy_ * ix_)
    lflat = labels.reshape(lz * ly * lx)
    sy = ix_
    sz = iy_ * ix_
    u1 = np.uint64(1)
    usy = np.uint64(sy)
    usy1 = np.uint64(sy + 1)
    usz = np.uint64(sz)
    usz1 = np.uint64(sz + 1)
    uszy = np.uint64(sz + sy)
    uszy1 = np.uint64(sz + sy + 1)
    m00, m01, m02 = mat[0, 0], mat[0, 1], mat[0, 2]
    m10, m11, m12 = mat[1, 0], mat[1, 1], mat[1, 2]
    m20, m21, m22 = mat[2, 0], mat[2, 1], mat[2, 2]
    o0, o1, o2 = off[0], off[1], off[2]
    nk = ctrl.shape[2]
    for z in prange(nz):
        row = np.zeros((nk, 3), dtype=np.float64)
        noise = np.zeros(nx, dtype=np.float64)
        fz = float(z)
        occluded = occ_lo <= fz and fz <= occ_hi
        for y in range(ny):
            fy = float(y)
            b0 = m00 * fz + m01 * fy + o0
            b1 = m10 * fz + m11 * fy + o1
            b2 = m20 * fz + m21 * fy + o2
            if use_elastic:
                bspline_row(ctrl, row, fz, fy, spacing)
                xa, xb = 0, 0
                ga, gb = 0, nx
            else:
                # [xa, xb): all 8 trilinear neighbours inside (shrunk by 2 voxels for rounding safety);
                # outside [ga, gb): every neighbour outside (widened by 2 voxels); in between: edge checks
                xa, xb = _x_range(b0, m02, iz_, b1, m12, iy_, b2, m22, ix_, nx, 1e-6, -1.0 - 1e-6, -2)
                ga, gb = _x_range(b0, m02, iz_, b1, m12, iy_, b2, m22, ix_, nx, -1.0, 0.0, 2)
                if xa < xb:
                    ga = min(ga, xa)
                    gb = max(gb, xb)
            # fast path: every trilinear neighbour is inside the volume, no edge checks, no branches
            base = (z * ny + y) * nx
            img_row = out_img[z, y]
            lab_row = out_lab[z, y] if use_labels else out_lab[0, 0]
            if sigma > 0.0 and not occluded:
                # noise for the whole row first: pure integer arithmetic that the compiler vectorises
                for x in range(nx):
                    noise[x] = sigma * normal_from_hash(hash64(key, base + x))
            for x in range(xa, xb):
                fx = float(x)
                pz = b0 + m02 * fx
                py = b1 + m12 * fx
                px = b2 + m22 * fx
                fz0 = math.floor(pz)
                fy0 = math.floor(py)
                fx0 = math.floor(px)
                tz = pz - fz0
                ty = py - fy0
                tx = px - fx0
                if use_labels:
                    # nearest voxel from the same floors: floor(p + 0.5) == floor(p) + (frac(p) >= 0.5)
                    liz = fz0 + (1 if tz >= 0.5 else 0)
                    liy = fy0 + (1 if ty >= 0.5 else 0)
                    lix = fx0 + (1 if tx >= 0.5 else 0)
                    lab_row[x] = lflat[np.uint64((liz * ly + liy) * lx + lix)]
                if not occluded:
                    # unsigned indices: no negative-index wraparound test on the 8 loads
                    i = np.uint64(fz0 * sz + fy0 * sy + fx0)
                    v000 = float(flat[i])
                    v001 = float(flat[i + u1])
                    v010 = float(flat[i + usy])
                    v011 = float(flat[i + usy1])
                    v100 = float(flat[i + usz])
                    v101 = float(flat[i + usz1])
                    v110 = float(flat[i + uszy])
                    v111 = float(flat[i + uszy1])
                    c00 = v000 + tx * (v001 - v000)
                    c01 = v010 + tx * (v011 - v010)
                    c10 = v100 + tx * (v101 - v100)
                    c11 = v110 + tx * (v111 - v110)
                    c0 = c00 + ty * (c01 - c00)
                    c1 = c10 + ty * (c11 - c10)
                    v = c0 + tz * (c1 - c0)
                    if sigma > 0.0:
                        v = v + noise[x]
                    v = (v - win_a) * win_scale
                    img_row[x] = min(max(v, 0.0), 1.0)
            # entirely outside the input: background label, out-of-volume value (+ noise, window)
            for x in range(nx):
                if x >= ga and x < gb:
                    continue
                if use_labels:
                    out_lab[z, y, x] = out_label
                if not occluded:
                    v = out_value
                    if sigma > 0.0:
                        v = v + noise[x]
                    v = (v - win_a) * win_scale
                    out_img[z, y, x] = min(max(v, 0.0), 1.0)
            # general path: near the edges, or with the elastic term
            for x in range(ga, gb):
                if x >= xa and x < xb:
                    continue
                fx = float(x)
                pz = b0 + m02 * fx
                py = b1 + m12 * fx
                px = b2 + m22 * fx
                if use_elastic:
                    dz, dy, dx = bspline_x(row, fx, spacing)
                    pz = pz + dz
                    py = py + dy
                    px = px + dx
                if use_labels:
                    li = nearest_flat(lz, ly, lx, pz, py, px)
                    if li < 0:
                        out_lab[z, y, x] = out_label
                    else:
                        out_lab[z, y, x] = lflat[li]
                if occluded:
                    continue
                v = trilinear(flat, iz_, iy_, ix_, pz, py, px, out_value)
                if sigma > 0.0:
                    v = v + noise[x]
                v = (v - win_a) * win_scale
                out_img[z, y, x] = min(max(v, 0.0), 1.0)
        if occluded:
            out_img[z, :, :] = 0.0


_LAUNCH_LOCK = threading.Lock()
CHUNKSIZE = 2  # z-planes per dynamically scheduled chunk (0: numba static schedule)


def run(image, labels, out_img, out_lab, drawn, out_value, out_label, *, force_elastic=False):
    """Fill ``out_img`` (float32) and ``out_lab`` (labels dtype, or None) from a drawn transform."""
    use_labels = labels is not None
    if not use_labels:
        labels = np.zeros((1, 1, 1), dtype=np.uint8)
        out_lab = np.zeros((1, 1, 1), dtype=np.uint8)
    ctrl = drawn["elastic"]
    use_elastic = ctrl is not None or force_elastic
    if ctrl is None:
        ctrl = np.zeros((4, 4, 4, 3) if not force_elastic else _grid(out_img.shape, drawn), dtype=np.float64)
    occ = drawn["occlusion"]
    occ_lo, occ_hi = (occ if occ is not None else (1.0, 0.0))
    a, b = drawn["window"]
    # one parallel kernel at a time: Numba's "workqueue" threading layer aborts on concurrent launches, and two
    # parallel launches would only oversubscribe the cores anyway
    args = (
        image, labels, out_img, out_lab,
        np.ascontiguousarray(drawn["matrix"], dtype=np.float64), np.ascontiguousarray(drawn["offset"], dtype=np.float64),
        float(occ_lo), float(occ_hi), float(drawn["noise_sigma"]), np.uint64(drawn["noise_key"]),
        float(a), 1.0 / (float(b) - float(a)), float(out_value),
        np.ascontiguousarray(ctrl, dtype=np.float64), float(drawn["elastic_spacing"]), bool(use_elastic),
        bool(use_labels), out_lab.dtype.type(out_label),
    )  # fmt: skip
    # small dynamic chunks of z-planes: a thread delayed by other processes does not hold up the whole volume
    with _LAUNCH_LOCK, numba.parallel_chunksize(CHUNKSIZE):
        _augment_kernel(*args)


def _grid(shape, drawn):
    from .sampling import elastic_grid_shape

    return elastic_grid_shape(tuple(shape), drawn["elastic_spacing"])
