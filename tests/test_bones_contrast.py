"""Bone is bone, also with contrast: blood painted at contrast HU next to real bone never becomes bone, real bone
stays; dense (and clipped) contrast pools too; bowel gas and the foam under a thin abdominal slab are not lung."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_ctorgans as ct
from conftest import data_file


def dice(a, b) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return 2.0 * np.count_nonzero(a & b) / max(np.count_nonzero(a) + np.count_nonzero(b), 1)


#: lumbar slab of abdomen_3mm (above the pelvis, kidneys in view)
LUMBAR = slice(66, 90)


@pytest.fixture(scope="module")
def lumbar(abdomen_3mm, abdomen_3mm_labels):
    a = np.ascontiguousarray(abdomen_3mm.array[LUMBAR])
    ref = np.asarray(abdomen_3mm_labels.array[LUMBAR]) == 5
    v = ct.Volume(a, spacing=abdomen_3mm.spacing)
    return a, ref, ct.label_bones(v)


def _aorta(a, ref, radius_mm=10.0, sp=3.0):
    """A straight tube along z in front of the vertebral bodies, a little to the patient's left (larger x), touching
    the most anterior of them like the aorta does (never painted over reference bone)."""
    zz, yy, xx = np.nonzero(ref)
    mid = int(np.median(xx[(xx > a.shape[2] // 3) & (xx < 2 * a.shape[2] // 3)]))
    front = min(yy[(zz == z) & (abs(xx - mid) <= 2)].min() for z in range(a.shape[0]))
    r = radius_mm / sp
    y, x = np.mgrid[: a.shape[1], : a.shape[2]]
    disc = (y - (front - r)) ** 2 + (x - (mid + r)) ** 2 <= r * r
    return np.broadcast_to(disc, a.shape) & ~ref


@pytest.mark.parametrize("hu", [300, 400])
def test_aorta_painted_next_to_spine_is_not_bone(lumbar, abdomen_3mm, hu):
    a, ref, before = lumbar
    cyl = _aorta(a, ref)
    assert not np.any(cyl & ref) and np.any(ndi.binary_dilation(cyl, iterations=2) & ref)  # touches the spine
    rng = np.random.default_rng(0)
    painted = a.copy()
    painted[cyl] = (hu + rng.normal(0, 10, np.count_nonzero(cyl))).astype(a.dtype)
    v = ct.Volume(painted, spacing=abdomen_3mm.spacing)
    bone = ct.label_bones(v)
    assert not np.any(bone & cyl)
    assert dice(bone, ref) >= dice(before, ref) - 0.02
    # without the homogeneity test the blood touching the vertebrae is taken in with them
    assert np.count_nonzero(ct.label_bones(v, soft_std=0) & cyl) > 0.3 * np.count_nonzero(cyl)


@pytest.fixture(scope="module")
def chest_bone(chest_3mm):
    return ct.label_bones(chest_3mm)


#: centre (z, y, x) of the heart in chest_3mm and the radius (mm) of the painted chamber
HEART, HEART_MM = (30, 62, 86), 24.0


def _ball(shape, centre, radius_vox):
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox**2


@pytest.mark.parametrize("hu", [350, 450, 1023])
def test_heart_filled_with_contrast_is_not_bone(chest_3mm, chest_bone, hu):
    """A contrast-filled chamber in the heart, at arterial-phase HU and at +1023 (dense contrast in a 12-bit
    archive, as bright as clipped cortex): none of it is bone, and bone away from it is unchanged."""
    a = chest_3mm.array
    blob = _ball(a.shape, HEART, HEART_MM / 3.0)
    assert -50 < np.median(a[blob]) < 100  # the chamber is painted into the heart, not into lung or bone
    assert not np.any(chest_bone & blob)
    rng = np.random.default_rng(1)
    painted = a.copy()
    painted[blob] = np.clip(hu + rng.normal(0, 10, np.count_nonzero(blob)), None, 1023).astype(a.dtype)
    v = ct.Volume(painted, spacing=chest_3mm.spacing)
    bone = ct.label_bones(v)
    assert not np.any(bone & blob)
    away = ~ndi.binary_dilation(blob, iterations=4)
    assert dice(bone & away, chest_bone & away) >= 0.99
    if hu >= 1023:  # the dense pool is judged by its shape: without the pool test it is bone
        assert np.count_nonzero(ct.label_bones(v, vessel_mm=0) & blob) > 0.5 * np.count_nonzero(blob)


@pytest.fixture(scope="module")
def contrast_abdomen():
    """ct/abdomen_contrast.nii.gz (3D-IRCADb-01 patient 1, IRCAD, CC BY-NC-ND: evaluation only)."""
    vol = ct.read_volume(data_file("abdomen_contrast.nii.gz"))
    ref = ct.read_labels(data_file("abdomen_contrast_ctorg.nii.gz"), like=vol)
    return vol, np.asarray(ref.array)


def test_calcified_aorta_on_real_contrast_scan(contrast_abdomen):
    """The portal-venous aorta (about 160 HU, 12 mm across at 0.57 mm voxels) with calcified plaques on its wall,
    in front of the vertebrae: the plaques are not bone, the vertebrae are."""
    vol, ref = contrast_abdomen
    box = (slice(50, 80), slice(150, 400), slice(150, 400))
    a = np.ascontiguousarray(vol.array[box])
    r = ref[box]
    bone = ct.label_bones(ct.Volume(a, spacing=vol.spacing))
    near = ndi.distance_transform_edt(r != 5, sampling=vol.spacing) <= 5.0
    blood = (a > 150) & (r == 0) & ~near  # bright voxels the reference leaves background, away from its bone
    assert np.count_nonzero(blood) > 2000
    assert np.count_nonzero(bone & blood) == 0
    assert dice(bone, r == 5) >= 0.80


def _slab(vol, z):
    return ct.Volume(np.ascontiguousarray(vol.array[z]), spacing=vol.spacing)


def test_thin_abdominal_slab_has_no_lungs(contrast_abdomen, abdomen_3mm):
    """The lowest 15 slices of the contrast abdomen (lower kidney poles, bowel gas, the mattress foam under the
    back at about -940 HU) and the lowest 10 to 15 slices of abdomen_3mm (pelvis) give no lung; the lung bases of
    the contrast scan still do."""
    vol, ref = contrast_abdomen
    low = _slab(vol, slice(0, 15))
    assert not ct.label_lungs(low).any()
    # the foam pocket is what is tested: without the gas test it comes back as "lung"
    assert np.count_nonzero(ct.label_lungs(low, max_gas_fraction=1.0)) > 10_000
    for n in (10, 13, 15):
        assert not ct.label_lungs(_slab(abdomen_3mm, slice(0, n))).any(), n
    top = slice(100, 115)
    assert dice(ct.label_lungs(_slab(vol, top)), ref[top] == 3) >= 0.9


def test_contrast_chamber_on_a_noisy_scan(chest_3mm):
    """On a noisy (low-dose) scan, blood is homogeneous only up to its noise: the homogeneity threshold follows the
    image noise, so a 600 HU chamber (dense contrast) with 30 HU of noise added to the whole scan is not bone; with
    the fixed 25 HU threshold all of it would be."""
    from napari_ctorgans.labelers.contrast import noise_hu

    rng = np.random.default_rng(2)
    a = np.clip(chest_3mm.array + rng.normal(0, 30, chest_3mm.shape).round(), -1024, None)
    blob = _ball(a.shape, HEART, HEART_MM / 3.0)
    a[blob] = np.clip(600 + rng.normal(0, 32, np.count_nonzero(blob)), None, 1023)
    v = ct.Volume(a.astype(np.int16), spacing=chest_3mm.spacing)
    assert noise_hu(v.array, v.spacing) > 25 > noise_hu(chest_3mm.array, chest_3mm.spacing)
    assert not np.any(ct.label_bones(v) & blob)
    assert np.count_nonzero(ct.label_bones(v, blood_std=25) & blob) > 0.5 * np.count_nonzero(blob)


@pytest.mark.parametrize(
    "fn, kw, err, match",
    [
        ("label_lungs", dict(gas_hu="air"), TypeError, "gas_hu"),
        ("label_lungs", dict(gas_hu=-500), ValueError, "gas_hu"),
        ("label_lungs", dict(max_gas_fraction=-0.1), ValueError, "max_gas_fraction"),
        ("label_lungs", dict(min_vessel_fraction=float("nan")), ValueError, "min_vessel_fraction"),
        ("label_bones", dict(blood_std=-1), ValueError, "blood_std"),
        ("label_bones", dict(vessel_min_ml="big"), TypeError, "vessel_min_ml"),
        ("label_bones", dict(dense_min_ml=-5), ValueError, "dense_min_ml"),
    ],
)
def test_new_options_validated(fn, kw, err, match):
    v = ct.Volume(np.full((8, 10, 10), -1000, dtype=np.int16), spacing=3.0)
    with pytest.raises(err, match=match):
        getattr(ct, fn)(v, **kw)
