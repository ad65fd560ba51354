"""The command line asks instead of guessing, and DICOM objects say what their frames and series are.

Built on the real files: the abdomen CT and its label map, and pydicom-edited copies of the real 20-slice DICOM
series (2 mm between slices): a wrong Spacing Between Slices tag, an empty Specific Character Set, new Series and
Frame of Reference UIDs on the same grid, and a folder holding two series.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

import napari_ctorgans as ct
from conftest import data_file
from napari_ctorgans.cli import main


def _copy_series(target: Path, **tags) -> Path:
    """A copy of the real series with ``tags`` set on every slice (and the file meta kept consistent)."""
    shutil.copytree(data_file("abdomen_dicom"), target)
    if tags:
        for f in sorted(target.iterdir()):
            ds = pydicom.dcmread(f)
            for key, value in tags.items():
                setattr(ds, key, value)
            ds.save_as(f)
    return target


def _new_instances(folder: Path) -> None:
    """New SOP Instance UIDs (another acquisition of the same grid)."""
    for f in sorted(folder.iterdir()):
        ds = pydicom.dcmread(f)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(f)


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(f.read_bytes() for f in sorted(folder.iterdir()))).hexdigest()


def _dciodvfy_errors(path: Path) -> list[str]:
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed (scripts/setup.sh installs it with the dicom3tools package)")
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def dicom_labels():
    return ct.read_labels(data_file("abdomen_dicom_ctorg.nii.gz")).array


# ------------------------------------------------------------------------------------------- 6. the command line
@pytest.mark.parametrize("command", ["label", "predict"])
def test_a_list_file_with_a_file_output_is_refused_and_nothing_written(tmp_path, capsys, command):
    listing = tmp_path / "scans.txt"
    listing.write_text(f"{data_file('abdomen_3mm.nii.gz')}\n")
    out = tmp_path / "o2.nii.gz"
    assert main([command, str(listing), "-o", str(out), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"-o {out} names a file" in err and "scans.txt is read as a list of scans" in err
    assert "Nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans.txt"]  # no folder, no summary CSV


@pytest.mark.parametrize("argv", [["label", "{labels}", "-o", "{out}"], ["predict", "{labels}", "-o", "{out}"],
                                  ["stats", "{labels}", "--ct", "{labels}", "-o", "{csv}"]])
def test_a_label_map_given_as_the_ct_is_refused(tmp_path, capsys, argv):
    labels = data_file("abdomen_3mm_ctorg.nii.gz")
    out, table = tmp_path / "out.nii.gz", tmp_path / "report.csv"
    argv = [a.format(labels=labels, out=out, csv=table) for a in argv]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Python warnings on the way to the refusal
        assert main(argv) == 1
    err = capsys.readouterr().err
    option = "--ct" if argv[0] == "stats" else "INPUT"
    assert f"{option} {labels} is a label map, not a CT" in err and "no air" in err
    assert not out.exists() and not table.exists()


def test_evaluate_names_an_organ_on_one_side_as_the_panel_does(tmp_path, capsys):
    from napari_ctorgans._napari.evaluate_widget import metric_cells
    from napari_ctorgans.metrics import NOT_IN_REFERENCE, NOT_PREDICTED

    full = ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz"))
    crop = full.array[30:70, 20:80, 20:100].copy()
    ref = ct.Volume(crop, full.spacing)
    pred = crop.copy()
    pred[pred == 4] = 0  # the kidneys are missed
    ref_arr = crop.copy()
    ref_arr[ref_arr == 1] = 0  # the liver is only in the prediction
    ct.write_labels(tmp_path / "pred.nii.gz", pred, like=ref)
    ct.write_labels(tmp_path / "ref.nii.gz", ref_arr, like=ref)
    assert main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "ref.nii.gz"),
                 "--csv", str(tmp_path / "e.csv")]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "not predicted" in lines["kidneys"] and "inf" not in lines["kidneys"].split("(")[0]
    assert "not in reference" in lines["liver"]
    rows = {r["organ"]: r for r in csv.DictReader((tmp_path / "e.csv").open())}
    assert rows["kidneys"]["status"] == NOT_PREDICTED and float(rows["kidneys"]["dice"]) == 0.0
    assert rows["liver"]["status"] == NOT_IN_REFERENCE and rows["bone"]["status"] == ""
    for side in ("p", "r"):  # folders: the count of cases on one side only, per organ
        (tmp_path / side).mkdir()
        shutil.copy(tmp_path / ("pred.nii.gz" if side == "p" else "ref.nii.gz"), tmp_path / side / "case1.nii.gz")
    assert main(["evaluate", str(tmp_path / "p"), str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    table = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert "not predicted  not in reference" in out
    assert table["kidneys"][-2:] == ["1", "0"] and table["liver"][-2:] == ["0", "1"]
    assert table["bone"][-2:] == ["0", "0"]
    api = {r.organ: r for r in ct.metrics.evaluate(pred, ref_arr, spacing=full.spacing)}
    assert api["kidneys"].status == NOT_PREDICTED and metric_cells(api["kidneys"])[1] == NOT_PREDICTED
    assert metric_cells(api["liver"])[1] == NOT_IN_REFERENCE and metric_cells(api["bone"])[1] != NOT_PREDICTED


# --------------------------------------------------------------------------------------------- 7. slice spacing
def test_seg_spacing_between_slices_is_measured_not_copied(tmp_path, dicom_labels):
    import highdicom as hd

    series = _copy_series(tmp_path / "series", SpacingBetweenSlices=6.5)  # the slices are 2 mm apart
    vol = ct.read_volume(series)
    seg_path = tmp_path / "a" / "b" / "organs.dcm"  # alone: no CT series beside it or its folder
    seg_path.parent.mkdir(parents=True)
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        ct.write_dicom_seg(seg_path, dicom_labels, like=vol)
    seg = pydicom.dcmread(seg_path)
    measures = seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SpacingBetweenSlices) == pytest.approx(2.0)
    hd_volume = hd.seg.segread(seg_path).get_volume()  # raised "not a regularly-spaced volume" with 6.5
    assert hd_volume.spacing[0] == pytest.approx(2.0)
    alone = ct.read_labels(seg_path)  # on the grid of its own frames
    assert alone.spacing == pytest.approx(vol.spacing)
    np.testing.assert_array_equal(np.bincount(alone.array.ravel(), minlength=6)[1:],
                                  np.bincount(dicom_labels.ravel(), minlength=6)[1:])
    assert _dciodvfy_errors(seg_path) == []
    # a SEG written before, with the contradicting tag: read alone on the spacing its frames have
    measures.SpacingBetweenSlices = 6.5
    seg.save_as(seg_path)
    again = ct.read_labels(seg_path)
    assert again.spacing == pytest.approx(vol.spacing) and np.array_equal(again.array, alone.array)
    # one frame moved 0.7 mm off its slice: no regular grid holds the frames, and the message says so
    frame = seg.PerFrameFunctionalGroupsSequence[3].PlanePositionSequence[0]
    frame.ImagePositionPatient = [*frame.ImagePositionPatient[:2], float(frame.ImagePositionPatient[2]) + 0.7]
    seg.save_as(seg_path)
    with pytest.raises(ValueError, match="frames that do not lie on one regular grid of slices") as info:
        ct.read_labels(seg_path)
    assert "None" not in str(info.value) and "like=<series folder>" in str(info.value)


# ------------------------------------------------------------------------------------ 8. empty character set
def test_empty_specific_character_set_is_the_default_repertoire(tmp_path, dicom_labels):
    series = _copy_series(tmp_path / "series", SpecificCharacterSet="")
    before = _digest(series)
    vol = ct.read_volume(series)
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        seg_path = ct.write_dicom_seg(tmp_path / "organs.dcm", dicom_labels, like=vol)
    assert "SpecificCharacterSet" not in pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert _dciodvfy_errors(seg_path) == []
    back = ct.read_labels(seg_path, like=vol)
    np.testing.assert_array_equal(back.array, dicom_labels)
    assert _digest(series) == before  # the user's series is read, never changed


# ----------------------------------------------------------------------------- 9. referenced UIDs, same grid
@pytest.fixture(scope="module")
def objects_of_the_real_series(tmp_path_factory, abdomen_dicom, dicom_labels) -> dict[str, Path]:
    """A DICOM-SEG and an RTSTRUCT written once from the real series (read, never changed)."""
    folder = tmp_path_factory.mktemp("objects")
    with pytest.warns(UserWarning, match="empty StudyInstanceUID"):
        return {"DICOM-SEG": ct.write_dicom_seg(folder / "organs.dcm", dicom_labels, like=abdomen_dicom),
                "RTSTRUCT": ct.write_rtstruct(folder / "organs.rtstruct.dcm", dicom_labels, like=abdomen_dicom)}


def _referenced(written, kind: str, name: str) -> str:
    if kind == "DICOM-SEG":
        return str(written.ReferencedSeriesSequence[0].SeriesInstanceUID if name == "Series"
                   else written.FrameOfReferenceUID)
    frame = written.ReferencedFrameOfReferenceSequence[0]
    return str(frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID if name == "Series"
               else frame.FrameOfReferenceUID)


@pytest.mark.parametrize("tag", ["SeriesInstanceUID", "FrameOfReferenceUID"])
def test_seg_and_rtstruct_of_another_series_on_the_same_grid_are_refused(tmp_path, abdomen_dicom, dicom_labels,
                                                                         objects_of_the_real_series, tag):
    other = _copy_series(tmp_path / "other", **{tag: generate_uid()})
    _new_instances(other)
    other_vol = ct.read_volume(other)
    assert other_vol.same_grid(abdomen_dicom)
    name = {"SeriesInstanceUID": "Series", "FrameOfReferenceUID": "Frame of Reference"}[tag]
    theirs = pydicom.dcmread(sorted(other.iterdir())[0], stop_before_pixels=True)
    for kind, path in objects_of_the_real_series.items():
        with pytest.raises(ValueError, match=f"the {kind} .* was made on another series") as info:
            ct.read_labels(path, like=other_vol)
        text = str(info.value)
        assert f"the {name} UID" in text and str(getattr(theirs, tag)) in text
        assert _referenced(pydicom.dcmread(path, stop_before_pixels=True), kind, name) in text  # both UIDs named
        if tag == "SeriesInstanceUID":  # the series it was made on still reads it
            np.testing.assert_array_equal(ct.read_labels(path, like=abdomen_dicom).array, dicom_labels)


# ----------------------------------------------------------------------- 10. --series, and the wording fixes
@pytest.fixture
def two_series(tmp_path) -> tuple[Path, str, str]:
    """One folder with the real series and a copy of it under another SeriesInstanceUID (and instances)."""
    first, second = generate_uid(), generate_uid()
    folder = _copy_series(tmp_path / "two", SeriesInstanceUID=first)
    copy = _copy_series(tmp_path / "copy", SeriesInstanceUID=second)
    _new_instances(copy)
    for f in sorted(copy.iterdir()):
        shutil.move(str(f), folder / f"second_{f.name}")
    return folder, first, second


def test_series_option_picks_one_series_of_a_folder(two_series, tmp_path, capsys):
    folder, first, second = two_series
    out = tmp_path / "lungs.nii.gz"
    assert main(["label", str(folder), "-o", str(out), "--organs", "lungs", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "holds 2 DICOM series" in err and "--series <uid>" in err and first in err and second in err
    assert not out.exists()
    assert main(["label", str(folder), "--series", second, "-o", str(out), "--organs", "lungs",
                 "--no-progress"]) == 0
    labels = ct.read_labels(out)
    assert labels.shape == (20, 512, 512) and set(np.unique(labels.array)) <= {0, 3}
    assert main(["stats", str(data_file("abdomen_dicom_ctorg.nii.gz")), "--ct", str(folder), "--series", first,
                 "-o", str(tmp_path / "report.csv")]) == 0
    assert "liver" in capsys.readouterr().out
    for command in (["predict", str(folder), "-o", str(tmp_path / "p.nii.gz")],
                    ["augment", str(folder), "-o", str(tmp_path / "aug"), "--n", "1"],
                    ["info", str(folder)]):
        assert main([*command, "--series", "1.2.3.4"]) == 1  # the option reaches the reader, which names the choice
        assert "DICOM series '1.2.3.4' is not in" in capsys.readouterr().err
    listing = tmp_path / "scans.txt"
    listing.write_text(f"{folder}\n")
    assert main(["label", str(listing), "--series", first, "--no-progress"]) == 1
    assert "run the command on that folder alone" in capsys.readouterr().err  # a cohort refuses --series


def test_slices_without_a_majority_are_listed_by_value(tmp_path):
    series = _copy_series(tmp_path / "series")
    for f in sorted(series.iterdir())[::2]:
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = [0.8, 0.8]
        ds.save_as(f)
    with pytest.raises(ValueError) as info:
        ct.read_volume(series)
    text = str(info.value)
    assert "the slices disagree on PixelSpacing, with no majority" in text and "other 0 slices" not in text
    assert "(0.8, 0.8)" in text and "(0.976562, 0.976562)" in text


def test_a_ct_made_in_memory_is_named_as_such(tmp_path, dicom_labels):
    in_memory = ct.Volume(np.zeros((4, 8, 8), np.int16), (2.0, 1.0, 1.0))
    with pytest.raises(ValueError) as info:
        ct.write_dicom_seg(tmp_path / "x.dcm", dicom_labels, like=in_memory)
    assert "(made in memory)" in str(info.value) and "None" not in str(info.value)
    assert not (tmp_path / "x.dcm").exists()
