"""Ball morphology against scipy.ndimage on real CT masks: 0 differing voxels, every method, both borders."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_ctorgans import morphology as M

SCIPY = {
    "dilate": ndi.binary_dilation,
    "erode": ndi.binary_erosion,
    "opening": ndi.binary_opening,
    "closing": ndi.binary_closing,
}


@pytest.fixture(scope="module")
def air_mask(abdomen_3mm):
    # a real mask with structure touching every border: air (outside, lungs, bowel gas)
    return abdomen_3mm.array < -150


@pytest.fixture(scope="module")
def native_crop():
    """A real mask at native resolution (0.98 x 0.98 x 2 mm) from the DICOM series, cropped for speed."""
    import napari_ctorgans as ct
    from conftest import data_file

    vol = ct.read_volume(data_file("abdomen_dicom"))
    return (vol.array[:, 200:330, 190:320] > 200), vol.spacing


def test_ball_shape_and_symmetry():
    k = M.ball(25.0, (2.0, 0.977, 0.977))
    assert k.shape == (13, 25, 25)
    assert np.array_equal(k, k[::-1, ::-1, ::-1])
    assert M.ball(6.0, 3.0).sum() == 7
    assert M.ball(1.0, 3.0).shape == (1, 1, 1)


@pytest.mark.parametrize("op", list(SCIPY))
@pytest.mark.parametrize("border_value", [0, 1])
@pytest.mark.parametrize("diameter", [10.0, 25.0])
def test_exact_vs_scipy_3mm(air_mask, op, border_value, diameter):
    sp = (3.0, 3.0, 3.0)
    k = M.ball(diameter, sp)
    ref = SCIPY[op](air_mask, k, border_value=border_value)
    for method in ("fft", "direct", "edt"):
        out = getattr(M, op)(air_mask, diameter, sp, method=method, border_value=border_value, backend="cpu")
        assert out.dtype == bool and out.shape == air_mask.shape
        assert int(np.count_nonzero(out != ref)) == 0, method


@pytest.mark.parametrize("diameter", [7.0, 25.0])
def test_exact_vs_scipy_native_anisotropic(native_crop, diameter):
    mask, sp = native_crop
    k = M.ball(diameter, sp)
    assert k.shape[0] < k.shape[1]  # anisotropic grid: fewer voxels along z
    for bv in (0, 1):
        ref_d = ndi.binary_dilation(mask, k, border_value=bv)
        ref_e = ndi.binary_erosion(mask, k, border_value=bv)
        for method in ("fft", "direct", "edt", "auto"):
            assert np.array_equal(M.dilate(mask, diameter, sp, method=method, border_value=bv), ref_d), method
            assert np.array_equal(M.erode(mask, diameter, sp, method=method, border_value=bv), ref_e), method


def test_border_semantics_outside_is_air():
    # an air mask that fills a whole slab touches the border: eroded with outside = air it keeps touching it
    m = np.zeros((12, 12, 12), dtype=bool)
    m[:, :, :4] = True
    inside = M.erode(m, 10.0, 3.0, border_value=1)
    outside0 = M.erode(m, 10.0, 3.0, border_value=0)
    assert inside[:, :, 0].all() and inside[0, 0, 0]
    assert not outside0[0].any()  # outside = background: erosion eats the border
    assert M.closing(m, 10.0, 3.0, border_value=0).sum() < m.sum()  # scipy's closing shrinks at the border


def test_small_ball_is_identity_and_tiny_volume():
    m = np.random.default_rng(0).random((4, 5, 6)) > 0.5
    assert np.array_equal(M.dilate(m, 1.0, 3.0), m)
    # a ball larger than the whole volume still matches scipy
    k = M.ball(40.0, 3.0)
    assert np.array_equal(M.dilate(m, 40.0, 3.0, method="fft"), ndi.binary_dilation(m, k))
    assert np.array_equal(M.erode(m, 40.0, 3.0, method="direct", border_value=1),
                          ndi.binary_erosion(m, k, border_value=1))


def test_integer_mask_accepted():
    m = np.zeros((8, 8, 8), dtype=np.uint8)
    m[4, 4, 4] = 1
    assert M.dilate(m, 7.0, 3.0).sum() == 7


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        (dict(mask=np.zeros((4, 4), bool), diameter_mm=5, spacing=1), ValueError, "3D"),
        (dict(mask=np.zeros((4, 4, 4), np.float32), diameter_mm=5, spacing=1), TypeError, "boolean"),
        (dict(mask=np.full((4, 4, 4), 2, np.uint8), diameter_mm=5, spacing=1), ValueError, "0 and 1"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm=-1, spacing=1), ValueError, "diameter_mm"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm="x", spacing=1), TypeError, "diameter_mm"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm=5, spacing=(1, 1)), ValueError, "spacing"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm=5, spacing=1, backend="gpu"), ValueError, "backend"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm=5, spacing=1, method="x"), ValueError, "method"),
        (dict(mask=np.zeros((4, 4, 4), bool), diameter_mm=5, spacing=1, border_value=2), ValueError, "border_value"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        M.dilate(**kwargs)


def test_cuda_without_gpu_warns_and_falls_back(air_mask):
    if M.cuda_available():
        pytest.skip("a CUDA device is present")
    M._warned_no_cuda = False
    with pytest.warns(RuntimeWarning, match="no CUDA GPU"):
        out = M.dilate(air_mask, 10.0, 3.0, backend="cuda")
    assert np.array_equal(out, ndi.binary_dilation(air_mask, M.ball(10.0, 3.0)))


@pytest.mark.cudasim
def test_cuda_kernels_in_simulator_match_cpu(tmp_path):
    """The CUDA path (torch.fft + Numba-CUDA kernels) in Numba's simulator, on a 16^3 real-like mask."""
    script = textwrap.dedent(
        """
        import numpy as np
        from scipy import ndimage as ndi
        from napari_ctorgans import morphology as M
        from napari_ctorgans.morphology import cuda as C
        rng = np.random.default_rng(3)
        m = ndi.binary_opening(rng.random((10, 12, 12)) > 0.5)
        sp = (2.0, 1.0, 1.0)
        for d in (4.5,):
            k = M.ball(d, sp)
            for bv in (0, 1):
                for op, ref in (("dilate", ndi.binary_dilation), ("erode", ndi.binary_erosion)):
                    out = getattr(M, op)(m, d, sp, backend="cuda", border_value=bv)
                    cpu = getattr(M, op)(m, d, sp, backend="cpu", border_value=bv)
                    assert np.array_equal(out, cpu), (op, d, bv)
                    assert np.array_equal(out, ref(m, k, border_value=bv)), (op, d, bv)
        assert C.LAST_RUN == "numba-cuda", C.LAST_RUN
        print("OK")
        """
    )
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK" in res.stdout


@pytest.mark.parametrize("border_value", [0, 1])
def test_fft_in_z_slabs_is_exact(air_mask, border_value):
    from napari_ctorgans.morphology import cpu

    k = M.ball(25.0, 3.0)
    ref = ndi.binary_dilation(air_mask, k, border_value=border_value)
    for max_voxels in (30_000, 300_000):  # slabs of 1 and of several slices
        out = cpu.dilate_fft(air_mask, k, border_value=border_value, max_voxels=max_voxels)
        assert np.array_equal(out, ref)
