"""Labelers on real fields of view: a tight thorax crop with no outside air, a thin pelvis slab without lungs, and
bone in a copy whose HU are clipped at +1023 (12-bit archives)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct

#: (z, y, x) crops of chest_3mm to the mediastinum and both lungs: every voxel lies inside the patient, and the
#: lungs reach the field of view on both sides (the first crop also at the top and bottom)
CROPS = {
    "mediastinum+lungs": (slice(15, 70), slice(45, 100), slice(45, 120)),
    "wider": (slice(10, 75), slice(40, 105), slice(40, 125)),
}


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


@pytest.fixture(scope="module")
def chest_full(chest_3mm):
    """Body and right/left lungs of the whole chest scan (outside air, couch and whole lungs in view)."""
    body = ct.label_body(chest_3mm)
    return body, ct.label_lungs(chest_3mm, split=True, body=body)


@pytest.mark.parametrize("crop", list(CROPS))
def test_tight_thorax_crop_keeps_both_lungs(chest_3mm, chest_full, crop):
    box = CROPS[crop]
    full_body, chest_sides = chest_full
    a = np.ascontiguousarray(chest_3mm.array[box])
    v = ct.Volume(a, spacing=chest_3mm.spacing)
    full = chest_sides[box]
    # the case is what it claims: no outside air in view (the full scan's body covers the crop), lungs on both
    # sides of the field of view
    assert full_body[box].mean() > 0.999
    assert full[:, :, 0].any() and full[:, :, -1].any()
    assert np.count_nonzero(full) * chest_3mm.voxel_volume_ml > 1000  # over a litre of lung in view
    sides = ct.label_lungs(v, split=True)
    assert dice(sides > 0, full > 0) >= 0.99
    assert np.count_nonzero(sides) == pytest.approx(np.count_nonzero(full), rel=0.02)
    for side in (1, 2):  # right and left lungs both found, on their own side
        assert dice(sides == side, full == side) >= 0.98, side
    assert ct.label_body(v).mean() > 0.99
    assert np.array_equal(ct.auto_label(v, organs=["lungs"]) == 3, sides > 0)


@pytest.mark.parametrize("pad", [-1024, -2048])
def test_tight_crop_padded_outside_reconstruction_circle(chest_3mm, chest_full, pad):
    """A square matrix around a circular reconstruction: the padded corners touch the lungs where the circle cuts
    them, and are not taken for lung nor take the lungs out with them."""
    box = CROPS["mediastinum+lungs"]
    a = chest_3mm.array[box].copy()
    _, ny, nx = a.shape
    yy, xx = np.mgrid[:ny, :nx]
    corners = ((yy - (ny - 1) / 2) / (ny / 2)) ** 2 + ((xx - (nx - 1) / 2) / (nx / 2)) ** 2 > 1
    a[:, corners] = pad
    full = chest_full[1][box] > 0
    assert np.count_nonzero(full[:, corners]) > 10_000  # the circle cuts the lungs
    lungs = ct.label_lungs(ct.Volume(a, spacing=chest_3mm.spacing))
    assert not lungs[:, corners].any()
    assert dice(lungs, full & ~corners) >= 0.99


def test_crop_outside_air_still_outside(chest_3mm, chest_full):
    """A crop that shows the patient's side and the air beyond it: that air (median -1000 HU) stays outside."""
    box = (slice(15, 70), slice(45, 100), slice(0, 90))
    v = ct.Volume(np.ascontiguousarray(chest_3mm.array[box]), spacing=chest_3mm.spacing)
    body = ct.label_body(v)
    full_body, chest_sides = chest_full[0][box], chest_full[1]
    assert (~full_body).sum() > 10_000
    assert not np.any(body & ~full_body)  # no outside air taken into the body
    assert np.count_nonzero(full_body & ~body) < 1e-3 * body.size  # slivers cut by the crop edge
    assert dice(ct.label_lungs(v), chest_sides[box] > 0) >= 0.99


@pytest.fixture(scope="module")
def abdomen_5mm(abdomen_3mm):
    return ct.resample(abdomen_3mm, (5.0, 3.0, 3.0))


def _slab(vol, start, n=13):
    return ct.Volume(np.ascontiguousarray(vol.array[start : start + n]), spacing=vol.spacing)


def test_thin_slabs_without_lungs_get_none(abdomen_5mm, abdomen_3mm_labels):
    """13 slices at 5 mm: the pelvis (bladder, femoral heads) and every slab up to the lung bases, some full of
    bowel gas, get no lungs; the slab at the top (lung bases) does."""
    assert abdomen_5mm.spacing == (5.0, 3.0, 3.0)
    ref_z = np.nonzero((abdomen_3mm_labels.array == 3).any(axis=(1, 2)))[0]
    below = int(ref_z.min() * 3.0 / 5.0) - 13  # last 13-slice slab below the lung bases
    gas_ml = {}
    for start in range(0, below + 1, 4):
        slab = _slab(abdomen_5mm, start)
        assert slab.shape[0] == 13
        assert not ct.label_lungs(slab).any(), start
        assert not np.any(ct.auto_label(slab) == 3), start
        gas_ml[start] = np.count_nonzero((slab.array < -900) & ct.label_body(slab)) * slab.voxel_volume_ml
    pelvis = _slab(abdomen_5mm, 0)
    assert np.any(abdomen_3mm_labels.array[:20] == 2)  # the bladder is in the pelvis slab
    assert not ct.auto_label(pelvis).any() or set(np.unique(ct.auto_label(pelvis))) == {0, 5}
    gassy = max(gas_ml, key=gas_ml.get)
    assert gas_ml[gassy] > 100  # what is tested is that bowel gas is not taken for lung
    # with a parenchyma range and a gas test that admit gas, that slab's gas comes back as "lung"
    assert np.count_nonzero(ct.label_lungs(_slab(abdomen_5mm, gassy), parenchyma_hu=(-1100, -500),
                                           max_gas_fraction=1.0)) > 0
    top = _slab(abdomen_5mm, abdomen_5mm.shape[0] - 13)
    assert np.count_nonzero(ct.label_lungs(top)) * top.voxel_volume_ml > 50


def _clipped(vol):
    return ct.Volume(np.minimum(vol.array, 1023).astype(vol.array.dtype), spacing=vol.spacing)


def test_bone_with_hu_clipped_at_1023(abdomen_3mm, abdomen_3mm_labels):
    assert np.count_nonzero(abdomen_3mm.array > 1023) > 500
    clipped = _clipped(abdomen_3mm)
    assert clipped.array.max() == 1023
    ours, cl = ct.label_bones(abdomen_3mm), ct.label_bones(clipped)
    ref = abdomen_3mm_labels.array == 5
    assert dice(cl, ours) >= 0.99
    assert dice(cl, ref) >= dice(ours, ref) - 0.01
    assert dice(cl, ref) >= 0.87


@pytest.mark.slow
def test_bone_clipped_dicom_slab(abdomen_dicom, abdomen_dicom_labels):
    """The contrast slab at 0.98 mm has about 5,000 voxels of cortex above 1023 HU."""
    assert np.count_nonzero(abdomen_dicom.array > 1023) > 3000
    ours, cl = ct.label_bones(abdomen_dicom), ct.label_bones(_clipped(abdomen_dicom))
    ref = abdomen_dicom_labels.array == 5
    assert dice(cl, ours) >= 0.99
    assert dice(cl, ref) >= dice(ours, ref) - 0.01


def test_outside_hu_validated():
    v = ct.Volume(np.full((8, 10, 10), -1000, dtype=np.int16), spacing=3.0)
    with pytest.raises(ValueError, match="outside_hu"):
        ct.label_body(v, outside_hu=float("nan"))
    with pytest.raises(TypeError, match="outside_hu"):
        ct.label_body(v, outside_hu="air")
