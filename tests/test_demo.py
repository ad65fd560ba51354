"""The first command: ``ctorgans demo`` on the shipped real CT, the sample itself, and the demo's picture."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import data_file
from napari_ctorgans.cli import main


def test_shipped_sample_is_the_test_abdomen_voxel_for_voxel():
    vol, reference = ct.load_sample()
    assert vol.array.dtype == np.int16 and reference.dtype == np.uint8
    source = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    assert vol.same_grid(source)
    np.testing.assert_array_equal(vol.array, source.array)
    labels = ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz"), like=source)
    np.testing.assert_array_equal(reference, labels.array)


def test_unknown_sample_names_the_shipped_ones():
    with pytest.raises(ValueError, match="no sample named 'chest'; the package ships 'abdomen'"):
        ct.load_sample("chest")


def test_cover_slices_cut_every_organ():
    from napari_ctorgans._demo.views import cover_slices

    labels = np.zeros((6, 8, 6), dtype=np.uint8)
    labels[1, 1, 1] = 3  # lungs alone in coronal slice 1
    labels[2, 4, 2], labels[3, 4, 3] = 1, 2  # liver and bladder in slice 4
    labels[1:5, 6, 1:5] = 5  # a lot of bone in slice 6, which holds nothing else
    assert cover_slices(labels) == [1, 4, 6]
    _, reference = ct.load_sample()
    ys = cover_slices(reference)
    shown = set().union(*(np.unique(reference[:, y, :]) for y in ys))
    assert shown >= {1, 2, 3, 4, 5}


def test_ct_written_as_dicom_reads_back_on_its_grid(tmp_path):
    from napari_ctorgans._demo.dicom_ct import write_ct_series

    vol, _ = ct.load_sample()
    write_ct_series(tmp_path / "series", vol)
    back = ct.read_volume(tmp_path / "series")
    assert back.same_grid(vol)
    np.testing.assert_array_equal(back.array, vol.array)
    with pytest.raises(FileExistsError, match="is not empty; give a new folder"):
        write_ct_series(tmp_path / "series", vol)


def test_demo_on_the_sample_writes_the_dice_table_and_every_output(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)  # the path without a display: a matplotlib montage
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "organ   Dice" in out and "demo took" in out
    with open(tmp_path / "dice.csv") as fh:
        dice = {row["organ"]: float(row["dice"]) for row in csv.DictReader(fh)}
    assert set(dice) == {"liver", "bladder", "lungs", "kidneys", "bone"}
    assert dice["lungs"] > 0.85 and dice["bone"] > 0.85 and dice["liver"] > 0.75  # the starter's measured draft
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {row["organ"]: row["dice"] for row in summary["dice"]} == pytest.approx(dice)
    vol, _ = ct.load_sample()
    pred = ct.read_labels(tmp_path / "predicted_labels.nii.gz", like=vol)
    seg = ct.read_labels(tmp_path / "predicted_labels_seg.dcm", like=ct.read_volume(tmp_path / "ct_dicom"))
    np.testing.assert_array_equal(seg.array, pred.array)  # the DICOM-SEG holds the prediction
    with open(tmp_path / "statistics.csv") as fh:
        assert {row["name"] for row in csv.DictReader(fh)} == set(dice)
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "report.png")[..., :3].std() > 10
    assert iio.imread(tmp_path / "demo_montage.png")[..., :3].std() > 10
    assert not (tmp_path / "demo_screenshot.png").exists()
    assert not list(tmp_path.rglob("*.lock"))
