"""Sliding-window inference vs MONAI, and peak memory of ``ct.predict`` on a 512 x 512 x 800 CT.

Usage::

    python benchmarks/bench_infer.py                # speed table + memory (about 5 minutes on 2 CPU cores)
    python benchmarks/bench_infer.py --skip-memory  # speed table only

Speed: ``ct.sliding_window`` and MONAI's ``sliding_window_inference`` (predictor = softmax of the same model) on the
real thorax CT at 3 mm, the cpu-small U-Net, the same tile size, overlap and blending; median of ``--repeats`` runs,
ratio = MONAI time / ours (> 1: ours is faster). Memory: ``ct.predict`` in a fresh subprocess on a float32
512 x 512 x 800 CT (the native thorax stacked along z), working spacing 3 mm, peak resident memory from
``resource.getrusage`` (includes the 0.84 GB input itself); the limit is 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CTORGANS_DATA", ROOT.parent / "shared" / "data")) / "ct"


def speed(repeats: int, threads: int) -> list[dict]:
    import numpy as np
    import torch
    from monai.inferers import sliding_window_inference

    import napari_ctorgans as ct
    from napari_ctorgans.train.loop import window_image

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ct.build_model("cpu-small").eval()
    vol = ct.read_volume(DATA / "chest_3mm.nii.gz")
    x = torch.from_numpy(window_image(vol.array, (-575.0, 865.0)))[None, None]
    rows = []
    for roi, overlap, mode in (((48, 48, 48), 0.25, "constant"), ((48, 48, 48), 0.5, "gaussian"),
                               ((64, 64, 64), 0.25, "gaussian")):
        def ours():
            return ct.sliding_window(x, model, roi_size=roi, overlap=overlap, mode=mode, batch_size=2)

        def monai():
            with torch.inference_mode():
                return sliding_window_inference(x, roi, 2, lambda t: torch.softmax(model(t), 1), overlap=overlap,
                                                mode=mode)

        diff = float((ours() - monai()).abs().max())
        t_ours, t_monai = [], []
        for _ in range(repeats):
            for fn, acc in ((ours, t_ours), (monai, t_monai)):
                t0 = time.perf_counter()
                fn()
                acc.append(time.perf_counter() - t0)
        a, b = statistics.median(t_ours), statistics.median(t_monai)
        rows.append({"shape": tuple(x.shape[2:]), "roi": roi, "overlap": overlap, "mode": mode, "ours_s": a,
                     "monai_s": b, "ratio": b / a, "max_abs_diff": diff})
    return rows


def memory_child(out: str) -> None:
    """Runs in a subprocess: build the 512 x 512 x 800 CT, predict, report peak RSS."""
    import resource

    import numpy as np
    import torch

    import napari_ctorgans as ct
    from napari_ctorgans.infer.predict import Predictor

    torch.set_num_threads(2)
    native = ct.read_volume(DATA / "chest_native.nii.gz")
    src = np.asarray(native.array)
    reps = -(-800 // src.shape[0])
    arr = np.empty((800, 512, 512), dtype=np.float32)
    for i in range(reps):
        n = min(src.shape[0], 800 - i * src.shape[0])
        arr[i * src.shape[0]: i * src.shape[0] + n] = src[:n]
    del src, native
    vol = ct.Volume(arr, spacing=(1.0, 0.977, 0.977))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    torch.manual_seed(0)
    pred = Predictor(ct.build_model("cpu-small").eval(), spacing=3.0, window=(-575.0, 865.0), roi_size=(64, 64, 64))
    t0 = time.perf_counter()
    labels = ct.predict(vol, pred, overlap=0.25, batch_size=2, device="cpu")
    elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    Path(out).write_text(json.dumps({"shape": list(vol.shape), "labels_shape": list(labels.shape),
                                     "peak_gb": peak, "input_gb": arr.nbytes / 1024**3,
                                     "rss_before_predict_gb": base, "seconds": elapsed}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        memory_child(args.child)
        return 0
    print(f"sliding window on chest_3mm (cpu-small U-Net, batch 2, {args.threads} thread(s), median of "
          f"{args.repeats})")
    print(f"{'volume':>16} {'tile':>12} {'overlap':>7} {'mode':>9} {'ours s':>8} {'MONAI s':>8} {'ratio':>6} "
          f"{'max|diff|':>10}")
    for r in speed(args.repeats, args.threads):
        print(f"{'x'.join(map(str, r['shape'])):>16} {'x'.join(map(str, r['roi'])):>12} {r['overlap']:>7} "
              f"{r['mode']:>9} {r['ours_s']:8.2f} {r['monai_s']:8.2f} {r['ratio']:6.2f} {r['max_abs_diff']:10.1e}")
    if not args.skip_memory:
        out = ROOT / ".runtime" / "bench_infer_memory.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--child", str(out)], check=True)
        m = json.loads(out.read_text())
        print(f"\nct.predict on a float32 {'x'.join(map(str, m['shape']))} CT (input {m['input_gb']:.2f} GB), "
              f"3 mm working spacing, cpu-small, CPU:")
        print(f"peak RSS {m['peak_gb']:.2f} GB (limit 4 GB; {m['rss_before_predict_gb']:.2f} GB before predict), "
              f"{m['seconds']:.0f} s, labels {tuple(m['labels_shape'])} -> {'OK' if m['peak_gb'] < 4 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
