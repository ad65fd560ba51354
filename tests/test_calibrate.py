"""Per-class output offsets fitted on unseen phantoms and folded into a checkpoint's output bias."""

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from napari_ctorgans.models import starter_path
from napari_ctorgans.synth import make_random_phantom
from napari_ctorgans.train import read_checkpoint
from napari_ctorgans.train.calibrate import calibrate_checkpoint, class_log_probs, fit_class_offsets


def _scores():
    """Log-probabilities of a 'network' that draws organ 1 two voxels too large and organ 2 exactly."""
    ref = np.zeros((24, 24, 24), np.uint8)
    ref[8:16, 8:16, 8:16] = 1
    ref[2:6, 2:6, 18:22] = 2
    logits = np.zeros((3, *ref.shape), np.float32)
    logits[1] = -5.0
    logits[1, 6:18, 6:18, 6:18] = 1.0  # the shell: more likely organ than background
    logits[1][ref == 1] = 2.0
    logits[2] = -5.0
    logits[2][ref == 2] = 3.0
    logp = torch.log_softmax(torch.from_numpy(logits), 0).numpy()
    return [(logp, ref)]


def test_fitted_offsets_shrink_an_organ_drawn_too_large_and_leave_a_right_one():
    offsets, before, after = fit_class_offsets(_scores(), (1, 2))
    assert before[1] < 0.5 and before[2] == 1.0
    assert after == {1: 1.0, 2: 1.0}
    assert offsets[0] == 0 and offsets[2] == 0 and -2.0 < offsets[1] < -1.0
    with pytest.raises(ValueError, match="organs must be classes 1..2"):
        fit_class_offsets(_scores(), (1, 3))
    with pytest.raises(ValueError, match="no cases to fit"):
        fit_class_offsets([], (1,))


@pytest.mark.slow
def test_calibrating_a_checkpoint_adds_the_offsets_to_its_output_bias_and_never_overwrites(tmp_path):
    uncalibrated = starter_path()  # the packaged weights, never calibrated
    before_bytes = uncalibrated.read_bytes()
    out, record = calibrate_checkpoint(uncalibrated, tmp_path / "calibrated.pt", seeds=(70,), anatomy=(3,))
    assert uncalibrated.read_bytes() == before_bytes  # the input is left as it was
    old, new = read_checkpoint(uncalibrated)["weights"], read_checkpoint(out)["weights"]
    shift = (new["head.bias"] - old["head.bias"]).numpy()
    assert np.allclose(shift, record["offsets"]) and shift[0] == 0 and shift[3] == 0 and shift[5] == 0
    assert all(torch.equal(old[k], new[k]) for k in old if k != "head.bias")
    assert np.mean(list(record["dice_after"].values())) >= np.mean(list(record["dice_before"].values()))
    assert read_checkpoint(out)["class_offsets"] == record
    # the calibrated model predicts the post-processed argmax of the shifted scores
    vol, ref = make_random_phantom(seed=70, anatomy=3)
    [(logp, _)] = class_log_probs(uncalibrated, [(vol, ref)])
    from napari_ctorgans.infer.predict import postprocess

    want = postprocess((logp + np.asarray(record["offsets"], np.float32)[:, None, None, None]).argmax(0)
                       .astype(np.uint8))
    got = ct.predict(vol, out, labelers=None)
    assert (got == want).mean() > 0.999
    with pytest.raises(FileExistsError, match="calibrated.pt exists"):
        calibrate_checkpoint(uncalibrated, out, seeds=(70,), anatomy=(3,))
    with pytest.raises(ValueError, match="calibrated already"):
        calibrate_checkpoint(out, tmp_path / "twice.pt", seeds=(70,), anatomy=(3,))
