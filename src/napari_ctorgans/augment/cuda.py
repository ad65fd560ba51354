"""CUDA backend: one Numba-CUDA thread per output voxel, reading and writing torch CUDA tensors in place.

Imported lazily (only when ``backend="cuda"``), so the CPU path never needs a GPU or the CUDA toolkit. The device
functions are compiled from the same Python source as the CPU kernel's (``rng.py``), with coordinates and
interpolation in float64, so labels match the CPU backend bit for bit and images to float32 rounding. The kernel is
tested in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) with numpy arrays; on a GPU it accepts torch CUDA
tensors through ``__cuda_array_interface__`` and runs on torch's current stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

from . import rng as _r

_dev = cuda.jit(device=True)
hash64 = _dev(_r.hash64)
normal_from_hash = _dev(_r.normal_from_hash)
trilinear = _dev(_r.trilinear)
nearest_flat = _dev(_r.nearest_flat)
bspline_voxel = _dev(_r.bspline_voxel)

THREADS = 256


@cuda.jit
def _augment_kernel(
    flat, iz_, iy_, ix_, lflat, lz, ly, lx, out_img, out_lab, mat, off, occ_lo, occ_hi, sigma, key, win_a,
    win_scale, out_value, ctrl, spacing, use_elastic, use_labels, out_label,
):  # fmt: skip
    idx = cuda.grid(1)
    nz = out_img.shape[0]
    ny = out_img.shape[1]
    nx = out_img.shape[2]
    if idx >= nz * ny * nx:
        return
    x = idx % nx
    y = (idx // nx) % ny
    z = idx // (nx * ny)
    fz = float(z)
    fy = float(y)
    fx = float(x)
    # same expression order as the CPU kernel: row base first, then the x term
    pz = (mat[0, 0] * fz + mat[0, 1] * fy + off[0]) + mat[0, 2] * fx
    py = (mat[1, 0] * fz + mat[1, 1] * fy + off[1]) + mat[1, 2] * fx
    px = (mat[2, 0] * fz + mat[2, 1] * fy + off[2]) + mat[2, 2] * fx
    if use_elastic:
        pz = pz + bspline_voxel(ctrl, fz, fy, fx, spacing, 0)
        py = py + bspline_voxel(ctrl, fz, fy, fx, spacing, 1)
        px = px + bspline_voxel(ctrl, fz, fy, fx, spacing, 2)
    if use_labels:
        li = nearest_flat(lz, ly, lx, pz, py, px)
        if li < 0:
            out_lab[z, y, x] = out_label
        else:
            out_lab[z, y, x] = lflat[li]
    if occ_lo <= fz and fz <= occ_hi:  # occluded: skip the fetch, noise and window (paper, section IV)
        out_img[z, y, x] = 0.0
        return
    v = trilinear(flat, iz_, iy_, ix_, pz, py, px, out_value)
    if sigma > 0.0:
        v = v + sigma * normal_from_hash(hash64(key, idx))
    v = (v - win_a) * win_scale
    out_img[z, y, x] = min(max(v, 0.0), 1.0)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def augment_cuda(image, labels, drawn, out_value, out_label, *, out=None):
    """Run the kernel for one drawn transform.

    ``image``/``labels`` are torch CUDA tensors (results are torch tensors on the same device, written on torch's
    current stream) or numpy arrays (copied to the device; results are numpy arrays). ``out`` optionally gives
    the ``(image_out, labels_out)`` tensors to fill in place.
    """
    out_shape = tuple(drawn["out_shape"])
    torch_io = _is_torch(image)
    if torch_io:
        import torch

        if not image.is_cuda:
            raise ValueError("backend='cuda' needs torch CUDA tensors or numpy arrays, got a CPU tensor")
        stream = cuda.external_stream(torch.cuda.current_stream(image.device).cuda_stream)
        img = image.detach().contiguous()
        if img.dtype != torch.float32:
            img = img.float()
        lab = None if labels is None else labels.detach().contiguous()
        if out is None:
            img_out = torch.empty(out_shape, dtype=torch.float32, device=image.device)
            lab_out = None if lab is None else torch.empty(out_shape, dtype=lab.dtype, device=image.device)
        else:
            img_out, lab_out = out
        d_flat = cuda.as_cuda_array(img.reshape(-1))
        d_lflat = cuda.as_cuda_array(lab.reshape(-1)) if lab is not None else cuda.to_device(np.zeros(1, np.uint8))
        d_img_out = cuda.as_cuda_array(img_out)
        d_lab_out = cuda.as_cuda_array(lab_out) if lab is not None else cuda.to_device(np.zeros((1, 1, 1), np.uint8))
        lab_dtype = np.dtype(str(lab.dtype).replace("torch.", "")) if lab is not None else np.dtype(np.uint8)
    else:
        stream = cuda.default_stream()
        img = np.ascontiguousarray(image)
        if img.dtype != np.float32:
            img = img.astype(np.float32)
        lab = None if labels is None else np.ascontiguousarray(labels)
        d_flat = cuda.to_device(img.reshape(-1), stream=stream)
        lab_dtype = lab.dtype if lab is not None else np.dtype(np.uint8)
        d_lflat = cuda.to_device((lab if lab is not None else np.zeros(1, np.uint8)).reshape(-1), stream=stream)
        d_img_out = cuda.device_array(out_shape, np.float32, stream=stream)
        d_lab_out = cuda.device_array(out_shape if lab is not None else (1, 1, 1), lab_dtype, stream=stream)
    ctrl = drawn["elastic"]
    use_elastic = ctrl is not None
    if ctrl is None:
        ctrl = np.zeros((4, 4, 4, 3))
    occ = drawn["occlusion"] if drawn["occlusion"] is not None else (1.0, 0.0)
    a, b = drawn["window"]
    shape_in = tuple(int(s) for s in image.shape)
    lshape = shape_in if labels is not None else (1, 1, 1)
    n = int(np.prod(out_shape))
    blocks = (n + THREADS - 1) // THREADS
    _augment_kernel[blocks, THREADS, stream](
        d_flat, shape_in[0], shape_in[1], shape_in[2], d_lflat, lshape[0], lshape[1], lshape[2], d_img_out,
        d_lab_out, cuda.to_device(np.ascontiguousarray(drawn["matrix"], np.float64), stream=stream),
        cuda.to_device(np.ascontiguousarray(drawn["offset"], np.float64), stream=stream), float(occ[0]),
        float(occ[1]), float(drawn["noise_sigma"]), np.uint64(drawn["noise_key"]), float(a), 1.0 / (float(b) - float(a)),
        float(out_value), cuda.to_device(np.ascontiguousarray(ctrl, np.float64), stream=stream),
        float(drawn["elastic_spacing"]), bool(use_elastic), labels is not None, lab_dtype.type(out_label),
    )  # fmt: skip
    if torch_io:
        return img_out, lab_out
    return d_img_out.copy_to_host(stream=stream), (d_lab_out.copy_to_host(stream=stream) if lab is not None else None)
