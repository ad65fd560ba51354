"""Resampling (SPEC section 1): sigma formula, labels keep their values, round trips restore the grid."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import napari_ctorgans as ct


def test_sigma_formula():
    assert ct.gaussian_sigmas((1.0, 1.0, 1.0), 3.0) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert ct.gaussian_sigmas((2.0, 0.977, 0.977), 3.0) == pytest.approx(
        ((3 / 2 - 1) / 3, (3 / 0.977 - 1) / 3, (3 / 0.977 - 1) / 3)
    )
    assert ct.gaussian_sigmas((5.0, 3.0, 1.0), 3.0) == pytest.approx((0.0, 0.0, 2 / 3))  # upsampling: none


def test_image_downsampling_matches_smooth_then_linear():
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 100, (30, 40, 50)).astype(np.float32)
    vol = ct.Volume(arr, spacing=(1.0, 1.5, 1.0))
    out = ct.resample(vol, 3.0)
    assert out.shape == (10, 20, 17)
    assert out.spacing == (3.0, 3.0, 3.0)
    # independent reference: gaussian_filter + map_coordinates at the output voxel centres (physical extent kept)
    sig = [(3 / u - 1) / 3 for u in (1.0, 1.5, 1.0)]
    smooth = ndimage.gaussian_filter(arr, sig, mode="nearest", truncate=3.0)
    coords = np.meshgrid(
        *[(np.arange(n) + 0.5) * 3.0 / u - 0.5 for n, u in zip(out.shape, vol.spacing)], indexing="ij"
    )
    ref = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest")
    np.testing.assert_allclose(out.array, ref, atol=1e-3)
    # physical centre of the field of view is unchanged
    c_in = np.asarray(vol.origin) + (np.asarray(vol.shape) - 1) / 2 * np.asarray(vol.spacing)
    c_out = np.asarray(out.origin) + (np.asarray(out.shape) - 1) / 2 * np.asarray(out.spacing)
    np.testing.assert_allclose(c_in, c_out, atol=0.6 * 3.0)


def test_labels_never_gain_values_and_round_trip(abdomen_dicom, abdomen_dicom_labels):
    lab = abdomen_dicom_labels
    small = ct.resample(lab, 3.0, kind="labels")
    assert set(np.unique(small.array)) <= set(np.unique(lab.array))
    assert small.array.dtype == lab.array.dtype
    back = ct.resample(small, kind="labels", like=abdomen_dicom)
    assert back.same_grid(abdomen_dicom)
    assert back.shape == abdomen_dicom.shape
    assert set(np.unique(back.array)) <= set(np.unique(lab.array))
    agree = np.mean(back.array == lab.array)
    assert agree > 0.97


def test_round_trip_restores_shape_and_geometry_on_anisotropic_image(abdomen_dicom):
    small = ct.resample(abdomen_dicom, 3.0)
    assert small.spacing == (3.0, 3.0, 3.0)
    assert small.array.dtype == np.float32
    back = ct.resample(small, like=abdomen_dicom)
    assert back.same_grid(abdomen_dicom)
    # smooth tissue comes back close to the original
    err = np.abs(back.array - abdomen_dicom.array)
    assert np.median(err) < 25


def test_resample_errors(phantom):
    vol, _ = phantom
    with pytest.raises(ValueError, match="spacing is required"):
        ct.resample(vol)
    with pytest.raises(ValueError, match="kind must be"):
        ct.resample(vol, 3.0, kind="nearest")
    with pytest.raises(TypeError, match="Volume"):
        ct.resample(vol.array, 3.0)
    with pytest.raises(ValueError, match="labels must be integer"):
        ct.resample(ct.Volume(vol.array.astype(np.float32)), 3.0, kind="labels")
    with pytest.raises(ValueError, match="spacing must have 3 positive"):
        ct.resample(vol, (3.0, -1.0, 3.0))


def test_streamed_downsampling_of_a_wide_scan_matches_smooth_then_linear():
    """Wide axes (more output rows than one band chunk) and a sub-box target, against the scipy reference."""
    from napari_ctorgans.resampling import Grid, resample_streamed

    rng = np.random.default_rng(1)
    arr = rng.normal(0, 100, (37, 260, 300)).astype(np.int16)
    vol = ct.Volume(arr, spacing=(2.0, 0.8, 0.7))
    src, work = Grid.of(vol), Grid.working(vol, 3.0)
    lo, hi = (2, 5, 9), (work.shape[0] - 1, work.shape[1] - 3, work.shape[2] - 4)
    out = resample_streamed(arr, src, work.crop(lo, hi))
    full = ct.resample(vol.with_array(arr.astype(np.float32)), 3.0).array
    assert out.dtype == np.float32 and out.shape == tuple(h - l for l, h in zip(lo, hi))
    sig = [(3 / u - 1) / 3 for u in vol.spacing]
    smooth = ndimage.gaussian_filter(arr.astype(np.float64), sig, mode="nearest", truncate=3.0)
    coords = np.meshgrid(*[(np.arange(n) + 0.5) * 3.0 / u - 0.5 for n, u in zip(work.shape, vol.spacing)],
                         indexing="ij")
    ref = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest")
    np.testing.assert_allclose(full, ref, atol=2e-3)
    np.testing.assert_allclose(out, ref[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], atol=2e-3)


@pytest.mark.parametrize("out_shape", [(37, 21, 30), (5, 40, 9), (12, 12, 12)])
def test_gather_labels_equals_fancy_indexing_when_planes_repeat_or_not(out_shape):
    """Upsampling (planes repeated), downsampling and a mixed case give ``array[iz][:, iy][:, :, ix]``."""
    from napari_ctorgans.resampling import gather_labels

    rng = np.random.default_rng(3)
    array = rng.integers(0, 7, (12, 15, 18)).astype(np.uint8)
    idx = [np.sort(rng.integers(0, n, m)).astype(np.intp) for n, m in zip(array.shape, out_shape)]
    out = np.full(out_shape, 99, np.uint8)
    gather_labels(array, idx, out, threads=2)
    assert np.array_equal(out, array[idx[0]][:, idx[1]][:, :, idx[2]])
