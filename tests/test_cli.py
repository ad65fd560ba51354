"""The command line: help for every sub-command, info, and the demo on the built-in phantom."""

from __future__ import annotations

import json

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import data_file
from napari_ctorgans.cli import COMMANDS, main


def test_every_command_has_help(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0
        assert "usage: ctorgans" in capsys.readouterr().out


def test_info_describes_a_dicom_series(capsys):
    assert main(["info", str(data_file("abdomen_dicom"))]) == 0
    out = capsys.readouterr().out
    assert "(z, y, x): (20, 512, 512)" in out and "min -1024" in out
    assert main(["info"]) == 0
    assert "CPU" in capsys.readouterr().out


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.nii.gz")]) == 1
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.gui
def test_demo_without_training_writes_outputs_and_screenshot(tmp_path):
    assert main(["demo", "--out", str(tmp_path), "--iterations", "0"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    dice = {row["organ"]: row["dice"] for row in summary["auto_label"]}
    assert dice["lungs"] > 0.9 and dice["bone"] > 0.85
    vol = ct.read_volume(tmp_path / "phantom_ct.nii.gz")
    auto = ct.read_labels(tmp_path / "auto_labels.nii.gz")
    assert auto.same_grid(vol) and set(np.unique(auto.array)) <= {0, 3, 5}
    import imageio.v3 as iio

    # a napari screenshot under a display (as in CI, under xvfb-run), else a montage that is not called one
    pictures = [p for p in (tmp_path / "demo_screenshot.png", tmp_path / "demo_montage.png") if p.exists()]
    assert len(pictures) == 1, pictures
    shot = iio.imread(pictures[0])
    assert shot[..., :3].std() > 10  # a rendered image, not a blank canvas


def _counts_line(labels_path) -> str:
    """The organ summary the CLI should print for a written label file: names, voxels and mL from the file."""
    lab = ct.read_labels(labels_path)
    counts = np.bincount(lab.array.ravel())
    parts = [f"{ct.ORGANS[v].name} {n} voxels, {n * lab.voxel_volume_ml:.1f} mL" for v, n in enumerate(counts)
             if v and n]
    return ", ".join(parts) or "no organ found"


def test_label_checks_its_output_before_labelling(tmp_path, capsys):
    ct_path = data_file("abdomen_3mm.nii.gz")
    existing = tmp_path / "labels.nii.gz"
    existing.write_bytes(b"the user's earlier labels")
    assert main(["label", str(ct_path), "-o", str(existing)]) == 1
    err = capsys.readouterr().err
    assert f"{existing} already exists; pass --overwrite to replace it, or choose another -o" in err
    assert "label:" not in err.replace("ctorgans label:", "")  # no progress bar: the labelling never started
    assert existing.read_bytes() == b"the user's earlier labels"
    assert main(["label", str(ct_path), "-o", str(tmp_path / "labels.txt")]) == 1
    err = capsys.readouterr().err
    assert "cannot tell the format of" in err and "labels.txt" in err and "label:" not in err.replace(
        "ctorgans label:", "")
    assert not (tmp_path / "labels.txt").exists()
    # one scan needs -o, and the usage says so
    assert main(["label", str(ct_path)]) == 1
    assert "-o/--output is required for a single scan" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["label", "--help"])
    usage = capsys.readouterr().out
    assert usage.startswith("usage: ctorgans label INPUT -o OUTPUT [options]\n")


def test_label_organs_hint_names_cli_ways(tmp_path, capsys):
    assert main(["label", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "l.nii.gz"), "--organs", "liver"]) == 1
    err = capsys.readouterr().err
    assert "labels only lungs and bone automatically, not liver" in err
    assert "Grow organ" in err and "ctorgans predict INPUT -o OUTPUT (the built-in starter model" in err
    assert "--checkpoint best.pt" in err
    assert "grow_region" not in err
    assert main(["label", str(tmp_path / "ct.nii.gz"), "-o", str(tmp_path / "l.nii.gz"), "--organs", "lung"]) == 1
    assert "unknown organ(s) lung; ctorgans label labels lungs and bone" in capsys.readouterr().err


def test_label_one_scan_prints_organ_names_without_progress(tmp_path, capsys):
    out = tmp_path / "auto.nii.gz"
    assert main(["label", str(data_file("abdomen_3mm.nii.gz")), "-o", str(out), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --no-progress: no bar for one scan either
    assert captured.out == f"wrote {out} ({_counts_line(out)})\n"
    assert captured.out.startswith(f"wrote {out} (lungs ") and ", bone " in captured.out


@pytest.mark.usefixtures("one_torch_thread")
def test_predict_prints_organ_names_and_volumes(tmp_path, capsys):
    from napari_ctorgans.train import TrainConfig, train

    cfg = TrainConfig(iterations=1, crop_size=(16, 16, 16), spacing=8.0, batch_size=1, augment_at=-1,
                      bn_recalibration=0, output_dir=str(tmp_path / "run"))
    vol, _ = ct.make_phantom(seed=0, spacing=8.0, shape=(24, 24, 24))
    list(train(cfg, [ct.make_phantom(seed=0, spacing=8.0, shape=(24, 24, 24))]))
    ct.write_volume(tmp_path / "scan.nii.gz", vol)
    out = tmp_path / "pred.nii.gz"
    assert main(["predict", str(tmp_path / "scan.nii.gz"), "-c", str(tmp_path / "run" / "last.pt"), "-o", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith(f"wrote {out} ({_counts_line(out)})\n")
    assert all(line.startswith("  ") for line in captured.out.splitlines()[1:])  # confidence, removals


def test_info_shows_xyz_origin_organs_and_the_series_uid(tmp_path, capsys):
    import shutil

    import pydicom

    series = data_file("abdomen_dicom")
    assert main(["info", str(series)]) == 0
    out = capsys.readouterr().out
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(series.iterdir())]
    lowest = min((tuple(float(v) for v in h.ImagePositionPatient) for h in heads), key=lambda p: p[2])
    assert f"origin (x, y, z):  ({lowest[0]:.2f}, {lowest[1]:.2f}, {lowest[2]:.2f}) mm (LPS" in out
    assert "size (x, y, z):    512 x 512 x 20 voxels" in out and "spacing (x, y, z): (0.9766, 0.9766, 2.0000)" in out
    assert "DICOM series:      20 files, their SeriesInstanceUID tag is empty" in out  # the files' tag is empty
    # a copy of the series with a SeriesInstanceUID: shown
    copy = tmp_path / "series"
    copy.mkdir()
    for f in sorted(series.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.12345"
        ds.save_as(copy / f.name)
    assert main(["info", str(copy)]) == 0
    assert "DICOM series:      20 files, SeriesInstanceUID 1.2.826.0.1.3680043.8.498.12345" in capsys.readouterr().out
    shutil.rmtree(copy)
    # a label map: its organs with voxels and mL, not min/max/mean
    labels = data_file("abdomen_3mm_ctorg.nii.gz")
    assert main(["info", str(labels)]) == 0
    out = capsys.readouterr().out
    lab = ct.read_labels(labels)
    counts = np.bincount(lab.array.ravel())
    assert "values:" not in out and "label map:         5 organ(s)" in out
    for v in range(1, 6):
        line = f"    {v:>3} {ct.ORGANS[v].name:<12} {counts[v]:>10} voxels {counts[v] * lab.voxel_volume_ml:>10.1f} mL"
        assert line in out.splitlines()
