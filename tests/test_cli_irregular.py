"""The CLI reads an unevenly spaced DICOM series only when asked, and says how to ask."""

from __future__ import annotations

import shutil

import pydicom
import pytest

import napari_ctorgans as ct
from napari_ctorgans.cli import main
from conftest import data_file


@pytest.fixture
def uneven_series(tmp_path):
    src = data_file("abdomen_dicom")
    folder = tmp_path / "uneven"
    shutil.copytree(src, folder)
    files = sorted(folder.iterdir(), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                          .ImagePositionPatient[2]))
    for f in files[10:]:  # one 4 mm step between slice 9 and 10, 2 mm elsewhere
        ds = pydicom.dcmread(f)
        pos = list(ds.ImagePositionPatient)
        pos[2] = float(pos[2]) + 2.0
        ds.ImagePositionPatient = pos
        ds.save_as(f)
    return folder


def test_uneven_series_is_refused_with_the_cli_flag_then_read_with_it(uneven_series, tmp_path, capsys):
    out = tmp_path / "labels.nii.gz"
    assert main(["info", str(uneven_series)]) == 1
    err = capsys.readouterr().err
    assert "uneven slice spacing" in err and "--resample-irregular" in err
    assert main(["info", str(uneven_series), "--resample-irregular"]) == 0
    vol = ct.read_volume(uneven_series, resample_irregular=True)
    assert vol.shape[0] == 21 and vol.spacing[0] == pytest.approx(2.0, abs=1e-3)
    assert main(["label", str(uneven_series), str(data_file("abdomen_3mm.nii.gz")), "-o", str(tmp_path / "a"),
                 "--resample-irregular"]) == 1  # a cohort: refused, nothing written
    assert "reads one scan at a time" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
    assert main(["label", str(uneven_series), "-o", str(out), "--resample-irregular", "--no-progress"]) == 0
    assert ct.read_labels(out).shape == vol.shape
