"""Cohort throughput: automatic labelling of real CTs on a local Dask cluster with 1 and 2 workers.

The cohort is ``--copies`` links to each of the two 3 mm real CTs (``abdomen_3mm``, ``chest_3mm``) in a temporary
folder. Each configuration starts its own cluster (single-threaded worker processes) and labels the whole cohort
into a fresh output folder; the time includes starting the cluster and the workers' first imports, like a real
run. The baseline is the same scans labelled one after the other in this process.

Usage::

    python benchmarks/bench_cohort.py              # 2 x 4 scans
    python benchmarks/bench_cohort.py --copies 8   # 2 x 8 scans
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CTORGANS_DATA", ROOT.parent / "shared" / "data")) / "ct"
SOURCES = ("abdomen_3mm.nii.gz", "chest_3mm.nii.gz")


def make_cohort(folder: Path, copies: int) -> list[Path]:
    scans = []
    for name in SOURCES:
        stem = name[: -len(".nii.gz")]
        for i in range(copies):
            link = folder / f"{stem}_{i:02d}.nii.gz"
            os.symlink(DATA / name, link)
            scans.append(link)
    return scans


def run_sequential(scans: list[Path], out: Path) -> tuple[float, float]:
    from napari_ctorgans.cohort import output_paths, process_scan

    outputs = output_paths(scans, scans[0].parent, output_dir=out)
    t0 = time.perf_counter()
    per_scan = []
    for scan, o in zip(scans, outputs):
        row = process_scan(scan, o, task="label")
        assert row["status"] == "ok", row
        per_scan.append(row["seconds"])
    return time.perf_counter() - t0, statistics.median(per_scan)


def run_cluster(folder: Path, out: Path, workers: int) -> tuple[float, float]:
    from napari_ctorgans.cohort import run_cohort

    t0 = time.perf_counter()
    summary = run_cohort(folder, task="label", output_dir=out, n_workers=workers, progress=False)
    seconds = time.perf_counter() - t0
    assert not summary.failed, str(summary)
    return seconds, statistics.median(r.seconds for r in summary)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=4, help="links per source CT (default 4)")
    parser.add_argument("--workers", default="1,2", help="cluster sizes to time (default 1,2)")
    args = parser.parse_args(argv)
    if not all((DATA / s).exists() for s in SOURCES):
        print(f"skipped: the real CTs are missing from {DATA}")
        return 0
    import napari_ctorgans as ct

    # compile and cache the labelers' kernels once, outside the timings
    ct.auto_label(ct.read_volume(DATA / SOURCES[1]))
    tmp = Path(tempfile.mkdtemp(prefix="ctorgans-bench-cohort-"))
    try:
        folder = tmp / "scans"
        folder.mkdir()
        scans = make_cohort(folder, args.copies)
        n = len(scans)
        rows = [("sequential, this process", run_sequential(scans, tmp / "seq"))]
        for w in [int(x) for x in args.workers.split(",")]:
            rows.append((f"LocalCluster, {w} worker{'s' if w > 1 else ''}", run_cluster(folder, tmp / f"w{w}", w)))
        base = rows[0][1][0]
        load = os.getloadavg()[0]
        print(f"cohort: {n} scans ({args.copies} x {', '.join(SOURCES)}), {os.cpu_count()} cores, "
              f"load average {load:.1f} at the end")
        print(f"{'configuration':<28} {'seconds':>8} {'scans/min':>10} {'speed-up':>9} {'median s/scan':>14}")
        for name, (sec, med) in rows:
            print(f"{name:<28} {sec:8.1f} {60 * n / sec:10.1f} {base / sec:8.2f}x {med:14.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
