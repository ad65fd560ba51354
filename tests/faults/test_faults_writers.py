"""The writers beyond label maps under a file-size limit: DICOM-SEG, RTSTRUCT, the report PNG, a cohort sidecar,
the cohort summary and the stats table each fail with a clear error and keep the previous file byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import napari_ctorgans as ct
from conftest import ROOT, data_file

LIMIT = 128  # bytes: below the smallest file written under it (a sidecar of a few hundred bytes)

# A second process: read the real series and its labels, then ignore SIGXFSZ (so that writing past the limit fails
# with EFBIG, as a full disk fails with ENOSPC, instead of killing the process), lower the file-size limit and
# write each file over its previous version.
_CHILD = r"""
import contextlib, io, json, resource, signal, sys, warnings
import matplotlib.font_manager  # its cache is read before the limit
import napari_ctorgans as ct
from napari_ctorgans.cli import main
from napari_ctorgans.cohort import CohortRow, CohortSummary, _write_json, input_record
from napari_ctorgans.io.dicom_seg import write_dicom_seg
from napari_ctorgans.io.rtstruct import write_rtstruct
from napari_ctorgans.report import write_report_png

series, labels_file, limit, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
like = ct.read_volume(series)
labels = ct.read_labels(labels_file, like=like)
stats = ct.organ_statistics(labels, like)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
meta = {"status": "ok", "input": series, "source": input_record(series), "task": "label", "checkpoint": None,
        "shape": list(like.shape), "voxels": {str(s["value"]): s["voxels"] for s in stats}}
rows = [CohortRow(series, folder + "/organs.seg.dcm", "ok", "", 1.5), CohortRow(labels_file, "", "failed", "x", 0.1)]
cases = {
    "organs.seg.dcm": lambda path: write_dicom_seg(path, labels, like=like, overwrite=True),
    "organs.rtstruct.dcm": lambda path: write_rtstruct(path, labels, like=like, overwrite=True),
    "report.png": lambda path: write_report_png(path, labels, like, stats, overwrite=True),
    "organs_labels.nii.gz.json": lambda path: _write_json(path, meta),
    "ctorgans_label_summary.csv": lambda path: CohortSummary(rows).to_csv(path),
}
out = {}
for name, write in cases.items():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the series' emptied Study/Series UIDs
            write(f"{folder}/{name}")
        out[name] = "no error"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {exc}"
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    code = main(["stats", labels_file, "--ct", series, "-o", f"{folder}/stats.csv", "--overwrite"])
out["stats.csv"] = f"exit {code}: {err.getvalue().strip()}"
print(json.dumps(out))
"""


def _previous_files(folder: Path, like, labels) -> dict[str, bytes]:
    """Real earlier versions of every file: written by the same writers without a limit."""
    from napari_ctorgans.cli import main
    from napari_ctorgans.cohort import CohortRow, CohortSummary, _write_json, input_record
    from napari_ctorgans.io.dicom_seg import write_dicom_seg
    from napari_ctorgans.io.rtstruct import write_rtstruct

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the series' emptied Study/Series UIDs
        write_dicom_seg(folder / "organs.seg.dcm", labels, like=like)
        write_rtstruct(folder / "organs.rtstruct.dcm", labels, like=like)
    series, labels_file = data_file("abdomen_dicom"), data_file("abdomen_dicom_ctorg.nii.gz")
    assert main(["stats", str(labels_file), "--ct", str(series), "-o", str(folder / "stats.csv"),
                 "--png", str(folder / "report.png")]) == 0
    _write_json(folder / "organs_labels.nii.gz.json", {"status": "writing", "input": str(series),
                                                        "source": input_record(series)})
    CohortSummary([CohortRow(str(series), str(folder / "organs.seg.dcm"), "ok", "", 2.0)]).to_csv(
        folder / "ctorgans_label_summary.csv")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.slow  # writes every file twice, once in a second process: ~10 s, more on a loaded machine
def test_file_size_limit_keeps_every_previous_file(tmp_path, abdomen_dicom, abdomen_dicom_labels, capsys):
    before = _previous_files(tmp_path, abdomen_dicom, abdomen_dicom_labels)
    capsys.readouterr()
    assert sorted(before) == sorted(["organs.seg.dcm", "organs.rtstruct.dcm", "report.png", "stats.csv",
                                     "organs_labels.nii.gz.json", "ctorgans_label_summary.csv"])
    assert min(len(b) for b in before.values()) > LIMIT
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-c", _CHILD, str(data_file("abdomen_dicom")),
                          str(data_file("abdomen_dicom_ctorg.nii.gz")), str(LIMIT), str(tmp_path)],
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(results) == sorted(before)
    for name, message in results.items():
        path = tmp_path / name
        prefix = "exit 1: ctorgans stats: error: " if name == "stats.csv" else "OSError: "
        assert message.startswith(f"{prefix}could not write {path}: "), message
        assert "file-size limit (ulimit -f)" in message and "choose another folder" in message, message
        assert message.endswith("(the previous file is unchanged)"), message
        assert path.read_bytes() == before[name], f"{name} changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(before)  # no temporary file left behind


def test_augment_never_replaces_an_earlier_run_without_overwrite(tmp_path, capsys):
    """A second ``ctorgans augment`` into the same folder is refused before any work; --overwrite replaces."""
    from napari_ctorgans.cli import main

    out = tmp_path / "samples"
    args = ["augment", str(data_file("abdomen_3mm.nii.gz")), "--n", "1", "--out-shape", "8", "16", "16",
            "-o", str(out)]
    assert main(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["params.json", "sample_000_image.nii.gz", "transforms.json"]
    capsys.readouterr()
    assert main([*args, "--seed", "5"]) == 1
    err = capsys.readouterr().err
    assert f"ctorgans augment: error: {out} already holds 3 of the files this run writes" in err, err
    assert "pass --overwrite to replace them or choose another -o folder. Nothing was written." in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*args, "--seed", "5", "--overwrite"]) == 0
    assert json.loads((out / "transforms.json").read_text())[0]["seed"] == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
