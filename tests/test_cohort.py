"""Cohort processing on a real Dask LocalCluster: phantoms, the real CTs, a corrupted file, re-runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import napari_ctorgans as ct
from napari_ctorgans.cohort import (
    CohortSummary,
    find_inputs,
    is_complete,
    output_paths,
    run_cohort,
    sidecar_path,
)

from conftest import data_file

pytest.importorskip("distributed")


def _phantom(seed: int, *, lungs: bool = True):
    # without lungs: sharp edges, so filling the lungs leaves no partial-volume shell of lung-like HU behind
    vol, labels = ct.make_phantom(seed=seed, spacing=6.0, partial_volume=0.5 if lungs else 0.0)
    if not lungs:  # fill the lungs and airways with soft tissue: an abdomen-only scan
        arr = vol.array.copy()
        arr[(labels == 3) | ((arr < -400) & (labels != 0))] = 40
        vol.array = arr
    return vol


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory) -> Path:
    """A cohort folder: three phantoms (one without lungs), the real CTs, a DICOM series, a corrupted file."""
    root = tmp_path_factory.mktemp("cohort") / "scans"
    (root / "site_a").mkdir(parents=True)
    (root / "site_b").mkdir()
    ct.write_volume(root / "site_a" / "phantom0.nii.gz", _phantom(0))
    ct.write_volume(root / "site_a" / "phantom1.mha", _phantom(1))
    ct.write_volume(root / "site_b" / "no_lungs.nii.gz", _phantom(2, lungs=False))
    os.symlink(data_file("abdomen_3mm.nii.gz"), root / "site_b" / "abdomen_3mm.nii.gz")
    os.symlink(data_file("chest_3mm.nii.gz"), root / "site_b" / "chest_3mm.nii.gz")
    os.symlink(data_file("abdomen_dicom"), root / "site_b" / "abdomen_dicom", target_is_directory=True)
    # a corrupted NIfTI: right name and size, its header overwritten
    good = (root / "site_a" / "phantom0.nii.gz").read_bytes()
    (root / "site_a" / "corrupted.nii.gz").write_bytes(b"\x00garbage" * 40 + good[400:])
    return root


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}) as c:
        yield c


def _by_name(summary) -> dict[str, object]:
    return {Path(r.input).name: r for r in summary}


def test_find_inputs_folder_list_and_outputs(cohort_dir, tmp_path):
    scans, root = find_inputs(cohort_dir)
    names = sorted(p.name for p in scans)
    assert names == sorted(["phantom0.nii.gz", "phantom1.mha", "corrupted.nii.gz", "no_lungs.nii.gz",
                            "abdomen_3mm.nii.gz", "chest_3mm.nii.gz", "abdomen_dicom"])
    assert root == cohort_dir.resolve() or root == Path(os.path.abspath(cohort_dir))
    # outputs mirror the sub-folders under output_dir, or sit next to the inputs
    outs = output_paths(scans, root, task="label", output_dir=tmp_path / "out")
    rel = sorted(str(o.relative_to(tmp_path / "out")) for o in outs)
    assert "site_b/abdomen_dicom_labels.nii.gz" in rel and "site_a/phantom1_labels.nii.gz" in rel
    beside = output_paths(scans, root, task="predict")
    assert all(o.parent == s.parent and o.name.endswith("_pred.nii.gz") for o, s in zip(beside, scans))
    # a text file listing paths (relative to the list, comments and blank lines ignored); duplicates dropped
    listing = cohort_dir / "cohort.txt"
    listing.write_text("# two scans\nsite_a/phantom0.nii.gz\n\nsite_b/abdomen_dicom\nsite_a/phantom0.nii.gz\n")
    listed, _ = find_inputs(listing)
    assert [p.name for p in listed] == ["phantom0.nii.gz", "abdomen_dicom"]
    listing.unlink()
    # outputs found in a folder are not taken for inputs
    (cohort_dir / "site_a" / "phantom0_labels.nii.gz").write_bytes(b"")
    try:
        assert "phantom0_labels.nii.gz" not in [p.name for p in find_inputs(cohort_dir)[0]]
    finally:
        (cohort_dir / "site_a" / "phantom0_labels.nii.gz").unlink()


def test_validation_messages(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        run_cohort(tmp_path, task="segment")
    with pytest.raises(ValueError, match="holds no scan"):  # no checkpoint: the built-in starter model, accepted
        run_cohort(tmp_path, task="predict")
    with pytest.raises(FileNotFoundError, match="checkpoint .* does not exist.*built-in starter"):
        run_cohort(tmp_path, task="predict", checkpoint=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="retries must be an integer >= 0"):
        run_cohort(tmp_path, retries=-1)
    with pytest.raises(ValueError, match="require must name organs"):
        run_cohort(tmp_path, require=("spleen",))
    with pytest.raises(ValueError, match="holds no scan"):
        run_cohort(tmp_path)
    with pytest.raises(TypeError, match="inputs must"):
        find_inputs(42)


@pytest.mark.slow
def test_cohort_on_local_cluster_then_rerun_skips(cohort_dir, cluster, tmp_path):
    out = tmp_path / "labels"
    summary = run_cohort(cohort_dir, task="label", output_dir=out, scheduler=cluster.scheduler_address,
                         require=("lungs",), progress=False)
    rows = _by_name(summary)
    assert len(summary) == 7
    assert rows["corrupted.nii.gz"].status == "failed" and "cannot read" in rows["corrupted.nii.gz"].error
    # the lungs-free phantom and the real upper-abdomen DICOM series (liver level, no lung) have no lungs
    for name in ("no_lungs.nii.gz", "abdomen_dicom"):
        assert rows[name].status == "failed" and "no lungs found" in rows[name].error
    ok = ["phantom0.nii.gz", "phantom1.mha", "abdomen_3mm.nii.gz", "chest_3mm.nii.gz"]
    assert all(rows[n].status == "ok" for n in ok), str(summary)
    assert not (out / "site_b" / "no_lungs_labels.nii.gz").exists()
    assert not (out / "site_b" / "abdomen_dicom_labels.nii.gz").exists()

    # each output is complete and equals the labeller run directly in this process
    for name in ["phantom1.mha", "chest_3mm.nii.gz"]:
        row = rows[name]
        assert is_complete(row.output)
        vol = ct.read_volume(row.input)
        got = ct.read_labels(row.output)
        assert got.shape == vol.shape
        np.testing.assert_array_equal(got.array, ct.auto_label(vol))
        meta = json.loads(sidecar_path(row.output).read_text())
        assert meta["shape"] == list(vol.shape) and meta["voxels"]["3"] > 0

    # the table and the CSV
    text = str(summary)
    assert "7 scans: 4 ok, 0 skipped, 3 failed" in text
    assert summary.csv_path == out / "ctorgans_label_summary.csv"
    back = CohortSummary.read_csv(summary.csv_path)
    assert [(r.input, r.status) for r in back] == [(r.input, r.status) for r in summary]

    # re-run: complete outputs are skipped, failed scans are tried again
    again = _by_name(run_cohort(cohort_dir, task="label", output_dir=out, scheduler=cluster.scheduler_address,
                                require=("lungs",), progress=False))
    assert all(again[n].status == "skipped" for n in ok)
    assert again["corrupted.nii.gz"].status == "failed" and again["no_lungs.nii.gz"].status == "failed"

    # an output of an interrupted run (its sidecar still says "writing") or a damaged output is redone
    sidecar_path(rows["phantom0.nii.gz"].output).write_text('{"status": "writing"}')
    damaged = Path(rows["phantom1.mha"].output)
    damaged.write_bytes(damaged.read_bytes()[:100])
    assert not is_complete(damaged)
    third = _by_name(run_cohort(cohort_dir, task="label", output_dir=out, scheduler=cluster.scheduler_address,
                                progress=False, summary_csv=tmp_path / "third.csv"))
    assert third["phantom0.nii.gz"].status == "ok" and third["phantom1.mha"].status == "ok"
    # without require, scans without lungs are fine
    assert third["no_lungs.nii.gz"].status == "ok" and third["abdomen_dicom"].status == "ok"
    assert ct.read_labels(third["abdomen_dicom"].output).shape == ct.read_volume(third["abdomen_dicom"].input).shape
    assert third["chest_3mm.nii.gz"].status == "skipped"
    assert is_complete(damaged) and (tmp_path / "third.csv").exists()
    # overwrite redoes everything readable
    fourth = run_cohort([cohort_dir / "site_a" / "phantom0.nii.gz"], output_dir=out, overwrite=True,
                        scheduler=cluster.scheduler_address, progress=False, summary_csv=False)
    assert [r.status for r in fourth] == ["ok"] and fourth.csv_path is None


@pytest.mark.slow
def test_default_local_cluster_outputs_next_to_inputs(tmp_path):
    """No scheduler given: a local cluster is started and closed; outputs land next to the inputs."""
    for seed in (3, 4):
        ct.write_volume(tmp_path / f"case{seed}.nrrd", _phantom(seed))
    listing = tmp_path / "cases.txt"
    listing.write_text("case3.nrrd\ncase4.nrrd\nmissing.nii.gz\n")
    summary = run_cohort(listing, n_workers=2, progress=True)
    statuses = {Path(r.input).name: r.status for r in summary}
    assert statuses == {"case3.nrrd": "ok", "case4.nrrd": "ok", "missing.nii.gz": "failed"}
    assert "does not exist" in _by_name(summary)["missing.nii.gz"].error
    assert is_complete(tmp_path / "case3_labels.nii.gz") and is_complete(tmp_path / "case4_labels.nii.gz")
    assert (tmp_path / "ctorgans_label_summary.csv").exists()
    # the outputs sit next to the inputs; running on the folder itself does not take them for inputs
    again = run_cohort(tmp_path, n_workers=1, progress=False)
    assert sorted(r.status for r in again) == ["skipped", "skipped"]


def test_dicom_folder_as_single_input(tmp_path):
    """A DICOM series folder given directly is one scan, not a folder of scans."""
    src = data_file("abdomen_dicom")
    dst = tmp_path / "series"
    shutil.copytree(src, dst)
    scans, _ = find_inputs(dst)
    assert scans == [dst]


@pytest.mark.slow
def test_cli_label_on_a_folder_with_a_scheduler(tmp_path, cluster, capsys):
    from napari_ctorgans.cli import main

    scans = tmp_path / "scans"
    scans.mkdir()
    ct.write_volume(scans / "p5.nii.gz", _phantom(5))
    ct.write_volume(scans / "p6.nii.gz", _phantom(6, lungs=False))
    (scans / "broken.nrrd").write_text("NRRD0004\nthis is not a header\n")
    out = tmp_path / "labels"
    argv = ["label", str(scans), "-o", str(out), "--scheduler", cluster.scheduler_address, "--require", "lungs",
            "--no-progress", "--organs", "lungs"]
    assert main(argv) == 1  # two scans failed: the exit status says so
    text = capsys.readouterr().out
    assert "3 scans: 1 ok, 0 skipped, 2 failed" in text and "no lungs found" in text
    labels = ct.read_labels(out / "p5_labels.nii.gz").array
    assert set(np.unique(labels)) == {0, 3}  # --organs reached the labeller: lungs only
    assert main(argv) == 1
    assert "1 skipped" in capsys.readouterr().out
    # several files on the command line are a cohort too; a single file without -o is an error
    assert main(["label", str(scans / "p5.nii.gz"), str(scans / "p6.nii.gz"), "--scheduler",
                 cluster.scheduler_address, "--no-progress"]) == 0
    assert (scans / "p6_labels.nii.gz").exists()
    assert main(["label", str(scans / "p5.nii.gz")]) == 1
    assert "-o/--output is required for a single scan" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_cohort_with_a_checkpoint(tmp_path, cluster):
    """task="predict": each worker loads the checkpoint once; a damaged checkpoint fails every scan cleanly."""
    from napari_ctorgans.infer.predict import predict

    cfg = ct.TrainConfig.preset("cpu-quick", iterations=2, crop_size=(32, 32, 32), spacing=8.0, batch_size=1,
                                device="cpu", output_dir=str(tmp_path / "run"))
    for _ in ct.train(cfg, [ct.make_phantom(seed=0, spacing=8.0)]):
        pass
    checkpoint = tmp_path / "run" / "last.pt"
    scans = tmp_path / "scans"
    scans.mkdir()
    vol, _ = ct.make_phantom(seed=7, spacing=8.0)
    ct.write_volume(scans / "p7.nii.gz", vol)
    summary = run_cohort(scans, task="predict", checkpoint=checkpoint, scheduler=cluster.scheduler_address,
                         progress=False, output_dir=tmp_path / "pred", options={"overlap": 0.25})
    assert [r.status for r in summary] == ["ok"], str(summary)
    out = ct.read_labels(tmp_path / "pred" / "p7_pred.nii.gz")
    vol = ct.read_volume(scans / "p7.nii.gz")
    assert out.shape == vol.shape
    np.testing.assert_array_equal(out.array, predict(vol, checkpoint, overlap=0.25))  # same as in this process
    bad = tmp_path / "bad.pt"
    bad.write_bytes(checkpoint.read_bytes()[:200])
    failed = run_cohort(scans, task="predict", checkpoint=bad, scheduler=cluster.scheduler_address,
                        progress=False, output_dir=tmp_path / "pred_bad")
    assert [r.status for r in failed] == ["failed"]
    assert bad.name in failed[0].error, str(failed)


@pytest.mark.slow
def test_worker_killed_out_of_memory_is_retried_then_reported(tmp_path):
    """A scan too big for the workers' memory limit: the nanny kills the worker, the scan is retried on a
    restarted worker, then reported with the fix; the other scan (on the second worker) is still written."""
    scans = tmp_path / "scans"
    scans.mkdir()
    ct.write_volume(scans / "small.nii.gz", _phantom(5))
    os.symlink(data_file("chest_native.nii.gz"), scans / "big.nii.gz")
    summary = run_cohort(scans, n_workers=2, memory_limit="750MB", retries=1, progress=False,
                         output_dir=tmp_path / "out")
    rows = _by_name(summary)
    assert rows["small.nii.gz"].status == "ok" and is_complete(rows["small.nii.gz"].output)
    big = rows["big.nii.gz"]
    assert big.status == "failed" and "KilledWorker" in big.error
    assert "2 different workers" in big.error  # tried twice: the first run and one retry
    assert "out of memory" in big.error and "memory_limit" in big.error
    assert not Path(big.output).exists()
