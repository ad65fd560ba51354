"""Spacing and model faults that crashed or ran out of memory: now each is a clear error before any work.

A crop of the real abdomen CT with a voxel size no CT has (1e-30 mm overflowed scipy in the labellers), a model
whose output is not on its input's grid (a torch error while stitching), and the packaged starter checkpoint
re-saved with a working spacing of 1e-6 mm (it resampled the scan until memory ran out).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from napari_ctorgans.volume import CT_SPACING_RANGE_MM


@pytest.fixture(scope="module")
def crop(abdomen_3mm):
    return ct.Volume(abdomen_3mm.array[40:72, 20:68, 20:68].copy(), abdomen_3mm.spacing)


@pytest.mark.parametrize("spacing", [1e-30, 1e-3, 1e3])
def test_labellers_refuse_a_voxel_size_no_ct_has(crop, spacing):
    lo, hi = CT_SPACING_RANGE_MM
    tiny = ct.Volume(crop.array, (spacing,) * 3)
    for call in (lambda: ct.auto_label(tiny), lambda: ct.label_bones(crop.array, spacing=spacing),
                 lambda: ct.label_lungs(crop, spacing=(3.0, 3.0, spacing))):
        with pytest.raises(ValueError, match=f"{lo:g} (and|to) {hi:g} mm"):  # ct.check_ct or the labellers' own
            call()
    assert ct.label_bones(crop).shape == crop.shape  # the real spacing (3 mm) still works


class _HalfSize(torch.nn.Module):
    """Scores on a grid of half the input's size: a stride left unrestored."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 6, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("roi_size", [None, 16])  # one pass over the whole box, and tiles
def test_model_output_off_its_input_grid_is_named(crop, roi_size):
    with pytest.raises(ValueError, match=r"the model returned an output of shape \(1, 6, (\d+, ){2}\d+\) for an "
                                         r"input of shape \(1, 1, (\d+, ){2}\d+\)") as info:
        ct.predict(crop, _HalfSize(), labelers="none", device="cpu", roi_size=roi_size)
    assert "(N, classes, Z, Y, X) on its input's grid" in str(info.value)


def test_checkpoint_contract_spacing_is_checked_like_an_explicit_one(tmp_path, crop):
    from napari_ctorgans.models import resolve_model
    from napari_ctorgans.train.checkpoint import read_checkpoint, save_checkpoint

    payload = read_checkpoint(resolve_model(None))
    payload["contract"]["spacing"] = 1e-6
    path = save_checkpoint(tmp_path / "tiny_spacing.pt", payload)
    with pytest.raises(ValueError, match="working spacing 1e-06 mm is not a CT voxel size") as info:
        ct.predict(crop, path, labelers="none", device="cpu")
    assert str(path) in str(info.value)
    with pytest.raises(ValueError, match="working spacing 1e-06 mm is not a CT voxel size"):
        ct.predict(crop, labelers="none", device="cpu", spacing=1e-6)  # the explicit spacing=, same check
    labels = ct.predict(crop, labelers="none", device="cpu", spacing=6.0)  # a plausible one still runs
    assert labels.shape == crop.shape and np.asarray(labels).dtype.kind in "iu"
