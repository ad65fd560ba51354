"""Reading and writing CT and label maps on the real files, every format, with geometry."""

from __future__ import annotations

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import napari_ctorgans as ct
from conftest import data_file


def test_dicom_series_geometry_and_hu(abdomen_dicom):
    vol = abdomen_dicom
    assert vol.shape == (20, 512, 512)
    np.testing.assert_allclose(vol.spacing, (2.0, 0.9765625, 0.9765625), atol=1e-4)
    assert vol.array.min() == -1024  # rescale intercept applied
    assert vol.array.dtype.kind in "i"
    assert vol.source_orientation == "LPS"


def test_dicom_series_matches_the_simpleitk_series_reader(abdomen_dicom):
    """The pydicom-validated reader gives the array and geometry that GDCM's series reader gives the intact series."""
    folder = str(data_file("abdomen_dicom"))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    gdcm = ct.io.from_sitk(reader.Execute())
    np.testing.assert_array_equal(abdomen_dicom.array, gdcm.array)
    assert abdomen_dicom.array.dtype == gdcm.array.dtype and abdomen_dicom.same_grid(gdcm, atol=1e-9)
    np.testing.assert_allclose(abdomen_dicom.origin, (-804.5, -437.51171875, -249.51171875))
    meta = abdomen_dicom.metadata
    files = meta["dicom_files"]  # one per array slice, inferior -> superior like the array
    assert len(files) == len(meta["dicom_sop_uids"]) == 20 and meta["dicom_resampled"] is False
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    np.testing.assert_allclose(z, abdomen_dicom.origin[0] + 2.0 * np.arange(20))
    assert meta["dicom_sop_uids"][0] == pydicom.dcmread(files[0], stop_before_pixels=True).file_meta[
        "MediaStorageSOPInstanceUID"].value


def test_dicom_file_in_series_reads_whole_series(abdomen_dicom):
    folder = data_file("abdomen_dicom")
    one_file = sorted(folder.iterdir())[3]
    vol = ct.read_volume(one_file)
    assert vol.shape == abdomen_dicom.shape
    np.testing.assert_array_equal(vol.array, abdomen_dicom.array)


def test_dicom_hu_matches_rescale_tags():
    folder = data_file("abdomen_dicom")
    files = sorted(folder.iterdir())
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(files[0]))
    reader.ReadImageInformation()
    slope = float(reader.GetMetaData("0028|1053")) if reader.HasMetaDataKey("0028|1053") else 1.0
    intercept = float(reader.GetMetaData("0028|1052")) if reader.HasMetaDataKey("0028|1052") else 0.0
    assert intercept == -1024.0 and slope == 1.0
    # the stored pixel value 0 must read as the intercept
    vol = ct.read_volume(folder)
    assert vol.array.min() == intercept


def _write_series(folder, array, uid, *, spacing=(2.0, 0.8, 0.8), origin=(-100.0, -100.0, 0.0)):
    """Write a (z, y, x) int16 array as a DICOM CT series with the given series UID (SimpleITK's recipe)."""
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(array.shape[0]):
        img = sitk.GetImageFromArray(array[z : z + 1].astype(np.int16))
        img.SetSpacing((spacing[2], spacing[1], spacing[0]))
        pos = (origin[2], origin[1], origin[0] + z * spacing[0])
        img.SetOrigin(pos)
        for key, value in {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": uid,
            "0008|0018": f"{uid}.{z + 1}",
            "0020|0013": str(z + 1),
            "0020|0032": "\\".join(f"{v:.3f}" for v in pos),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": f"{spacing[1]}\\{spacing[2]}",
            "0018|0050": str(spacing[0]),
        }.items():
            img.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{uid[-3:]}_{z:03d}.dcm"))
        writer.Execute(img)


def test_non_ct_modality_warns(tmp_path):
    arr = np.random.default_rng(1).integers(0, 800, (4, 16, 16)).astype(np.int16)
    _write_series(tmp_path, arr, "1.2.826.0.1.3680043.2.1125.303")
    for f in sorted(tmp_path.iterdir()):  # relabel the series as MR
        img = sitk.ReadImage(str(f))
        img.SetMetaData("0008|0060", "MR")
        w = sitk.ImageFileWriter()
        w.KeepOriginalImageUIDOn()
        w.SetFileName(str(f))
        w.Execute(img)
    with pytest.warns(UserWarning, match="modality 'MR', not CT"):
        vol = ct.read_volume(tmp_path)
    assert vol.metadata["modality"] == "MR"


def test_several_series_in_one_folder_is_a_clear_error(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.integers(-1000, 1000, (6, 16, 16)).astype(np.int16)
    b = rng.integers(-1000, 1000, (4, 16, 16)).astype(np.int16)
    _write_series(tmp_path, a, "1.2.826.0.1.3680043.2.1125.101")
    _write_series(tmp_path, b, "1.2.826.0.1.3680043.2.1125.202")
    series = ct.list_dicom_series(tmp_path)
    assert sorted(s["n_slices"] for s in series) == [4, 6]
    with pytest.raises(ValueError, match="holds 2 DICOM series; choose one") as info:
        ct.read_volume(tmp_path)
    assert "1.2.826.0.1.3680043.2.1125.101" in str(info.value)
    vol = ct.read_volume(tmp_path, series="1.2.826.0.1.3680043.2.1125.202")
    np.testing.assert_array_equal(vol.array, b)
    np.testing.assert_allclose(vol.spacing, (2.0, 0.8, 0.8), atol=1e-4)
    # opening one file picks its own series
    vol_a = ct.read_volume(tmp_path / "101_002.dcm")
    np.testing.assert_array_equal(vol_a.array, a)
    with pytest.raises(ValueError, match="is not in"):
        ct.read_volume(tmp_path, series="9.9.9")


def test_nifti_labels_align_with_ct(abdomen_3mm, abdomen_3mm_labels, abdomen_dicom, abdomen_dicom_labels):
    assert abdomen_3mm.source_orientation == "RAS"
    assert abdomen_3mm.same_grid(abdomen_3mm_labels)
    assert abdomen_dicom.same_grid(abdomen_dicom_labels)
    # canonical orientation: axis 0 inferior -> superior, so the lungs (3) sit in the top slices
    lab = abdomen_3mm_labels.array
    z_lung = np.nonzero(lab == 3)[0].mean()
    z_bladder = np.nonzero(lab == 2)[0].mean()
    assert z_lung > z_bladder
    # patient's liver is on the right = low x in the canonical (LPS) frame
    assert np.nonzero(lab == 1)[2].mean() < lab.shape[2] / 2
    # the liver is soft tissue in the CT at the labelled voxels
    assert 0 < np.median(abdomen_3mm.array[lab == 1]) < 200


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"])
@pytest.mark.parametrize("name", ["abdomen_3mm.nii.gz", "abdomen_dicom"])
def test_round_trip_every_format(tmp_path, suffix, name):
    src = ct.read_volume(data_file(name))
    out = tmp_path / f"copy{suffix}"
    ct.write_volume(out, src)
    back = ct.read_volume(out)
    np.testing.assert_array_equal(back.array, src.array)
    assert back.same_grid(src, atol=1e-4)
    assert back.source_orientation == src.source_orientation
    # labels: written in the source geometry, read back identical
    labels = (src.array > 200).astype(np.uint8) * 5
    lab_path = tmp_path / f"labels{suffix}"
    ct.write_labels(lab_path, labels, like=src)
    lab = ct.read_labels(lab_path)
    np.testing.assert_array_equal(lab.array, labels)
    assert lab.same_grid(src, atol=1e-4)


def test_labels_written_in_source_file_geometry(tmp_path, abdomen_3mm, abdomen_3mm_labels):
    out = ct.write_labels(tmp_path / "l.nii.gz", abdomen_3mm_labels.array, like=abdomen_3mm)
    written = sitk.ReadImage(str(out))
    source = sitk.ReadImage(str(data_file("abdomen_3mm.nii.gz")))
    assert written.GetDirection() == source.GetDirection()  # RAS kept, not the in-memory LPS
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-4)
    ref = sitk.GetArrayFromImage(sitk.ReadImage(str(data_file("abdomen_3mm_ctorg.nii.gz"))))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), ref)


def test_write_never_overwrites_silently(tmp_path, phantom):
    vol, labels = phantom
    path = tmp_path / "labels.nii.gz"
    ct.write_labels(path, labels, like=vol)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ct.write_labels(path, np.zeros_like(labels), like=vol)
    assert path.read_bytes() == before
    ct.write_labels(path, np.zeros_like(labels), like=vol, overwrite=True)
    assert ct.read_labels(path).array.max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["labels.nii.gz"]  # no temporary left behind


def test_bad_inputs_have_clear_messages(tmp_path, phantom):
    vol, labels = phantom
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ct.read_volume(tmp_path / "missing.nii.gz")
    junk = tmp_path / "junk.nii.gz"
    junk.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="cannot read"):
        ct.read_volume(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no DICOM series"):
        ct.read_volume(empty)
    two_d = tmp_path / "slice.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(two_d))
    with pytest.raises(ValueError, match="2 dimensions"):
        ct.read_volume(two_d)
    with pytest.raises(ValueError, match="does not match the image shape"):
        ct.write_labels(tmp_path / "x.nii.gz", labels[:-1], like=vol)
    with pytest.raises(ValueError, match="must be integers"):
        ct.write_labels(tmp_path / "x.nii.gz", labels.astype(np.float32), like=vol)
    with pytest.raises(ValueError, match="cannot write"):
        ct.write_labels(tmp_path / "x.png", labels, like=vol)
    image_path = tmp_path / "ct.nii.gz"
    ct.write_volume(image_path, vol)
    with pytest.raises(ValueError, match="negative values"):
        ct.read_labels(image_path)


def test_volume_validation():
    with pytest.raises(ValueError, match="3D"):
        ct.Volume(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="4D"):
        ct.Volume(np.zeros((2, 4, 4, 4)))
    with pytest.raises(ValueError, match="empty"):
        ct.Volume(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="NaN"):
        ct.Volume(np.full((2, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="spacing must have 3 positive"):
        ct.Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="spacing must have 3 positive"):
        ct.Volume(np.zeros((2, 2, 2)), spacing=(1, 1))


def test_phantom_has_every_organ_and_realistic_hu():
    for seed in (0, 1, 2):
        vol, labels = ct.make_phantom(seed=seed)
        assert set(np.unique(labels)) == {0, 1, 2, 3, 4, 5}
        assert -900 < vol.array[labels == 3].mean() < -650
        assert vol.array[labels == 5].mean() > 300
        assert vol.array.dtype == np.int16
    a, _ = ct.make_phantom(seed=1)
    b, _ = ct.make_phantom(seed=1)
    c, _ = ct.make_phantom(seed=2)
    np.testing.assert_array_equal(a.array, b.array)
    assert not np.array_equal(a.array, c.array)
    small, small_labels = ct.make_phantom(seed=0, spacing=6.0, shape=(30, 40, 50))
    assert small.shape == small_labels.shape == (30, 40, 50)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_nifti_is_refused(tmp_path, phantom, suffix):
    vol, _ = phantom
    whole = ct.write_volume(tmp_path / f"whole{suffix}", vol)
    data = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated or damaged"):
        ct.read_volume(cut)
    np.testing.assert_array_equal(ct.read_volume(whole).array, vol.array)


def test_phantom_partial_volume_edges_and_rotation():
    sharp, labels = ct.make_phantom(seed=0, noise_hu=0, partial_volume=0)
    soft, _ = ct.make_phantom(seed=0, noise_hu=0)
    # blurred edges: values between lung (-860) and soft tissue (35) appear only at boundaries
    between = lambda a: np.count_nonzero((a > -700) & (a < -150))  # noqa: E731
    assert between(soft.array) > 5 * max(between(sharp.array), 1)
    np.testing.assert_array_equal(ct.make_phantom(seed=0, noise_hu=0)[1], labels)  # labels stay sharp
    # seeds rotate the patient about the long axis: the spine's centre moves sideways between seeds
    def spine_x(seed):
        _, lab = ct.make_phantom(seed=seed, noise_hu=0)
        z = lab.shape[0] // 2
        ys, xs = np.nonzero(lab[z] == 5)
        return xs[ys > lab.shape[1] * 0.6].mean()

    xs = [spine_x(s) for s in range(4)]
    assert max(xs) - min(xs) > 1.0


def test_reorienting_in_numpy_equals_simpleitks_dicomorient():
    """Every axis order and sign, and oblique directions near each: the array and geometry of sitk.DICOMOrient."""
    import itertools

    from scipy.spatial.transform import Rotation

    from napari_ctorgans.io._sitk import volume_from_array

    rng = np.random.default_rng(1)
    seen = set()
    for perm, signs in itertools.product(itertools.permutations(range(3)), itertools.product([1, -1], repeat=3)):
        axes = np.zeros((3, 3))
        axes[list(perm), range(3)] = signs
        for tilt in (0.0, 0.3, 0.3):
            direction = Rotation.from_rotvec(rng.normal(size=3) * tilt).as_matrix() @ axes
            image = sitk.GetImageFromArray(rng.integers(-1000, 1000, size=(5, 6, 7)).astype(np.int16))
            image.SetSpacing((0.7, 0.9, 2.5))
            image.SetOrigin((-10.0, 20.0, 33.0))
            image.SetDirection(tuple(direction.ravel()))
            ref = sitk.DICOMOrient(image, "LPS")
            vol = volume_from_array(sitk.GetArrayFromImage(image), image)
            seen.add(vol.source_orientation)
            assert np.array_equal(vol.array, sitk.GetArrayFromImage(ref)) and vol.array.flags["C_CONTIGUOUS"]
            np.testing.assert_allclose(vol.spacing, ref.GetSpacing()[::-1])
            np.testing.assert_allclose(vol.origin, ref.GetOrigin()[::-1], atol=1e-9)
            np.testing.assert_allclose(vol.direction, np.reshape(ref.GetDirection(), (3, 3))[::-1, ::-1], atol=1e-12)
    assert len(seen) == 48


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_nifti_read_gives_simpleitks_array_and_geometry(abdomen_3mm, suffix, tmp_path):
    """A NIfTI (RAS on disk) read from its checked voxel bytes equals ITK's own reading, reoriented: the real
    .nii.gz, and an uncompressed copy of it (ITK writes it: same header and voxels)."""
    path = str(data_file("abdomen_3mm.nii.gz"))
    if suffix == ".nii":
        sitk.WriteImage(sitk.ReadImage(path), str(tmp_path / "abdomen.nii"))
        path = str(tmp_path / "abdomen.nii")
    ref = sitk.DICOMOrient(sitk.ReadImage(path), "LPS")
    vol = ct.read_volume(path)
    assert vol.source_orientation == "RAS" and vol.array.dtype == sitk.GetArrayViewFromImage(ref).dtype
    assert np.array_equal(vol.array, sitk.GetArrayFromImage(ref))
    np.testing.assert_allclose(vol.origin, ref.GetOrigin()[::-1], atol=1e-9)
    np.testing.assert_allclose(vol.direction, np.reshape(ref.GetDirection(), (3, 3))[::-1, ::-1], atol=1e-12)
