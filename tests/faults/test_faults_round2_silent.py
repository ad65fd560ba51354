"""Silent wrong results, round two: labels on another grid taught as background, NaN in and out, absurd
augmentation values, negative labels in an evaluation, the ignore value in DICOM objects, a CT the cohort skips."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.train.data import load_case


def _crop(vol: ct.Volume, shape, shift_mm=(0.0, 0.0, 0.0)) -> ct.Volume:
    z, y, x = shape
    origin = tuple(o + s for o, s in zip(vol.origin, shift_mm))
    return ct.Volume(vol.array[20:20 + z, 25:25 + y, 30:30 + x], spacing=vol.spacing, origin=origin,
                     direction=vol.direction, source_orientation=vol.source_orientation)


def test_training_refuses_labels_of_another_shape_or_grid(tmp_path, abdomen_3mm, abdomen_3mm_labels):
    image = ct.write_volume(tmp_path / "scan.nii.gz", _crop(abdomen_3mm, (70, 50, 60)))
    labels_vol = abdomen_3mm.with_array(abdomen_3mm_labels.array)
    good = ct.write_volume(tmp_path / "scan_ctorg.nii.gz", _crop(labels_vol, (70, 50, 60)))
    case = load_case((image, good), spacing=3.0, cache_dir=False)
    assert case.image.shape == (70, 50, 60) and set(case.organs()) >= {1}

    smaller = ct.write_volume(tmp_path / "small_ctorg.nii.gz", _crop(labels_vol, (65, 47, 60)))
    with pytest.raises(ValueError) as err:
        load_case((image, smaller), spacing=3.0, cache_dir=False)
    message = str(err.value)
    assert f"the labels {smaller} are not on the grid of the CT {image}" in message, message
    assert "labels shape (65, 47, 60)" in message and "CT shape (70, 50, 60)" in message, message

    moved = ct.write_volume(tmp_path / "moved_ctorg.nii.gz", _crop(labels_vol, (70, 50, 60), (0.0, 10.0, 0.0)))
    with pytest.raises(ValueError, match=re.escape(f"the labels {moved} are not on the grid of the CT {image}")):
        load_case((image, moved), spacing=3.0, cache_dir=False)
    with pytest.raises(ValueError, match="resample them onto it first"):  # the same, given as volumes
        load_case((ct.read_volume(image), ct.read_labels(moved)), spacing=3.0)
