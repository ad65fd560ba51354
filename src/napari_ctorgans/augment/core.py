"""Public entry point :func:`augment`: validate, draw the transform, run a backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from .params import OUT_LABEL, OUT_VALUE_HU, AugmentParams
from .sampling import draw_transform

BACKENDS = ("auto", "cpu", "cuda")


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover
        return False


def check_shape(value: Any, name: str) -> tuple[int, int, int]:
    try:
        shape = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be 3 integers (z, y, x), got {value!r}") from None
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be 3 positive integers (z, y, x), got {value!r}; e.g. {name}=(160, 120, 120)")
    return shape  # type: ignore[return-value]


def check_finite(image: Any) -> None:
    """Refuse an image holding NaN or infinite values: every voxel they touch would come out NaN (or blank)."""
    if _is_torch(image):
        import torch

        if not image.is_floating_point():
            return
        bad = ~torch.isfinite(image)
        count = int(bad.sum().item())
        first = tuple(int(i) for i in bad.nonzero()[0].tolist()) if count else None
    else:
        arr = np.asarray(image)
        if arr.dtype.kind not in "fc":
            return
        bad = ~np.isfinite(arr)
        count = int(np.count_nonzero(bad))
        first = tuple(int(i) for i in np.argwhere(bad)[0]) if count else None
    if count:
        raise ValueError(
            f"image holds {count} NaN or infinite values (the first at voxel (z, y, x) = {first}); augment needs a "
            "CT in HU with a finite value in every voxel: fill them first (e.g. np.nan_to_num(image, nan=-1024, "
            "posinf=3071, neginf=-1024)) or check how the volume was made"
        )


def augment(
    image: Any,
    labels: Any,
    params: AugmentParams | None,
    *,
    seed: int,
    backend: str = "auto",
    out_shape: tuple[int, int, int] | None = None,
    return_transform: bool = False,
):
    """Randomly warp, occlude, add noise to and window a CT volume (and warp its labels the same way).

    One fused pass per output voxel (Rister et al. 2020, section IV): affine warp with optional B-spline elastic
    term (trilinear image, nearest-neighbour labels), occlusion slab along z, additive Gaussian noise, window/level
    to [0, 1]. Image voxels sampled outside the input count as -1024 HU (air) and label voxels as 0 (background);
    trilinear weights blend them in at the border (``scipy.ndimage`` mode ``"grid-constant"``). An occluded voxel
    is 0 in the output image; labels are not occluded.

    Parameters
    ----------
    image : ndarray or torch.Tensor, shape (Z, Y, X)
        CT in HU (any real dtype). A torch CUDA tensor selects the CUDA backend with ``backend="auto"``.
    labels : ndarray or torch.Tensor, shape (Z, Y, X), integer, or None
        Label map on the same grid.
    params : AugmentParams or None
        Ranges to draw from; None means :meth:`AugmentParams.none`.
    seed : int
        Seed of the draw and of the noise; the same seed gives the same output on every backend and thread count.
    backend : {"auto", "cpu", "cuda"}
        ``"auto"`` picks CUDA for torch CUDA tensors and the CPU otherwise.
    out_shape : 3 ints, optional
        Output shape (a centred crop, or pad, of the input before displacement); default the input shape.
    return_transform : bool
        Also return the drawn quantities (see :func:`~napari_ctorgans.augment.sampling.draw_transform`).

    Returns
    -------
    image_out : ndarray float32 (Z', Y', X') in [0, 1] (a tensor on the CUDA backend)
    labels_out : ndarray (Z', Y', X') of the labels' dtype, or None
    drawn : dict, only when ``return_transform``; ``drawn["matrix"] @ x + drawn["offset"]`` is the input
        coordinate sampled by output voxel x (the ``scipy.ndimage.affine_transform`` convention).

    Raises
    ------
    ValueError
        Bad shapes, unknown backend, negative seed, an image holding NaN or infinite values.
    TypeError
        Non-integer labels, params of the wrong type.

    Examples
    --------
    >>> import numpy as np, napari_ctorgans as ct
    >>> img = np.full((24, 24, 24), -1000.0, np.float32)
    >>> out, lab, drawn = ct.augment(img, None, ct.AugmentParams(), seed=1, return_transform=True)
    >>> out.shape, lab is None, drawn["matrix"].shape
    ((24, 24, 24), True, (3, 3))
    """
    if params is None:
        params = AugmentParams.none()
    if not isinstance(params, AugmentParams):
        raise TypeError(f"params must be an AugmentParams, got {type(params).__name__}; use AugmentParams.from_dict()")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    on_gpu = _is_torch(image) and image.is_cuda
    if backend == "auto":
        backend = "cuda" if on_gpu else "cpu"
    if image is None or getattr(image, "ndim", None) != 3:
        raise ValueError(f"image must be a 3D (z, y, x) array, got {getattr(image, 'shape', type(image).__name__)}")
    in_shape = tuple(int(s) for s in image.shape)
    if labels is not None:
        if tuple(labels.shape) != in_shape:
            raise ValueError(
                f"labels must have the image's shape {in_shape}, got {tuple(labels.shape)}; "
                "resample the labels onto the image grid first"
            )
        kind = str(labels.dtype)
        if not any(k in kind for k in ("int", "bool")):
            raise TypeError(f"labels must be an integer array, got dtype {labels.dtype}; use labels.astype(np.uint8)")
    check_finite(image)
    out_shape = in_shape if out_shape is None else check_shape(out_shape, "out_shape")
    drawn = draw_transform(params, int(seed), in_shape, out_shape)  # type: ignore[arg-type]
    drawn["out_shape"] = out_shape
    if backend == "cuda":
        from . import cuda as _cuda

        img_out, lab_out = _cuda.augment_cuda(image, labels, drawn, OUT_VALUE_HU, OUT_LABEL)
    else:
        if _is_torch(image):
            image = image.detach().cpu().numpy()
        if _is_torch(labels):
            labels = labels.detach().cpu().numpy()
        from . import cpu as _cpu

        img = np.asarray(image)
        if img.dtype.kind not in "iuf":
            raise TypeError(f"image must be a real-valued array, got dtype {img.dtype}")
        if img.dtype != np.float32:  # one compiled kernel per labels dtype (HU are exact in float32)
            img = img.astype(np.float32)
        img = np.ascontiguousarray(img)
        lab = None if labels is None else np.ascontiguousarray(labels)
        if lab is not None and lab.dtype == bool:
            lab = lab.view(np.uint8)
        img_out = np.empty(out_shape, dtype=np.float32)
        lab_out = None if lab is None else np.empty(out_shape, dtype=lab.dtype)
        _cpu.run(img, lab, img_out, lab_out, drawn, OUT_VALUE_HU, OUT_LABEL)
        if labels is not None and np.asarray(labels).dtype == bool:
            lab_out = lab_out.view(bool)
    if return_transform:
        return img_out, lab_out, drawn
    return img_out, lab_out
