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
    assert "(20, 512, 512)" in out and "min -1024" in out
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

    shot = iio.imread(tmp_path / "demo_screenshot.png")
    assert shot[..., :3].std() > 10  # a rendered image, not a blank canvas
