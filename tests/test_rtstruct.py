"""RTSTRUCT out and in on the real 20-slice abdomen series: Dice of the round trip, references, dciodvfy, faults."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from skimage.draw import polygon
from test_dicom_seg import dciodvfy_errors, feet_first_series, series_copy

import napari_ctorgans as ct
from napari_ctorgans.io.rtstruct import write_rtstruct
from napari_ctorgans.metrics import dice


@pytest.fixture(scope="module")
def written(tmp_path_factory, abdomen_dicom_labels):
    """An RTSTRUCT next to a copy of the series it was drawn on."""
    root = tmp_path_factory.mktemp("rt")
    vol = ct.read_volume(series_copy(root))
    path = root / "organs_rt.dcm"
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        write_rtstruct(path, abdomen_dicom_labels, like=vol)
    return path, vol


def test_labels_to_rtstruct_to_labels_keeps_every_organ(written, abdomen_dicom_labels):
    path, vol = written
    back = ct.read_labels(path, like=vol)
    assert back.same_grid(vol) and back.metadata["segment_names"] == {1: "liver", 5: "bone"}
    for value in (1, 5):
        assert dice(back.array == value, abdomen_dicom_labels.array == value) >= 0.97
    found = ct.read_labels(path)  # the CT series is found next to the file, as the napari reader does
    np.testing.assert_array_equal(found.array, back.array)
    assert dciodvfy_errors(path) == []


def test_rois_are_named_coded_and_reference_the_source_instances(written):
    path, vol = written
    rs = pydicom.dcmread(path)
    assert [r.ROIName for r in rs.StructureSetROISequence] == ["liver", "bone"]
    assert {r.ROIGenerationAlgorithm for r in rs.StructureSetROISequence} == {"AUTOMATIC"}
    codes = [o.RTROIIdentificationCodeSequence[0] for o in rs.RTROIObservationsSequence]
    assert [(c.CodeValue, c.CodingSchemeDesignator) for c in codes] == [("10200004", "SCT"), ("272673000", "SCT")]
    sops = set(vol.metadata["dicom_sop_uids"])
    refs = {i.ReferencedSOPInstanceUID for item in rs.ROIContourSequence for c in item.ContourSequence
            for i in c.ContourImageSequence}
    assert refs <= sops and len(refs) == 20  # liver and bone are on every slice
    frame = rs.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == pydicom.dcmread(vol.metadata["dicom_files"][0]).FrameOfReferenceUID
    listed = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].ContourImageSequence
    assert {i.ReferencedSOPInstanceUID for i in listed} == sops


def test_feet_first_contours_land_on_the_same_pixels(tmp_path, tmp_path_factory, abdomen_dicom_labels):
    """Each contour, mapped to its slice's pixels with pydicom's geometry alone, outlines that slice's organ."""
    _, ff = feet_first_series(tmp_path_factory)
    heads = {ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID: ds
             for ds in (pydicom.dcmread(f, stop_before_pixels=True) for f in ff.metadata["dicom_files"])}
    # the copy's pixels are the original's: the original labels of its slice, in the pixels' (row, col) order
    native = {}
    for uid, ds in heads.items():
        k = int(round((-float(ds.ImagePositionPatient[2]) - abdomen_dicom_labels.origin[0]) / 2.0))
        native[uid] = abdomen_dicom_labels.array[k]
    canon = np.zeros(ff.shape, np.uint8)
    for uid, ds in heads.items():
        k = int(round((float(ds.ImagePositionPatient[2]) - ff.origin[0]) / ff.spacing[0]))
        canon[k] = native[uid][:, ::-1]  # rows run to the patient's right in the copy
    path = tmp_path / "ff_rt.dcm"
    with pytest.warns(UserWarning):
        write_rtstruct(path, canon, like=ff)
    rs = pydicom.dcmread(path)
    for item, value in zip(rs.ROIContourSequence, (1, 5)):
        drawn = {uid: np.zeros((512, 512), bool) for uid in heads}
        for contour in item.ContourSequence:
            ds = heads[contour.ContourImageSequence[0].ReferencedSOPInstanceUID]
            xyz = np.asarray(contour.ContourData, float).reshape(-1, 3) - np.asarray(ds.ImagePositionPatient, float)
            iop = np.asarray(ds.ImageOrientationPatient, float)
            col, row = xyz @ iop[:3] / float(ds.PixelSpacing[1]), xyz @ iop[3:] / float(ds.PixelSpacing[0])
            rr, cc = polygon(row, col, shape=(512, 512))
            drawn[ds.SOPInstanceUID or ds.file_meta.MediaStorageSOPInstanceUID][rr, cc] ^= True
        scores = [dice(drawn[uid], native[uid] == value) for uid in heads if (native[uid] == value).any()]
        assert min(scores) >= 0.97


def test_bad_input_gets_a_clear_error_and_no_file(tmp_path, written, abdomen_dicom_labels, abdomen_3mm,
                                                 abdomen_3mm_labels):
    path, vol = written
    out = tmp_path / "rt.dcm"
    with pytest.raises(ValueError, match=r"RTSTRUCT needs the source DICOM series.*abdomen_3mm\.nii\.gz"):
        write_rtstruct(out, abdomen_3mm_labels, like=abdomen_3mm)
    with pytest.raises(ValueError, match=r"not on the grid of the CT"):
        write_rtstruct(out, abdomen_dicom_labels.with_array(abdomen_dicom_labels.array, origin=(0, 0, 0)), like=vol)
    with pytest.raises(ValueError, match="the label map is empty"):
        write_rtstruct(out, np.zeros(vol.shape, np.uint8), like=vol)
    assert list(tmp_path.iterdir()) == []
    lone = tmp_path / "lone.dcm"
    lone.write_bytes(path.read_bytes())  # no CT next to it
    with pytest.raises(ValueError, match=r"lone\.dcm is an RTSTRUCT: its contours need the CT series.*like="):
        ct.read_labels(lone)
