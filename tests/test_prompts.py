"""The prompt engine (ct.segment_prompts) on the real abdomen: clicks, boxes, scribbles, cuts and size flags."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_ctorgans as ct


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def upper(abdomen_3mm, abdomen_3mm_labels):
    """The upper abdomen (liver and kidneys whole) of the real 3 mm abdomen, and its reference labels."""
    ref = np.asarray(abdomen_3mm_labels.array)
    zs = np.flatnonzero(np.isin(ref, (1, 4)).any(axis=(1, 2)))
    box = slice(max(zs[0] - 3, 0), min(zs[-1] + 4, ref.shape[0]))
    vol = ct.Volume(np.ascontiguousarray(abdomen_3mm.array[box]), spacing=abdomen_3mm.spacing)
    return vol, np.ascontiguousarray(ref[box])


def _inside(mask, spacing, mm, n, seed=0):
    depth = ndi.distance_transform_edt(mask, sampling=spacing)
    pts = np.argwhere(depth >= mm)
    return pts[np.random.default_rng(seed).choice(len(pts), size=n, replace=False)]


def test_one_click_inside_the_liver_segments_it(upper):
    vol, ref = upper
    liver = ref == 1
    for p in _inside(liver, vol.spacing, 10.0, 3):
        res = ct.segment_prompts(vol, "liver", positive=[p])
        assert res.mask.shape == vol.shape and res.mask.dtype == bool
        assert _dice(res.mask, liver) >= 0.85, p
        assert res.plausible, res.warning
        assert res.volume_ml == pytest.approx(np.count_nonzero(res.mask) * vol.voxel_volume_ml)


def test_negative_click_removes_a_false_region_and_keeps_the_rest(upper):
    vol, ref = upper
    liver = ref == 1
    lab, _ = ndi.label(ref == 4)
    # the kidney nearer the liver, drawn as liver in the draft (a leak)
    dist = ndi.distance_transform_edt(~liver, sampling=vol.spacing)
    near = min(range(1, lab.max() + 1), key=lambda i: dist[lab == i].min())
    leak = lab == near
    draft = liver | leak
    centre = np.argwhere(ndi.distance_transform_edt(leak) == ndi.distance_transform_edt(leak).max())[0]
    res = ct.segment_prompts(vol, "liver", negative=[centre], current=draft)
    assert np.count_nonzero(res.mask & leak) <= 0.1 * np.count_nonzero(leak)
    assert _dice(res.mask, liver) >= 0.97  # the liver stays
    assert not (res.mask & ~draft).any()  # a negative click only removes


def test_a_box_in_one_slice_acts_in_3d_and_bounds_its_slice(upper):
    vol, ref = upper
    liver = ref == 1
    z = int(np.argmax(liver.sum(axis=(1, 2))))
    ys, xs = np.nonzero(liver[z])
    box = [[z, ys.min(), xs.min()], [z, ys.max(), xs.max()]]
    res = ct.segment_prompts(vol, "liver", boxes=[box])
    slices = np.flatnonzero(res.mask.any(axis=(1, 2)))
    assert len(slices) >= 10 and slices.min() < z < slices.max()  # grew in 3D
    outside = np.ones(vol.shape[1:], bool)
    outside[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = False
    assert not (res.mask[z] & outside).any()  # the box bounds its own slice
    assert _dice(res.mask, liver) >= 0.8


def test_result_outside_the_size_range_is_flagged(upper):
    vol, ref = upper
    # "kidneys" clicked in the liver (similar HU without contrast): never a liver-sized piece without a flag
    p = _inside(ref == 1, vol.spacing, 20.0, 1)[0]
    for point in (p, p + [0, 5, 5], p - [0, 5, 5]):
        res = ct.segment_prompts(vol, "kidneys", positive=[point])
        assert res.volume_ml <= 350 or not res.plausible, res
    # a kidneys draft that holds the liver: flagged as larger than any kidney, with the way out
    res = ct.segment_prompts(vol, "kidneys", current=ref == 1, positive=[p])
    assert not res.plausible and np.array_equal(res.mask, ref == 1)
    assert "kidneys" in res.warning and "mL" in res.warning and "undo" in res.warning


def test_other_organs_and_the_rest_of_the_draft_are_never_touched(upper):
    vol, ref = upper
    others = (ref > 0) & (ref != 1)
    draft = np.zeros(vol.shape, bool)
    far = ref == 1
    draft[: vol.shape[0] // 3] = far[: vol.shape[0] // 3]  # the top of the liver, drawn
    p = _inside(ref == 1, vol.spacing, 10.0, 1, seed=3)[0]
    res = ct.segment_prompts(vol, "liver", positive=[p], scribbles=[[p, p + [0, 2, 2]]], current=draft,
                             forbidden=others)
    assert not (res.mask & others).any()
    assert (res.mask | ~draft).all()  # a positive prompt only adds
    outside = np.ones(vol.shape, bool)
    outside[res.box] = False
    assert np.array_equal(res.mask[outside], draft[outside])


def test_prompts_the_user_gets_wrong_are_explained(upper):
    vol, _ = upper
    with pytest.raises(ValueError, match="one axial slice"):
        ct.segment_prompts(vol, "liver", boxes=[[[5, 10, 10], [6, 30, 30]]])
    with pytest.raises(ValueError, match="outside the scan"):
        ct.segment_prompts(vol, "liver", positive=[[500, 1, 1]])
    with pytest.raises(ValueError, match="unknown organ"):
        ct.segment_prompts(vol, "spleen", positive=[[5, 10, 10]])
    with pytest.raises(ValueError, match="current must have the scan's shape"):
        ct.segment_prompts(vol, "liver", positive=[[5, 10, 10]], current=np.zeros((2, 2, 2), bool))
