"""CUDA dilation: FFT on the device through torch.fft (cuFFT), elementwise steps as Numba-CUDA kernels.

The kernels work on the torch tensors' memory without copies (``__cuda_array_interface__``). ``numba.cuda`` is
imported only when this path runs. Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the tensors live on the
CPU and the kernels receive numpy views of them, so the same code is tested without a GPU.
"""

from __future__ import annotations

import math
import os

import numpy as np

#: what the last call ran on ("numba-cuda"), for tests
LAST_RUN: str | None = None

_KERNELS: dict | None = None
_THREADS = 256


def _simulated() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _kernels() -> dict:
    global _KERNELS
    if _KERNELS is None:
        from . import _cuda_kernels as kk  # imports numba.cuda

        _KERNELS = {"pad": kk.pad_kernel, "cmul": kk.cmul_kernel, "threshold": kk.threshold_kernel}
    return _KERNELS


def _view(t):
    """A kernel argument sharing the tensor's memory: a Numba device array on a GPU, a numpy view in the simulator."""
    if t.is_cuda:
        from numba import cuda

        return cuda.as_cuda_array(t.detach())
    return t.detach().numpy()


def _launch(kernel, n, *args):
    blocks = max(1, math.ceil(n / _THREADS))
    kernel[blocks, _THREADS](*args)


def dilate_fft(m: np.ndarray, k: np.ndarray, *, border_value: int = 0) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(m, k, border_value=border_value)`` computed on the device."""
    global LAST_RUN
    import scipy.fft
    import torch

    dev = torch.device("cpu" if _simulated() else "cuda")
    kern = _kernels()
    half = tuple(s // 2 for s in k.shape)
    shape = tuple(scipy.fft.next_fast_len(int(s + 2 * h), real=True) for s, h in zip(m.shape, half))
    mask_t = torch.from_numpy(np.ascontiguousarray(m, dtype=np.uint8)).to(dev)
    f = torch.empty(shape, dtype=torch.float32, device=dev)
    _launch(kern["pad"], f.numel(), _view(mask_t), _view(f), half[0], half[1], half[2], np.float32(border_value))
    spec = torch.fft.rfftn(f, s=shape)
    del f
    kt = torch.zeros(shape, dtype=torch.float32, device=dev)
    kt[tuple(slice(0, n) for n in k.shape)] = torch.from_numpy(k.astype(np.float32)).to(dev)
    kspec = torch.fft.rfftn(kt, s=shape)
    del kt
    a = torch.view_as_real(spec).reshape(-1, 2)
    b = torch.view_as_real(kspec).reshape(-1, 2)
    _launch(kern["cmul"], a.shape[0], _view(a), _view(b))
    del kspec, b
    conv = torch.fft.irfftn(spec, s=shape).contiguous()
    del spec, a
    out = torch.empty(m.shape, dtype=torch.uint8, device=dev)
    _launch(kern["threshold"], out.numel(), _view(conv), _view(out), 2 * half[0], 2 * half[1], 2 * half[2])
    LAST_RUN = "numba-cuda"
    return out.cpu().numpy().astype(bool)
