"""Each corrected scan held out in turn: fine-tune on the others, compare on it (real CT, a two-step fine-tune)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.train import TrainConfig
from napari_ctorgans.train.holdout import holdout_check

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_each_scan_is_held_out_once_and_a_bad_fine_tune_is_reported(abdomen_3mm, abdomen_3mm_labels, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the fine-tuned models go to a temporary folder, then away
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    ref = np.asarray(abdomen_3mm_labels.array)

    def crop(z: slice):
        box = (z, slice(20, 84), slice(20, 100))
        return ct.Volume(np.ascontiguousarray(abdomen_3mm.array[box]), spacing=abdomen_3mm.spacing), ref[box].copy()

    a, b = crop(slice(86, 102)), crop(slice(70, 86))
    # two steps on 16^3 crops with no batch-norm recalibration: a fine-tune that cannot be good
    cfg = TrainConfig(iterations=2, crop_size=(16, 16, 16), batch_size=1, augment_at=-1, checkpoint_every=2,
                      bn_recalibration=0, validate_every=1000)
    seen = []
    result = holdout_check(None, [(*a, ["kidneys"]), b], cfg, labelers=None, progress=lambda i, n: seen.append(i))
    assert seen == [1, 2]
    organs = {s: {r["organ"] for r in result.rows if r["scan"] == s} for s in ("scan A", "scan B")}
    for scan, (_, labels) in zip(("scan A", "scan B"), (a, b)):
        assert organs[scan] == {ct.ORGANS[int(v)].name for v in np.unique(labels) if v}
    liver_a = next(r for r in result.rows if r["scan"] == "scan A" and r["organ"] == "liver")
    assert not liver_a["corrected"]  # only the kidneys were corrected on scan A
    assert result.safe == (not any(r["delta"] <= -0.05 for r in result.rows))
    assert not result.safe and "got worse on scan" in result.summary
    assert not list(tmp_path.glob("ctorgans-holdout-*"))  # the fine-tuned models are gone
    with pytest.raises(ValueError, match="at least 2 corrected scans"):
        holdout_check(None, [a])
