"""CUDA backend in Numba's CUDA simulator (a separate process: the variable must be set before numba loads)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from napari_ctorgans.augment import AugmentParams, augment

SHAPE_IN = (12, 14, 16)
SHAPE_OUT = (10, 12, 14)

CASES = {
    "affine_noise_occlusion": dict(
        rotation_deg=(-20, 20), displacement=(-2, 2), occlusion_max=4, noise_sigma=(20, 40), elastic_magnitude=0
    ),
    "elastic": dict(rotation_deg=(-10, 10), displacement=(-2, 2), elastic_spacing=6, elastic_magnitude=3),
    "reflect_int16": dict(reflect_prob=(0.5, 0.5, 1.0), displacement=(-1, 1), elastic_magnitude=0),
}


def _inputs():
    rng = np.random.default_rng(0)
    img = rng.uniform(-1000, 1000, SHAPE_IN).astype(np.float32)
    lab = rng.integers(0, 6, SHAPE_IN).astype(np.uint8)
    return img, lab


@pytest.mark.cudasim
def test_cuda_simulator_matches_cpu(tmp_path):
    script = textwrap.dedent(
        f"""
        import os, warnings
        assert os.environ["NUMBA_ENABLE_CUDASIM"] == "1"
        warnings.simplefilter("ignore")
        import numpy as np
        from numba import cuda
        assert cuda.simulator_enabled if hasattr(cuda, "simulator_enabled") else True
        from napari_ctorgans.augment import AugmentParams, augment
        rng = np.random.default_rng(0)
        img = rng.uniform(-1000, 1000, {SHAPE_IN}).astype(np.float32)
        lab = rng.integers(0, 6, {SHAPE_IN}).astype(np.uint8)
        out = {{}}
        for name, kw in {CASES!r}.items():
            src = img.astype(np.int16) if name.endswith("int16") else img
            a, la = augment(src, lab, AugmentParams(**kw), seed=3, backend="cuda", out_shape={SHAPE_OUT})
            out[name + "_img"], out[name + "_lab"] = a, la
        np.savez(r"{tmp_path / 'sim.npz'}", **out)
        """
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sim = np.load(tmp_path / "sim.npz")
    img, lab = _inputs()
    for name, kw in CASES.items():
        src = img.astype(np.int16) if name.endswith("int16") else img
        a, la = augment(src, lab, AugmentParams(**kw), seed=3, backend="cpu", out_shape=SHAPE_OUT)
        np.testing.assert_array_equal(sim[name + "_lab"], la, err_msg=name)
        np.testing.assert_allclose(sim[name + "_img"], a, atol=1e-6, err_msg=name)
        assert 0.05 < (a > 0).mean() and (la > 0).mean() > 0.3  # the volumes were actually sampled
    # occlusion and noise really ran on the simulated device
    assert (sim["affine_noise_occlusion_img"] == 0).any()
