"""DICOM-SEG out and in on the real 20-slice abdomen series: round trip, highdicom's reading, dciodvfy, faults."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import data_file

import napari_ctorgans as ct
from napari_ctorgans.io.dicom_seg import read_dicom_seg, write_dicom_seg


def dciodvfy_errors(path: Path) -> list[str]:
    """The "Error" lines of dicom3tools' validator for a file (skips the test when dicom3tools is missing)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed; scripts/setup.sh installs it")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def series_copy(tmp_path: Path, edit=None) -> Path:
    """A copy of the real series in tmp_path, each header passed through ``edit(ds, index, n)`` by pydicom."""
    src = sorted(data_file("abdomen_dicom").iterdir())
    dst = tmp_path / "series"
    dst.mkdir()
    for i, f in enumerate(src):
        if edit is None:
            shutil.copy(f, dst / f.name)
        else:
            ds = pydicom.dcmread(f)
            edit(ds, i, len(src))
            ds.save_as(dst / f.name)
    return dst


def feet_first(ds, i: int, n: int, degrees: float = 12.0) -> None:
    """Rewrite a head-first slice as the same pixels scanned feet first and oblique: rows run to the patient's
    right, turned 12 degrees in the axial plane, the slice normal points to the feet, instance numbers count from
    the feet."""
    x0, y0, z0 = (float(v) for v in ds.ImagePositionPatient)
    dc = float(ds.PixelSpacing[1])
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    ds.ImageOrientationPatient = [float(-c), float(-s), 0.0, float(-s), float(c), 0.0]
    ds.ImagePositionPatient = [x0 + (int(ds.Columns) - 1) * dc, y0, -z0]
    ds.PatientPosition = "FFS"
    ds.InstanceNumber = n - i


_FEET_FIRST: dict = {}


def feet_first_series(tmp_path_factory) -> tuple[Path, ct.Volume]:
    """A feet-first copy of the real series (made once per session) and the CT read from it."""
    if not _FEET_FIRST:
        folder = series_copy(tmp_path_factory.mktemp("feet_first"), feet_first)
        _FEET_FIRST.update(folder=folder, volume=ct.read_volume(folder))
    return _FEET_FIRST["folder"], _FEET_FIRST["volume"]


@pytest.fixture(scope="module")
def written(tmp_path_factory, abdomen_dicom, abdomen_dicom_labels):
    path = tmp_path_factory.mktemp("seg") / "organs.seg.dcm"
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        write_dicom_seg(path, abdomen_dicom_labels, like=abdomen_dicom)
    return path


def test_labels_to_dicom_seg_to_labels_is_identical(written, abdomen_dicom, abdomen_dicom_labels):
    back = ct.read_labels(written, like=abdomen_dicom)
    np.testing.assert_array_equal(back.array, abdomen_dicom_labels.array)
    assert back.same_grid(abdomen_dicom) and back.metadata["segment_names"] == {1: "liver", 5: "bone"}
    alone = ct.read_labels(written)  # no CT given: the grid of the segmentation's own frames
    assert alone.same_grid(abdomen_dicom)
    np.testing.assert_array_equal(alone.array, abdomen_dicom_labels.array)
    from napari_ctorgans._napari.reader import get_reader

    ((data, kwargs, kind),) = get_reader(str(written))(str(written))  # the napari reader opens it as Labels
    assert kind == "labels" and kwargs["scale"] == abdomen_dicom.spacing and kwargs["translate"] == abdomen_dicom.origin
    np.testing.assert_array_equal(data, abdomen_dicom_labels.array)


def test_highdicom_reads_the_segments_references_and_frame_of_reference(written, abdomen_dicom,
                                                                         abdomen_dicom_labels):
    import highdicom as hd

    seg = hd.seg.segread(written)
    descriptions = [seg.get_segment_description(n) for n in seg.segment_numbers]
    assert [d.segment_label for d in descriptions] == ["liver", "bone"]
    assert [(d.segmented_property_type.value, d.segmented_property_type.scheme_designator) for d in descriptions] == [
        ("10200004", "SCT"), ("272673000", "SCT")]
    assert [d.segmented_property_category.meaning for d in descriptions] == ["Anatomical Structure", "Tissue"]
    assert {d.algorithm_type.value for d in descriptions} == {"AUTOMATIC"}
    algorithm = descriptions[0].algorithm_identification[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("napari-ctorgans", ct.__version__)
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(data_file("abdomen_dicom").iterdir())]
    referenced = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence
                  for i in s.ReferencedInstanceSequence}
    assert referenced == {ds.file_meta.MediaStorageSOPInstanceUID for ds in source}
    assert seg.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    assert dciodvfy_errors(written) == []
    # highdicom's own volume and affine (index -> LPS mm) land on the same voxels of the CT
    hd_volume = seg.get_volume(combine_segments=True)
    ours = np.eye(4)
    ours[:3, :3] = (np.asarray(abdomen_dicom.direction) @ np.diag(abdomen_dicom.spacing))[::-1, ::-1]
    ours[:3, 3] = np.asarray(abdomen_dicom.origin)[::-1]  # index (i, j, k) = (x, y, z) -> LPS
    ours = ours @ np.eye(4)[[2, 1, 0, 3]]  # index given as (z, y, x)
    t = np.linalg.inv(ours) @ hd_volume.affine  # highdicom's index -> the CT's (z, y, x) index
    perm = np.rint(t[:3, :3])
    assert np.abs(t[:3, :3] - perm).max() < 1e-6 and np.abs(t[:3, 3] - np.rint(t[:3, 3])).max() < 1e-3
    axes = [int(np.argmax(np.abs(row))) for row in perm]
    view = np.transpose(abdomen_dicom_labels.array, axes)
    for axis, a in enumerate(axes):
        if perm[axis, a] < 0:
            view = np.flip(view, axis)
    np.testing.assert_array_equal(hd_volume.array, np.select([view == 1, view == 5], [1, 2], 0))


def test_manual_edits_are_semiautomatic_and_unknown_segments_keep_their_names(tmp_path, abdomen_dicom,
                                                                           abdomen_dicom_labels):
    import highdicom as hd

    labels = abdomen_dicom_labels.array.copy()
    labels[10, 200:220, 300:330] = 9  # a user's own class
    labels[12, 100:120, 100:130] = 12  # a class named like an organ made elsewhere
    path = tmp_path / "edited.dcm"
    with pytest.warns(UserWarning):
        write_dicom_seg(path, labels, like=abdomen_dicom, manual_edits=True, names={9: "lesion", 12: "Right Kidney"})
    seg = hd.seg.segread(path)
    assert {seg.get_segment_description(n).algorithm_type.value for n in seg.segment_numbers} == {"SEMIAUTOMATIC"}
    back = ct.read_labels(path, like=abdomen_dicom)
    # 7: the first free value; "Right Kidney" joins the CT-ORG kidneys by its name
    assert back.metadata["segment_names"] == {1: "liver", 5: "bone", 7: "lesion", 4: "kidneys"}
    np.testing.assert_array_equal(back.array, np.where(labels == 9, 7, np.where(labels == 12, 4, labels)))


def test_feet_first_copy_lands_on_the_same_pixels(tmp_path, tmp_path_factory, abdomen_dicom_labels):
    """highdicom's frame references and pydicom's pixels, independent of the package's own reader."""
    import highdicom as hd

    folder, ff = feet_first_series(tmp_path_factory)
    original = sorted(data_file("abdomen_dicom").iterdir())
    # the pixels of file f show what the original file f showed: its labels in the pixels' own (row, col) order
    order = np.argsort([float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in original])
    rank = {f.name: int(np.where(order == i)[0][0]) for i, f in enumerate(original)}
    native = {pydicom.dcmread(folder / f.name, stop_before_pixels=True).file_meta.MediaStorageSOPInstanceUID:
              abdomen_dicom_labels.array[rank[f.name]] for f in original}
    labels_ff = np.zeros(ff.shape, np.uint8)
    for f in original:  # place them with the copy's own geometry, through SimpleITK's reader
        ds = pydicom.dcmread(folder / f.name, stop_before_pixels=True)
        heights = ff.origin[0] + ff.spacing[0] * np.arange(ff.shape[0])  # canonical axis 0: inferior -> superior
        k = int(np.argmin(np.abs(heights - float(ds.ImagePositionPatient[2]))))
        labels_ff[k] = native[ds.file_meta.MediaStorageSOPInstanceUID][:, ::-1]  # rows run to the right
    path = tmp_path / "ff.dcm"
    with pytest.warns(UserWarning):
        write_dicom_seg(path, labels_ff, like=ff)
    seg = hd.seg.segread(path)
    frames = np.asarray(seg.pixel_array)
    for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        uid = item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        value = {1: 1, 2: 5}[int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        np.testing.assert_array_equal(frames[i] > 0, native[uid] == value)
    np.testing.assert_array_equal(ct.read_labels(path, like=ff).array, labels_ff)


def test_bad_input_gets_a_clear_error_and_no_file(tmp_path, abdomen_dicom, abdomen_dicom_labels, abdomen_3mm,
                                                 abdomen_3mm_labels):
    out = tmp_path / "out.dcm"
    with pytest.raises(ValueError, match=r"DICOM-SEG needs the source DICOM series.*abdomen_3mm\.nii\.gz.*--format"):
        write_dicom_seg(out, abdomen_3mm_labels, like=abdomen_3mm)  # a NIfTI in RAS
    with pytest.raises(ValueError, match=r"labels shape \(20, 512, 511\) does not match the CT .* labels made"):
        write_dicom_seg(out, abdomen_dicom_labels.array[:, :, 1:], like=abdomen_dicom)
    with pytest.raises(ValueError, match="the label map is empty"):
        write_dicom_seg(out, np.zeros(abdomen_dicom.shape, np.uint8), like=abdomen_dicom)
    assert not out.exists()
    folder = series_copy(tmp_path)
    vol = ct.read_volume(folder)
    victim = sorted(folder.iterdir())[7]
    victim.unlink()
    with pytest.raises(FileNotFoundError, match=r"(missing|holds 19 CT instances but the CT has 20)"):
        write_dicom_seg(out, abdomen_dicom_labels.array, like=vol)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["series"]
    out.write_bytes(b"previous")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_dicom_seg(out, abdomen_dicom_labels.array, like=abdomen_dicom)
    assert out.read_bytes() == b"previous"


def test_napari_writer_saves_a_seg_of_a_dicom_ct_and_takes_rtstruct_names(tmp_path, abdomen_dicom, abdomen_dicom_labels):
    import highdicom as hd
    import npe2

    from napari_ctorgans._napari.layers import labels_layer_kwargs
    from napari_ctorgans.io.dicom_seg import dicom_kind
    from napari_ctorgans.io.formats import label_format

    npe2.PluginManager.instance().discover()
    layer = (abdomen_dicom_labels.array, labels_layer_kwargs(abdomen_dicom, name="organs"), "labels")
    with pytest.warns(UserWarning):
        (seg_path,) = npe2.write(str(tmp_path / "organs.dcm"), [layer], plugin_name="napari-ctorgans")
    seg = hd.seg.segread(seg_path)
    assert {seg.get_segment_description(n).algorithm_type.value for n in seg.segment_numbers} == {"SEMIAUTOMATIC"}
    np.testing.assert_array_equal(ct.read_labels(seg_path, like=abdomen_dicom).array, abdomen_dicom_labels.array)
    assert dicom_kind(seg_path) == "seg" and label_format(tmp_path / "organs.rtstruct.dcm") == "rtstruct"
    writer, _ = npe2.PluginManager.instance().get_writer(str(tmp_path / "organs.rtstruct.dcm"), ["labels"])
    assert writer.command == "napari-ctorgans.write_dicom"  # the same writer, RTSTRUCT by the name


def test_cli_format_refuses_a_ct_without_its_series_before_the_work(tmp_path, capsys):
    from napari_ctorgans.cli import main

    out = tmp_path / "labels.dcm"
    assert main(["label", str(data_file("abdomen_3mm.nii.gz")), "-o", str(out), "--format", "dicom-seg"]) == 1
    assert "DICOM-SEG needs the source DICOM series" in capsys.readouterr().err and not out.exists()
    assert main(["label", str(data_file("abdomen_3mm.nii.gz")), "-o", str(tmp_path / "x.nii.gz"), "--format",
                 "rtstruct"]) == 1
    assert "give the output the suffix .rtstruct.dcm" in capsys.readouterr().err


def gantry_tilt(ds, i: int, n: int, degrees: float = 15.0) -> None:
    """Rewrite a slice as acquired with a tilted gantry: columns turned towards the head, positions unchanged."""
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, float(c), float(s)]
    ds.GantryDetectorTilt = degrees


def test_gantry_tilted_series_gets_a_seg_on_its_own_slice_planes(tmp_path):
    import highdicom as hd

    from napari_ctorgans.io.rtstruct import write_rtstruct

    folder = series_copy(tmp_path, gantry_tilt)
    with pytest.warns(UserWarning, match="gantry tilt of 15 degrees"):
        tilted = ct.read_volume(folder)  # resampled onto an orthogonal grid by the reader
    labels = np.where(tilted.array > 300, 5, 0).astype(np.uint8)
    labels[5:15, 200:300, 100:200] = 1
    path = tmp_path / "tilted.dcm"
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        write_dicom_seg(path, labels, like=tilted)
    np.testing.assert_array_equal(ct.read_labels(path, like=tilted).array, labels)
    seg = hd.seg.segread(path)
    source = [pydicom.dcmread(f, stop_before_pixels=True) for f in tilted.metadata["dicom_files"]]
    iop = np.asarray(source[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    shared = seg.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
    np.testing.assert_allclose(np.asarray(shared, float), iop, atol=1e-6)  # frames in the tilted planes
    depths = {round(float(np.dot(np.asarray(f.PlanePositionSequence[0].ImagePositionPatient, float), normal)), 2)
              for f in seg.PerFrameFunctionalGroupsSequence}
    assert depths == {round(float(np.dot(np.asarray(d.ImagePositionPatient, float), normal)), 2) for d in source}
    assert dciodvfy_errors(path) == []
    with pytest.raises(ValueError, match=r"was resampled when read .*\(--format nifti\).*DICOM-SEG can hold them"):
        write_rtstruct(tmp_path / "tilted.rtstruct.dcm", labels, like=tilted)
    assert not (tmp_path / "tilted.rtstruct.dcm").exists()


def test_cohort_writes_the_format_asked_for_and_keeps_seg_outputs_out_of_the_inputs(tmp_path, written):
    from napari_ctorgans.cohort import find_inputs, output_paths, process_scan

    site = tmp_path / "site1"
    site.mkdir()
    scan = site / "p1.nii.gz"
    scan.write_bytes(data_file("abdomen_3mm.nii.gz").read_bytes())
    (site / "p0_labels.dcm").write_bytes(written.read_bytes())  # a DICOM-SEG output beside the scans
    scans, root = find_inputs(tmp_path)
    assert scans == [scan]  # the SEG does not make site1/ a DICOM series
    (out,) = output_paths(scans, root, ext=".rtstruct.dcm")
    row = process_scan(scan, out, task="label", format="rtstruct")
    assert row["status"] == "failed" and "RTSTRUCT needs the source DICOM series" in row["error"]
    assert "p1.nii.gz" in row["error"] and not out.exists()
