"""Anatomically possible drafts (ct.plausible) on region crops of the real CT, and cut-off / confidence flags."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.metrics import dice
from napari_ctorgans.plausibility import ImplausibleOrganWarning, Removal

LIVER, BLADDER, LUNGS, KIDNEYS, BONE = 1, 2, 3, 4, 5


def _crop(vol, zs):
    return ct.Volume(np.ascontiguousarray(vol.array[zs]), spacing=vol.spacing, direction=vol.direction)


def _ml(labels, value, vol):
    return float(np.count_nonzero(labels == value) * vol.voxel_volume_ml)


def _predict(vol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ct.predict(vol, return_report=True)


@pytest.fixture(scope="module")
def chest_above(chest_3mm):
    """The thorax from 36 mm above the right hemidiaphragm up to the aortic arch, predicted by the starter; the
    removals come out as warnings."""
    vol = _crop(chest_3mm, slice(35, 75))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = ct.predict(vol)
    return vol, labels, [w for w in caught if issubclass(w.category, ImplausibleOrganWarning)]


def test_chest_above_the_diaphragm_has_no_abdominal_organ(chest_above):
    """Without the step the starter draws kidneys and bladder in the heart and the armpit there; with it none is
    left, and each removal is reported in words."""
    vol, labels, caught = chest_above
    for value in (LIVER, BLADDER, KIDNEYS):
        assert _ml(labels, value, vol) == 0.0
    assert _ml(labels, LUNGS, vol) > 2000  # the lungs stay
    said = [str(w.message) for w in caught]
    assert any(m.startswith("removed ") and " of kidneys " in m for m in said), said
    assert any(" of bladder on a scan that does not reach the bony pelvis" in m for m in said), said
    r = Removal(2, "bladder", "outside the bony pelvis", 1000, 415.2)
    assert str(r) == "removed 415 mL of bladder outside the bony pelvis"


def test_neck_has_no_abdominal_organ(chest_3mm):
    """A head-like field: the neck and shoulders above the lungs (the lung apices in its lowest slices): no liver,
    kidneys or bladder."""
    vol = _crop(chest_3mm, slice(80, None))
    labels, _ = _predict(vol)
    for value in (LIVER, BLADDER, KIDNEYS):
        assert _ml(labels, value, vol) == 0.0, value


def test_pelvis_below_the_kidneys_has_no_liver_or_kidneys(abdomen_3mm, abdomen_3mm_labels):
    vol = _crop(abdomen_3mm, slice(0, 64))
    assert not np.any(abdomen_3mm_labels.array[:64] == KIDNEYS)  # the crop is below the kidneys
    labels, report = _predict(vol)
    assert _ml(labels, LIVER, vol) == 0.0 and _ml(labels, KIDNEYS, vol) == 0.0
    assert _ml(labels, BLADDER, vol) > 100  # the bladder stays
    assert any(str(r).endswith("in the bony pelvis") for r in report.removed)


def test_abdomen_above_the_pelvis_has_no_bladder(abdomen_3mm):
    vol = _crop(abdomen_3mm, slice(62, None))
    labels, report = _predict(vol)
    assert _ml(labels, BLADDER, vol) == 0.0
    assert _ml(labels, LIVER, vol) > 500
    assert report.confidence[LIVER] > 0.5


def test_gas_in_a_pelvis_slab_is_not_lung(abdomen_3mm):
    """A 66 mm pelvis slab with its bowel gas labelled lung (what a lung finder fooled by gas returns): all of it
    goes, as lying in the bony pelvis."""
    vol = _crop(abdomen_3mm, slice(0, 22))
    body = ct.label_body(vol)
    labels = np.where(body & (vol.array < -400), LUNGS, 0).astype(np.uint8)
    assert _ml(labels, LUNGS, vol) > 1
    out, removed = ct.plausible(labels, vol)
    assert not np.any(out == LUNGS)
    assert [r.reason for r in removed] == ["in the bony pelvis"]
    assert labels.any()  # the input is not changed


def test_reference_labels_stay(abdomen_3mm, abdomen_3mm_labels):
    """The reference of the whole abdomen is anatomically possible: the step keeps it (Dice >= 0.99 per organ);
    it also keeps it when the scan is stored the other way round (left-right and up-down flipped)."""
    ref = abdomen_3mm_labels.array.astype(np.uint8)
    out, _ = ct.plausible(ref, abdomen_3mm)
    flip = np.diag([-1.0, 1.0, -1.0])
    vol_f = ct.Volume(np.ascontiguousarray(abdomen_3mm.array[::-1, :, ::-1]), spacing=abdomen_3mm.spacing,
                      direction=flip)
    out_f, _ = ct.plausible(np.ascontiguousarray(ref[::-1, :, ::-1]), vol_f)
    for value in (LIVER, BLADDER, LUNGS, KIDNEYS, BONE):
        assert dice(out == value, ref == value) >= 0.99, value
        assert dice(out_f[::-1, :, ::-1] == value, ref == value) >= 0.99, value


def test_starter_on_the_whole_abdomen_loses_no_dice(abdomen_3mm, abdomen_3mm_labels):
    """On the whole abdomen the step removes only wrong voxels: no organ's Dice against the reference drops."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = ct.predict(abdomen_3mm, plausible=False)
    out, removed = ct.plausible(raw, abdomen_3mm)
    ref = abdomen_3mm_labels.array
    for value in (LIVER, BLADDER, LUNGS, KIDNEYS, BONE):
        before, after = dice(raw == value, ref == value), dice(out == value, ref == value)
        assert after >= before - 0.005, (value, before, after)
        assert dice(out == value, raw == value) >= (0.7 if value == KIDNEYS else 0.99), value


def test_plausible_refuses_labels_of_another_grid(abdomen_3mm):
    with pytest.raises(ValueError, match="does not match the CT shape"):
        ct.plausible(np.zeros((3, 4, 5), np.uint8), abdomen_3mm)


def test_cut_off_organs_and_confidence_in_the_statistics_and_report(abdomen_3mm, abdomen_3mm_labels):
    """The reference abdomen runs from the liver dome's slices to the femoral heads: the liver and the lungs touch
    its last slice, the bladder and the kidneys are whole in view."""
    from napari_ctorgans.report import organ_note
    from napari_ctorgans.stats import statistics_text, table_rows

    rows = {r["name"]: r for r in ct.organ_statistics(abdomen_3mm_labels, abdomen_3mm,
                                                      confidence={LIVER: 0.5, BLADDER: 0.95})}
    assert "last slice" in rows["liver"]["cut_off"] and "last slice" in rows["lungs"]["cut_off"]
    assert rows["bladder"]["cut_off"] == [] and rows["kidneys"]["cut_off"] == []
    assert rows["liver"]["check"] and not rows["bladder"]["check"] and rows["kidneys"]["confidence"] is None
    assert organ_note(rows["liver"]) == "cut off by the scan (last slice); confidence 0.50: check"
    assert organ_note(rows["bladder"]) == "confidence 0.95"
    flat = {r["name"]: r for r in table_rows(list(rows.values()))}
    assert flat["lungs"]["cut_off"].startswith("last slice") and flat["kidneys"]["confidence"] == ""
    assert "cut_off,confidence" in statistics_text(list(rows.values()), ".csv").splitlines()[0]


def test_dicom_seg_and_rtstruct_say_cut_off(tmp_path, abdomen_dicom, abdomen_dicom_labels):
    """The DICOM slab (20 slices) cuts the liver at both ends: its segment and ROI descriptions say so."""
    import pydicom

    from napari_ctorgans.io.dicom_seg import write_dicom_seg
    from napari_ctorgans.io.rtstruct import write_rtstruct

    labels = abdomen_dicom_labels.array.astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_dicom_seg(tmp_path / "seg.dcm", labels, like=abdomen_dicom)
        write_rtstruct(tmp_path / "rt.dcm", labels, like=abdomen_dicom)
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    said = {str(s.SegmentLabel): str(s.get("SegmentDescription", "")) for s in seg.SegmentSequence}
    assert said["liver"].startswith("cut off by the scan (first slice, last slice")
    rt = pydicom.dcmread(tmp_path / "rt.dcm")
    rois = {str(r.ROIName): str(r.get("ROIDescription", "")) for r in rt.StructureSetROISequence}
    assert rois["liver"].startswith("cut off by the scan (first slice, last slice")
