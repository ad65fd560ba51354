"""Draw one random transform from :class:`AugmentParams` and a seed (numpy's PCG64, drawn once per example)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .params import AugmentParams


def _rotation(axis: int, angle_deg: float) -> np.ndarray:
    """Rotation matrix about array axis ``axis`` (acting on the two other axes)."""
    t = math.radians(angle_deg)
    c, s = math.cos(t), math.sin(t)
    r = np.eye(3)
    i, j = [k for k in range(3) if k != axis]
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def elastic_grid_shape(out_shape: tuple[int, int, int], spacing: float) -> tuple[int, int, int, int]:
    """Shape of the B-spline control grid covering ``out_shape`` (4 knots around every voxel), plus 3 components."""
    return tuple(int(math.floor((n - 1) / spacing)) + 4 for n in out_shape) + (3,)  # type: ignore[return-value]


def draw_transform(
    params: AugmentParams,
    seed: int,
    in_shape: tuple[int, int, int],
    out_shape: tuple[int, int, int],
) -> dict[str, Any]:
    """Draw every random quantity of one example.

    Returns a dict with ``matrix`` (3, 3) and ``offset`` (3,) such that output voxel x samples the input at
    ``matrix @ x + offset`` (plus the elastic displacement), ``reflect`` (3 bools), ``displacement`` (3,),
    ``window`` (a, b), ``noise_sigma``, ``noise_key`` (uint64), ``occlusion`` ((z_start, z_end) in output voxels
    or None), ``elastic`` (control displacements, shape ``elastic_grid_shape``, or None) and ``elastic_spacing``.
    """
    rng = np.random.default_rng(seed)
    u = rng.uniform
    angles = [u(*params.rotation_deg[k]) for k in range(3)]
    scales = [u(*params.scale[k]) for k in range(3)]
    shear = np.eye(3)
    for i in range(3):
        for j in range(3):
            if i != j:
                shear[i, j] = u(*params.shear)
    reflect = [bool(rng.random() < params.reflect_prob[k]) for k in range(3)]
    generic = np.array([[u(*params.affine) for _ in range(3)] for _ in range(3)])
    disp = np.array([u(*params.displacement[k]) for k in range(3)])
    sigma = u(*params.noise_sigma)
    a = u(*params.window_low)
    b = u(*params.window_high)
    delta = u(0.0, params.occlusion_max)
    z0 = u(-params.occlusion_max, out_shape[0] - 1)
    noise_key = int(rng.integers(0, 2**63 - 1, dtype=np.int64))

    rot = _rotation(0, angles[0]) @ _rotation(1, angles[1]) @ _rotation(2, angles[2])
    flip = np.diag([-1.0 if f else 1.0 for f in reflect])
    # output -> input sampling matrix: zooming the anatomy by s means sampling the input with step 1/s
    matrix = rot @ shear @ np.diag([1.0 / s for s in scales]) @ flip + generic
    c_out = (np.asarray(out_shape, dtype=np.float64) - 1.0) / 2.0
    c_in = (np.asarray(in_shape, dtype=np.float64) - 1.0) / 2.0
    # b = c + d - A c: the output centre samples the input centre displaced by exactly d
    offset = c_in + disp - matrix @ c_out

    elastic = None
    if params.elastic_magnitude > 0:
        grid = elastic_grid_shape(out_shape, params.elastic_spacing)
        m = params.elastic_magnitude
        elastic = rng.uniform(-m, m, size=grid)
    return {
        "matrix": matrix,
        "offset": offset,
        "angles_deg": np.asarray(angles),
        "scale": np.asarray(scales),
        "reflect": reflect,
        "displacement": disp,
        "window": (float(a), float(b)),
        "noise_sigma": float(sigma),
        "noise_key": noise_key,
        "occlusion": (float(z0), float(z0 + delta)) if params.occlusion_max > 0 else None,
        "elastic": elastic,
        "elastic_spacing": float(params.elastic_spacing),
    }
