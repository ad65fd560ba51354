"""Lungs and bone from the automatic labellers in the starter model's prediction (``ct.predict(labelers=...)``)."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.cli import main
from napari_ctorgans.infer.hybrid import resolve_labelers, starter_lineage
from napari_ctorgans.models import starter_path


def test_which_organs_come_from_the_labellers():
    starter = starter_path()
    assert resolve_labelers("auto", starter) == ("lungs", "bone")
    assert resolve_labelers("auto", "runs/demo/best.pt") == ()  # a user's own model predicts every organ
    assert resolve_labelers("auto", None) == ()
    for off in (None, False, "none", "None"):
        assert resolve_labelers(off, starter) == ()
    assert resolve_labelers(True, None) == ("lungs", "bone")
    assert resolve_labelers("bone, lungs", None) == ("lungs", "bone")
    assert resolve_labelers(["bone"], None) == ("bone",)
    for bad in ("liver", "lungs,kidneys", [], ""):
        with pytest.raises(ValueError, match="labelers.*lungs.*bone"):
            resolve_labelers(bad, None)


def test_starter_takes_lungs_and_bone_from_the_labellers(abdomen_3mm):
    """On the real abdomen (3 mm, the working grid itself): the lungs and bone are exactly the labellers', every
    other organ is the network's wherever the labellers claim nothing."""
    both = ct.predict(abdomen_3mm)
    network = ct.predict(abdomen_3mm, labelers=None)
    auto = ct.auto_label(abdomen_3mm)
    for value in (3, 5):
        assert (auto == value).sum() > 1000
        np.testing.assert_array_equal(both == value, auto == value)
    free = auto == 0
    kept = free & ~np.isin(network, (3, 5))
    np.testing.assert_array_equal(both[kept], network[kept])
    assert not np.isin(both[free & np.isin(network, (3, 5))], (3, 5)).any()  # the network's lungs and bone dropped
    assert np.array_equal(ct.predict(abdomen_3mm, labelers="none"), network)


def test_a_checkpoint_keeps_its_own_lungs_and_bone(tmp_path, phantom):
    vol, labels = phantom
    cfg = ct.TrainConfig.preset("cpu-quick", iterations=2, checkpoint_every=2, validate_every=100,
                                output_dir=str(tmp_path / "run"))
    for _ in ct.train(cfg, [(vol, labels)]):
        pass
    ckpt = tmp_path / "run" / "last.pt"
    own = ct.predict(vol, ckpt)
    assert np.array_equal(own, ct.predict(vol, ckpt, labelers=None))
    with_labellers = ct.predict(vol, ckpt, labelers="lungs,bone")
    np.testing.assert_array_equal(with_labellers == 5, ct.auto_label(vol, organs=["bone"]) == 5)


def test_models_fine_tuned_from_the_starter_keep_the_labellers(tmp_path, phantom):
    """``"auto"`` follows ``init_checkpoint`` back: a fine-tune of the starter, and a fine-tune of that, take lungs
    and bone from the labellers; once the chain is broken (a parent deleted), the model predicts them itself."""
    vol, labels = phantom
    paths = []
    for run, init in (("ft1", "starter"), ("ft2", None)):
        cfg = ct.TrainConfig.preset("starter", iterations=1, checkpoint_every=1, bn_recalibration=0,
                                    output_dir=str(tmp_path / run), init_checkpoint=init or str(paths[-1]))
        for _ in ct.train(cfg, [(vol, labels)]):
            pass
        paths.append(tmp_path / run / "last.pt")
    assert starter_lineage(paths[0]) and starter_lineage(paths[1])
    assert resolve_labelers("auto", ct.Predictor.from_checkpoint(paths[1]).info) == ("lungs", "bone")
    assert np.array_equal(ct.predict(vol, paths[1]) == 5, ct.auto_label(vol, organs=["bone"]) == 5)
    paths[0].unlink()
    assert not starter_lineage(paths[1]) and resolve_labelers("auto", paths[1]) == ()
    assert not starter_lineage(tmp_path / "nothing.pt") and not starter_lineage(None)


def test_cli_refuses_an_unknown_labeller_before_reading(tmp_path, capsys):
    out = tmp_path / "out.nii.gz"
    assert main(["predict", str(tmp_path / "missing.nii.gz"), "-o", str(out), "--labelers", "liver"]) != 0
    err = capsys.readouterr().err
    assert "labelers" in err and "'liver'" in err and "lungs" in err
    assert not out.exists()
