"""``ctorgans evaluate`` on folders: pairing by name, one CSV with a case column and the global Dice per organ."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans._cli.evaluate import pair_files
from napari_ctorgans.cli import main as cli_main


@pytest.fixture(scope="module")
def cases():
    out = {}
    for seed in (0, 1, 2):
        vol, labels = ct.make_phantom(seed=seed, spacing=(8.0, 6.0, 6.0), shape=(24, 30, 32))
        pred = np.roll(labels, seed + 1, axis=2)
        out[f"case{seed}"] = (vol, labels, pred)
    return out


def test_pairing_rule(tmp_path):
    p, r = tmp_path / "p", tmp_path / "r"
    p.mkdir(), r.mkdir()
    for name in ("a.nii.gz", "b_labels.nii.gz", "c.nrrd", "lonely.nii.gz", "notes.txt", "d.nii.gz", "d_labels.nii"):
        (p / name).touch()
    for name in ("a.nii.gz", "b.nii.gz", "c_labels.nii.gz", "other.mha", "d_labels.nii.gz"):
        (r / name).touch()
    pairs, lone_p, lone_r = pair_files(p, r)
    assert [(c, x.name, y.name) for c, x, y in pairs] == [
        ("a", "a.nii.gz", "a.nii.gz"),  # same file name
        ("b", "b_labels.nii.gz", "b.nii.gz"),  # '<stem>_labels' against '<stem>'
        ("c", "c.nrrd", "c_labels.nii.gz"),  # either side may carry the suffix; extensions may differ
    ]
    # 'd.nii.gz' and 'd_labels.nii' share the key 'd': ambiguous, nothing pairs on it
    assert not any(c == "d" for c, _, _ in pairs)
    assert {x.name for x in lone_p} == {"lonely.nii.gz", "d.nii.gz", "d_labels.nii"}
    assert {y.name for y in lone_r} == {"other.mha", "d_labels.nii.gz"}


def test_folders_to_one_csv(cases, tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir(), ref_dir.mkdir()
    names = {"case0": ("case0.nii.gz", "case0.nii.gz"), "case1": ("case1_labels.nii.gz", "case1.nii.gz"),
             "case2": ("case2.nii.gz", "case2_labels.nii.gz")}
    for case, (vol, labels, pred) in cases.items():
        pname, rname = names[case]
        ct.write_labels(pred_dir / pname, pred, like=vol)
        ct.write_labels(ref_dir / rname, labels, like=vol)
    ct.write_labels(pred_dir / "extra.nii.gz", cases["case0"][2], like=cases["case0"][0])
    out = tmp_path / "all.csv"
    assert cli_main(["evaluate", str(pred_dir), str(ref_dir), "--csv", str(out), "--tolerance", "3"]) == 0
    captured = capsys.readouterr()
    assert "unpaired prediction" in captured.err and "extra.nii.gz" in captured.err
    assert "evaluate" in captured.err  # the tqdm progress bar
    rows = list(csv.DictReader(out.open()))
    per_case = [r for r in rows if r["case"] != "global"]
    assert sorted({r["case"] for r in per_case}) == ["case0", "case1", "case2"]
    for case, (vol, labels, pred) in cases.items():
        expected = ct.metrics.evaluate(pred, labels, spacing=vol.spacing, tolerance_mm=3.0)
        got = [r for r in per_case if r["case"] == case]
        assert [r["organ"] for r in got] == [e.organ for e in expected]
        for r, e in zip(got, expected):
            assert float(r["dice"]) == pytest.approx(e.dice, rel=1e-5)
            assert float(r["assd"]) == pytest.approx(e.assd, rel=1e-5)
    glob = {int(r["label"]): float(r["dice"]) for r in rows if r["case"] == "global"}
    preds = [c[2] for c in cases.values()]
    refs = [c[1] for c in cases.values()]
    assert sorted(glob) == sorted({int(r["label"]) for r in per_case})
    for label, value in glob.items():
        assert value == pytest.approx(ct.metrics.global_dice(preds, refs, label=label), rel=1e-5)
        assert value < 1.0  # the shifted predictions are imperfect
    assert "global dice" in captured.out


def test_folder_errors(cases, tmp_path, capsys):
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir(), ref_dir.mkdir()
    vol, labels, pred = cases["case0"]
    ct.write_labels(ref_dir / "a.nii.gz", labels, like=vol)
    ct.write_labels(pred_dir / "b.nii.gz", pred, like=vol)
    assert cli_main(["evaluate", str(pred_dir), str(ref_dir)]) == 1
    assert "no pairs of label files" in capsys.readouterr().err
    # a file against a folder
    assert cli_main(["evaluate", str(pred_dir / "b.nii.gz"), str(ref_dir)]) == 1
    assert "both be files or both be folders" in capsys.readouterr().err
    # a pair on different grids is skipped with a message; the exit code says something failed
    small = ct.Volume(np.zeros((6, 6, 6), np.uint8), spacing=(8.0, 6.0, 6.0))
    ct.write_labels(pred_dir / "a.nii.gz", small.array, like=small)
    ct.write_labels(pred_dir / "c.nii.gz", pred, like=vol)
    ct.write_labels(ref_dir / "c.nii.gz", labels, like=vol)
    assert cli_main(["evaluate", str(pred_dir), str(ref_dir), "--csv", str(tmp_path / "x.csv")]) == 1
    err = capsys.readouterr().err
    assert "case a: skipped" in err and "same grid" in err
    rows = list(csv.DictReader((tmp_path / "x.csv").open()))
    assert {r["case"] for r in rows} == {"c", "global"}
