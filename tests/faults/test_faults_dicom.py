"""Damaged, tilted and unevenly spaced DICOM series, made by editing copies of the real series with pydicom.

The real series (20 slices, 2 mm apart, file names in instance order from the top slice down) is copied into
``tmp_path`` and one fault is put in it; each test asserts the exact outcome: the message names the files and the
fix, or the volume's geometry puts every slice (or a marker voxel) at its true physical position.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import napari_ctorgans as ct
from conftest import data_file


@pytest.fixture
def series(tmp_path) -> tuple[Path, list[Path]]:
    """A copy of the real series; its files sorted by name (instance 267 at z = -766.5 mm first, 2 mm down)."""
    folder = tmp_path / "series"
    shutil.copytree(data_file("abdomen_dicom"), folder)
    return folder, sorted(folder.iterdir())


def _edit(path: Path, target: Path | None = None, **tags) -> None:
    ds = pydicom.dcmread(path)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(target or path)


def _set_pixels(path: Path, hu: np.ndarray, **tags) -> None:
    """Store ``hu`` as the slice's pixels, uncompressed (the real series is JPEG 2000)."""
    ds = pydicom.dcmread(path)
    ds.set_pixel_data((hu - int(ds.RescaleIntercept)).astype(np.uint16), "MONOCHROME2", 16,
                      generate_instance_uid=False)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _hu(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0]


def _physical(vol, index_zyx) -> np.ndarray:
    """Physical (z, y, x) position in mm of a (fractional) voxel index."""
    return np.asarray(vol.origin) + vol.direction @ (np.asarray(index_zyx, float) * np.asarray(vol.spacing))


def _refused(folder: Path, *needles: str, **kwargs) -> str:
    with pytest.raises(ValueError) as info:
        ct.read_volume(folder, **kwargs)
    text = str(info.value)
    for needle in needles:
        assert needle in text, f"{needle!r} not in: {text}"
    return text


def test_exact_duplicate_is_dropped_and_a_differing_one_refused(series, abdomen_dicom):
    folder, files = series
    shutil.copy(files[5], folder / "copy_of_slice")
    with pytest.warns(UserWarning, match=r"dropped 1 exact duplicate slice\(s\): copy_of_slice \(a copy of CT"):
        vol = ct.read_volume(folder)
    np.testing.assert_array_equal(vol.array, abdomen_dicom.array)
    assert vol.same_grid(abdomen_dicom) and len(vol.metadata["dicom_files"]) == 20
    # same position, other values (and its own SOPInstanceUID): two versions of one slice
    _edit(folder / "copy_of_slice", RescaleIntercept=-1000, SOPInstanceUID="1.2.826.0.1.3680043.2.1125.77")
    _refused(folder, files[5].name, "copy_of_slice", "the same ImagePositionPatient but different pixel data",
             "keep the right one")


def test_same_sop_uid_at_two_positions_is_refused(series):
    folder, files = series
    _edit(files[5], folder / "moved_copy", ImagePositionPatient=[-249.51171875, -437.51171875, -700.0])
    _refused(folder, files[5].name, "moved_copy", "the same SOPInstanceUID but different positions")


def test_missing_slice_is_named_and_can_be_interpolated(series, abdomen_dicom):
    folder, files = series
    files[7].unlink()  # instance 274, z = -780.5
    _refused(folder, f"{files[8].name} -> {files[6].name}: 4 mm", "instance number 274 missing",
             "copy the complete series again", "resample_irregular=True")
    with pytest.warns(UserWarning, match="unevenly spaced .* resampled onto an orthogonal grid of 2 mm slices"):
        vol = ct.read_volume(folder, resample_irregular=True)
    assert vol.metadata["dicom_resampled"] and vol.same_grid(abdomen_dicom)
    ref, k = abdomen_dicom.array, 19 - 7  # canonical order runs upward
    np.testing.assert_array_equal(np.delete(vol.array, k, axis=0), np.delete(ref, k, axis=0))
    mean = np.rint((ref[k - 1].astype(float) + ref[k + 1]) / 2)
    np.testing.assert_array_equal(vol.array[k], mean)
    assert files[7].name not in " ".join(vol.metadata["dicom_files"]) and len(vol.metadata["dicom_files"]) == 19


@pytest.mark.parametrize("fault", ["garbage", "truncated", "header cut", "file meta cut"])
def test_garbage_and_truncated_slices_are_named(series, fault):
    folder, files = series
    raw = files[4].read_bytes()
    if fault == "garbage":
        files[4].write_bytes(np.random.default_rng(0).bytes(len(raw)))
        why = "is not a DICOM file"
    else:
        files[4].write_bytes(raw[: {"truncated": len(raw) // 2, "header cut": 600, "file meta cut": 200}[fault]])
        why = "is truncated or damaged"
    _refused(folder, f"{files[4].name} {why}", "copy the complete series again", "move it out of the folder")


@pytest.mark.parametrize("axis,needle", [(2, "uneven slice spacing"), (0, "lies 1 mm away (in the slice plane)")])
def test_slice_shifted_by_1mm_is_named(series, axis, needle):
    folder, files = series
    pos = [float(v) for v in pydicom.dcmread(files[9], stop_before_pixels=True).ImagePositionPatient]
    pos[axis] += 1.0
    _edit(files[9], ImagePositionPatient=pos)
    text = _refused(folder, needle, files[9].name)
    assert "instance number" not in text  # nothing is missing: it is displaced


def test_slice_with_another_orientation_is_named(series):
    folder, files = series
    _edit(files[3], ImageOrientationPatient=[1, 0, 0, 0, 0, -1])
    _refused(folder, f"{files[3].name} has ImageOrientationPatient (1, 0, 0, 0, 0, -1) while the other 19 slices "
             "have (1, 0, 0, 0, 1, 0)", "remove the odd slices")


def test_slice_of_another_size_is_named(series):
    folder, files = series
    _set_pixels(files[6], _hu(files[6])[::2, ::2], PixelSpacing=[1.953125, 1.953125])
    _refused(folder, f"{files[6].name} has size (Rows, Columns) (256, 256) while the other 19 slices have (512, 512)",
             "remove the odd slices")


def test_linked_slice_is_followed_and_reported_and_a_broken_link_named(series, abdomen_dicom, tmp_path):
    folder, files = series
    outside = tmp_path / "elsewhere" / files[2].name
    outside.parent.mkdir()
    shutil.move(files[2], outside)
    try:
        os.symlink(outside, files[2])
    except OSError:
        pytest.skip("this file system cannot hold symbolic links")
    with pytest.warns(UserWarning, match=f"1 slice\\(s\\) are file links, read from their targets: {files[2].name}"):
        vol = ct.read_volume(folder)
    np.testing.assert_array_equal(vol.array, abdomen_dicom.array)
    assert str(files[2]) in vol.metadata["dicom_files"]
    outside.unlink()
    _refused(folder, f"{files[2].name} is a broken link", "restore the target or remove the link")


def _tilt(files: list[Path], degrees: float) -> None:
    """A gantry tilt: the slice planes turn about the x axis, the table (slice positions) still moves along z."""
    t = np.radians(degrees)
    for f in files:
        _edit(f, ImageOrientationPatient=[1, 0, 0, 0, float(np.cos(t)), float(np.sin(t))], GantryDetectorTilt=degrees)


def test_gantry_tilt_is_resampled_to_the_true_positions(series, tmp_path):
    folder, files = series
    _tilt(files, 15.0)
    marked = tmp_path / "marked"
    shutil.copytree(folder, marked)
    row, col, k = 100, 60, 10
    hu = _hu(marked / files[k].name)
    hu[row, col] += 3000
    _set_pixels(marked / files[k].name, hu)
    with pytest.warns(UserWarning, match="gantry tilt of 15 degrees; it was resampled onto an orthogonal grid"):
        plain = ct.read_volume(folder)
    with pytest.warns(UserWarning, match="gantry tilt"):
        vol = ct.read_volume(marked)
    assert vol.metadata["dicom_resampled"] and vol.same_grid(plain)
    np.testing.assert_allclose(vol.spacing, (2 * np.cos(np.radians(15)), 0.9765625, 0.9765625), atol=1e-6)
    # the marker, spread by the in-plane interpolation, has its centre at its true physical position
    excess = vol.array.astype(float) - plain.array
    assert abs(excess.sum() - 3000) < 5 and excess.min() >= -1
    centre = np.array([(excess * g).sum() for g in np.indices(excess.shape)]) / excess.sum()
    ds = pydicom.dcmread(files[k], stop_before_pixels=True)
    r, c = np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float)
    true_xyz = np.array(ds.ImagePositionPatient, float) + col * 0.9765625 * r + row * 0.9765625 * c
    np.testing.assert_allclose(_physical(vol, centre), true_xyz[::-1], atol=0.02)
    # every source slice lies on an output plane, and the planes are orthogonal to the slices
    normal = np.cross(r, c)[::-1]
    np.testing.assert_allclose(np.abs(vol.direction[:, 0] @ normal), 1.0, atol=1e-9)


def test_uneven_spacing_is_refused_or_resampled_onto_true_positions(series, abdomen_dicom):
    folder, files = series
    for f in files[:8]:  # the top 8 slices move up 2 mm: one 4 mm step, instance numbers still contiguous
        pos = [float(v) for v in pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient]
        _edit(f, ImagePositionPatient=[pos[0], pos[1], pos[2] + 2.0])
    text = _refused(folder, "uneven slice spacing", f"{files[8].name} -> {files[7].name}: 4 mm",
                    "resample_irregular=True")
    assert "missing" not in text
    with pytest.warns(UserWarning, match=r"unevenly spaced \(steps 2 to 4 mm\)"):
        vol = ct.read_volume(folder, resample_irregular=True)
    ref, k = abdomen_dicom.array, 12  # output slice 12 lies between the source slices 11 and 12
    assert vol.shape == (21, 512, 512) and vol.metadata["dicom_resampled"]
    np.testing.assert_allclose(vol.spacing, (2.0, 0.9765625, 0.9765625))
    np.testing.assert_allclose(vol.origin, abdomen_dicom.origin)
    np.testing.assert_array_equal(vol.array[:k], ref[:k])
    np.testing.assert_array_equal(vol.array[k + 1 :], ref[k:])
    np.testing.assert_array_equal(vol.array[k], np.rint((ref[k - 1].astype(float) + ref[k]) / 2))


def test_feet_first_file_order_gives_the_same_volume(series, abdomen_dicom):
    folder, files = series
    n = len(files)
    for i, f in enumerate(files):  # names and instance numbers now run from the feet up
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = n - i
        ds.save_as(folder / f"IM{n - i:04d}.dcm")
        f.unlink()
    vol = ct.read_volume(folder)
    np.testing.assert_array_equal(vol.array, abdomen_dicom.array)
    assert vol.same_grid(abdomen_dicom, atol=1e-9)
    assert vol.metadata["dicom_sop_uids"] == abdomen_dicom.metadata["dicom_sop_uids"]
    assert [Path(f).name for f in vol.metadata["dicom_files"]] == [f"IM{i:04d}.dcm" for i in range(1, n + 1)]
