"""Silent wrong results, round two: labels on another grid taught as background, NaN in and out, absurd
augmentation values, negative labels in an evaluation, the ignore value in DICOM objects, a CT the cohort skips."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import data_file
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


def test_augment_refuses_nan_and_infinite_input_naming_it(abdomen_3mm):
    import torch

    image = abdomen_3mm.array[40:56, 30:62, 40:72].astype(np.float32)
    image[3, 4, 5], image[7, 1, 2] = np.nan, np.inf
    for given in (image, torch.from_numpy(image)):
        with pytest.raises(ValueError, match=re.escape("image holds 2 NaN or infinite values (the first at voxel "
                                                       "(z, y, x) = (3, 4, 5))")):
            ct.augment(given, None, ct.AugmentParams(), seed=0)
    out, _ = ct.augment(np.nan_to_num(image, nan=-1024, posinf=3071), None, ct.AugmentParams(), seed=0)
    assert np.isfinite(out).all()


def test_predict_refuses_a_model_that_outputs_nan(abdomen_3mm, one_torch_thread):
    import torch

    vol = ct.Volume(abdomen_3mm.array[40:56, 20:52, 30:62], spacing=abdomen_3mm.spacing)
    model = ct.build_model("cpu-small")
    with torch.no_grad():  # a damaged weight, as a diverged run or a flipped byte leaves it
        next(p for p in model.parameters() if p.ndim == 5)[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"the model \(UNet3D\) gave NaN or infinite scores for \d+ of \d+ values; "
                                         "its weights are damaged"):
        ct.predict(vol, model, crop_to_body=False, labelers=None)
    bad = vol.with_array(vol.array.astype(np.float32))
    bad.array[2, 3, 4] = np.nan
    with pytest.raises(ValueError, match="the CT given to predict holds 1 NaN or infinite voxel values"):
        ct.predict(bad, ct.build_model("cpu-small"), crop_to_body=False, labelers=None)


@pytest.mark.parametrize(("changes", "message"), [
    (dict(scale=(1e6, 1e6)), "scale[0] must lie within [0.25, 4.0], got (1e+06, 1e+06): a larger zoom"),
    (dict(shear=(-1e9, 1e9)), "shear must lie within [-1.0, 1.0], got (-1e+09, 1e+09)"),
    (dict(affine=(0, 5)), "affine must lie within [-1.0, 1.0]"),
    (dict(displacement=(-1e5, 0)), "displacement must lie within [-1024.0, 1024.0]"),
    (dict(noise_sigma=(0, 1e7)), "noise_sigma must lie within [0.0, 1000.0]"),
    (dict(elastic_magnitude=1e4), "elastic_magnitude must be at most 64 voxels, got 10000"),
])
def test_absurd_augmentation_values_are_refused_instead_of_a_blank_patch(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ct.AugmentParams(**changes)


def test_augmentation_at_the_limits_still_shows_anatomy(abdomen_3mm):
    image = abdomen_3mm.array[40:72, 20:84, 30:94]
    for changes in (dict(scale=(4.0, 4.0)), dict(scale=(0.25, 0.25)), dict(shear=(-1.0, 1.0)),
                    dict(affine=(-1.0, 1.0))):
        params = ct.AugmentParams(**{**dict(rotation_deg=(0, 0), displacement=(0, 0), elastic_magnitude=0,
                                            occlusion_max=0, noise_sigma=(0, 0)), **changes})
        out, _ = ct.augment(image, None, params, seed=1)
        assert out.std() > 0.01, changes  # not one value everywhere


def test_evaluate_refuses_negative_labels(abdomen_3mm_labels):
    from napari_ctorgans.metrics import evaluate

    ref = abdomen_3mm_labels.array[40:60].astype(np.int16)
    pred = ref.copy()
    pred[pred == 5] = -1
    with pytest.raises(ValueError, match=r"pred_labels holds negative values \(min -1\); label values are 0"):
        evaluate(pred, ref, spacing=3.0)
    assert [r.organ for r in evaluate(ref, ref, spacing=3.0)] == ["bone"]


def test_predict_refuses_a_working_spacing_no_ct_has(abdomen_3mm):
    vol = ct.Volume(abdomen_3mm.array[40:48, 20:52, 30:62], spacing=abdomen_3mm.spacing)
    with pytest.raises(ValueError, match="the working spacing 10000 mm is not a CT voxel size"):
        ct.predict(vol, ct.build_model("cpu-small"), spacing=1e4, labelers=None)


def test_read_volume_refuses_a_fifo_instead_of_blocking(tmp_path):
    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)
    for read in (ct.read_volume, ct.read_labels):
        with pytest.raises(ValueError, match=re.escape(f"{fifo} is not a regular file or a folder (a pipe")):
            read(fifo)


def test_cohort_says_when_it_leaves_out_a_scan_named_like_an_output(tmp_path):
    from napari_ctorgans.cohort import find_inputs

    (tmp_path / "abdomen.nii.gz").symlink_to(data_file("abdomen_3mm.nii.gz"))
    (tmp_path / "abdomen_labels.nii.gz").symlink_to(data_file("abdomen_3mm_ctorg.nii.gz"))  # its output: quiet
    (tmp_path / "chest_labels.nii.gz").symlink_to(data_file("chest_3mm.nii.gz"))  # a CT with an unlucky name
    with pytest.warns(UserWarning, match=re.escape(f"left out 1 file(s) whose names end in _labels or _pred, as the "
                                                   f"outputs of a cohort run do, though no scan of that name is "
                                                   f"beside them: {tmp_path / 'chest_labels.nii.gz'}. If they are "
                                                   "scans, rename them")):
        scans, _ = find_inputs(tmp_path)
    assert scans == [tmp_path / "abdomen.nii.gz"]
    (tmp_path / "chest_labels.nii.gz").rename(tmp_path / "chest.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scans, _ = find_inputs(tmp_path)
    assert scans == [tmp_path / "abdomen.nii.gz", tmp_path / "chest.nii.gz"]


def test_dicom_objects_refuse_the_not_labelled_value_instead_of_dropping_it(tmp_path, abdomen_dicom,
                                                                           abdomen_dicom_labels):
    """255 marks voxels not labelled yet (partial labels); a SEG or RTSTRUCT would bring them back as background."""
    from napari_ctorgans.io.dicom_seg import write_dicom_seg
    from napari_ctorgans.io.rtstruct import write_rtstruct

    labels = abdomen_dicom_labels.array.copy()
    labels[: labels.shape[0] // 2][labels[: labels.shape[0] // 2] == 0] = 255
    count = int(np.count_nonzero(labels == 255))
    for write, name in ((write_dicom_seg, "organs.seg.dcm"), (write_rtstruct, "organs.rtstruct.dcm")):
        with pytest.raises(ValueError, match=re.escape(f"the label map marks {count} voxels with 255 ('not "
                                                       "labelled', the value of partial labels)")) as err:
            write(tmp_path / name, labels, like=abdomen_dicom)
        assert "Save partial labels as NIfTI (--format nifti)" in str(err.value)
    assert list(tmp_path.iterdir()) == []
    ct.write_labels(tmp_path / "partial.nii.gz", labels, like=abdomen_dicom)  # NIfTI keeps them
    assert np.array_equal(ct.read_labels(tmp_path / "partial.nii.gz").array, labels)
