"""Peak memory of labelling and prediction on a clinical-size scan: 512 x 512 x 800 voxels.

The scan is the native thorax (``../shared/data/ct/chest_native.nii.gz``, 512 x 512 x 141 at 2 mm) upsampled along
z to 800 slices (linear interpolation, 0.35 mm slices), written once to a cache folder. Each step runs in a fresh
Python process; its peak resident memory is read from ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` by a
wrapper process that runs only that child, so the number covers reading the scan, the work and writing the output.

Usage::

    python benchmarks/bench_large.py                  # make the scan if needed, then label and predict
    python benchmarks/bench_large.py --steps label    # one step
    python benchmarks/bench_large.py --slices 400     # a smaller scan (quick check)

The budget is 6 GB per step on CPU. The prediction step is ``ct.predict`` with its defaults (the body box, tiles
chosen for inference); ``benchmarks/bench_predict.py`` times the same scan against MONAI and the previous default.
Pass ``--checkpoint`` to predict with a trained model instead of the two-iteration one made here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CTORGANS_DATA", ROOT.parent / "shared" / "data")) / "ct"
CACHE = Path(os.environ.get("CTORGANS_BENCH_CACHE", ROOT / ".runtime" / "bench_large"))
BUDGET_GB = 6.0


def make_scan(slices: int) -> Path:
    """The upsampled thorax, cached as uncompressed NIfTI."""
    out = CACHE / f"chest_512x512x{slices}.nii"
    if out.exists():
        return out
    import numpy as np
    from scipy import ndimage as ndi

    import napari_ctorgans as ct

    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    z = vol.shape[0]
    arr = np.empty((slices,) + vol.shape[1:], dtype=vol.array.dtype)
    pos = np.linspace(0, z - 1, slices)
    for i0 in range(0, slices, 64):  # linear interpolation along z, in blocks (bounded memory)
        p = pos[i0:i0 + 64]
        lo = np.floor(p).astype(int)
        hi = np.minimum(lo + 1, z - 1)
        w = (p - lo).astype(np.float32)[:, None, None]
        arr[i0:i0 + 64] = np.rint(vol.array[lo] * (1 - w) + vol.array[hi] * w).astype(arr.dtype)
    del ndi
    spacing = (vol.spacing[0] * (z - 1) / (slices - 1), vol.spacing[1], vol.spacing[2])
    big = ct.Volume(arr, spacing=spacing, origin=vol.origin, direction=vol.direction,
                    source_orientation=vol.source_orientation)
    CACHE.mkdir(parents=True, exist_ok=True)
    ct.write_volume(out, big, compress=False)
    return out


def make_checkpoint() -> Path:
    """A small model trained for a few iterations on a phantom (the weights do not matter for memory)."""
    out = CACHE / "tiny_model" / "last.pt"
    if out.exists():
        return out
    import napari_ctorgans as ct

    cfg = ct.TrainConfig.preset("cpu-quick", iterations=2, output_dir=str(out.parent))
    for _ in ct.train(cfg, [ct.make_phantom(seed=0)], overwrite=True):
        pass
    return out


# --------------------------------------------------------------------------------------------- the steps
def step_label(scan: Path) -> dict:
    import napari_ctorgans as ct

    t0 = time.perf_counter()
    vol = ct.read_volume(scan)
    labels = ct.auto_label(vol)
    ct.write_labels(CACHE / "labels.nii.gz", labels, vol, overwrite=True)
    return {"seconds": time.perf_counter() - t0, "lung_voxels": int((labels == 3).sum())}


def step_predict(scan: Path, checkpoint: Path) -> dict:
    import napari_ctorgans as ct

    t0 = time.perf_counter()
    vol = ct.read_volume(scan)
    labels = ct.predict(vol, checkpoint)
    ct.write_labels(CACHE / "pred.nii.gz", labels, vol, overwrite=True)
    return {"seconds": time.perf_counter() - t0, "labelled_voxels": int((labels > 0).sum())}


def step_read(scan: Path) -> dict:
    import napari_ctorgans as ct

    t0 = time.perf_counter()
    vol = ct.read_volume(scan)
    return {"seconds": time.perf_counter() - t0, "shape": list(vol.shape)}


def _child(step: str, scan: Path, checkpoint: Path | None) -> None:
    if step == "label":
        result = step_label(scan)
    elif step == "predict":
        result = step_predict(scan, checkpoint)
    else:
        result = step_read(scan)
    print("RESULT " + json.dumps(result), flush=True)


def _wrapper(step: str, scan: Path, checkpoint: Path | None) -> None:
    """Run one step as this process's only child and report the child's peak RSS."""
    cmd = [sys.executable, __file__, "--child", step, "--scan", str(scan)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    result = {"returncode": proc.returncode, "peak_gb": peak_kb * 1024 / 1e9}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    if proc.returncode:
        result["error"] = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no output"
    print("MEASURE " + json.dumps(result), flush=True)


def measure(step: str, scan: Path, checkpoint: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--wrap", step, "--scan", str(scan)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEASURE "):
            return json.loads(line[8:])
    return {"returncode": proc.returncode, "error": proc.stderr.strip()[-500:]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=800)
    parser.add_argument("--steps", default="read,label,predict")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--wrap", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--scan", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", default=None, help="checkpoint for the predict step (default: a tiny one)")
    args = parser.parse_args(argv)
    ckpt = Path(args.checkpoint) if args.checkpoint else None
    if args.child:
        _child(args.child, Path(args.scan), ckpt)
        return 0
    if args.wrap:
        _wrapper(args.wrap, Path(args.scan), ckpt)
        return 0

    if not (DATA / "chest_native.nii.gz").exists():
        print(f"skipped: {DATA / 'chest_native.nii.gz'} is missing")
        return 0
    scan = make_scan(args.slices)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if "predict" in steps and ckpt is None:
        ckpt = make_checkpoint()
    print(f"scan: {scan.name} (512 x 512 x {args.slices}, int16: {512 * 512 * args.slices * 2 / 1e9:.2f} GB)")
    print(f"{'step':<10} {'peak GB':>8} {'budget':>7} {'ratio':>6} {'seconds':>8}  note")
    worst = 0.0
    for step in steps:
        r = measure(step, scan, ckpt if step == "predict" else None)
        peak = r.get("peak_gb", float("nan"))
        worst = max(worst, peak if peak == peak else 0.0)
        note = r.get("error", "") or ("ok" if peak < BUDGET_GB else "OVER BUDGET")
        print(f"{step:<10} {peak:8.2f} {BUDGET_GB:7.1f} {peak / BUDGET_GB:6.2f} {r.get('seconds', float('nan')):8.1f}"
              f"  {note}", flush=True)
    return 0 if worst < BUDGET_GB else 1


if __name__ == "__main__":
    sys.exit(main())
