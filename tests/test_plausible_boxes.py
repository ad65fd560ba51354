"""The organ boxes of ct.plausible (one slab-wise pass of numpy reductions) against scipy's find_objects."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_ctorgans.plausibility import _organ_boxes


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
def test_organ_boxes_match_find_objects_with_ignore_value_and_gaps(dtype):
    rng = np.random.default_rng(3)
    labels = np.zeros((23, 17, 19), dtype=dtype)
    for v in (1, 2, 4, 5, 9):  # value 3 absent, 9 above the small-value loop of most slabs
        z, y, x = rng.integers(0, 15, 3)
        labels[z:z + rng.integers(1, 8), y:y + rng.integers(1, 4), x:x + rng.integers(1, 5)] = v
    labels[5, 3, 4] = 1  # a second, distant piece widens the liver's box
    labels[0, 0, 0] = 255 if dtype == np.uint8 else 300  # the ignore value has no box; another value has one
    if dtype != np.uint8:
        labels[20, 16, 18] = -2  # negative values are not organs
    expected = {v: box for v, box in enumerate(ndi.find_objects(np.clip(labels, 0, None).astype(np.int64)), 1)
                if box is not None and v != 255}
    got = _organ_boxes(labels)
    assert list(got) == sorted(expected)
    assert got == expected


def test_organ_boxes_of_an_empty_map_are_empty():
    assert _organ_boxes(np.zeros((9, 4, 4), np.uint8)) == {}


def test_the_projects_phantoms_keep_their_toy_anatomy():
    """A phantom has no ribs or bony pelvis: its true labels pass unchanged, where a real scan's rules would cut them."""
    import napari_ctorgans as ct

    vol, truth = ct.make_phantom(seed=1, spacing=6.0, shape=(32, 32, 32))
    out, removed = ct.plausible(truth, vol)
    assert removed == [] and np.array_equal(out, truth)
    bare = ct.Volume(vol.array, spacing=vol.spacing)  # the same image without the phantom's mark is judged
    _, removed = ct.plausible(truth, bare)
    assert any(r.organ == "bladder" for r in removed)
