"""Ball dilation: this project's FFT / direct / EDT methods against scipy.ndimage.binary_dilation.

Real masks (air < -150 HU) of ct/abdomen_3mm (3 mm) and of ct/chest_native (0.98 x 0.98 x 2 mm; a slab of
``--native-slices`` slices so the scipy baseline finishes). Prints seconds and the speed-up ratio scipy / method.

    .venv/bin/python benchmarks/bench_morphology.py [--native-slices 24] [--repeat 1] [--labelers]

With ``--labelers`` it also times ``auto_label`` (lungs + bone) on the whole native chest (512 x 512 x 141) against
the same pipeline with every ball operation done by ``scipy.ndimage.binary_dilation`` / ``binary_erosion``, and
reports the peak traced memory relative to the input's size in float32.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans import morphology as M

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


def timed(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--native-slices", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--labelers", action="store_true")
    args = ap.parse_args()
    cases = []
    v = ct.read_volume(DATA / "abdomen_3mm.nii.gz")
    cases.append(("abdomen 3 mm", v.array < -150, v.spacing))
    n = ct.read_volume(DATA / "chest_native.nii.gz")
    z0 = n.shape[0] // 2 - args.native_slices // 2
    cases.append((f"chest native {args.native_slices} sl", n.array[z0 : z0 + args.native_slices] < -150, n.spacing))
    methods = " ".join(f"{m + ' s':>8s} {'x':>6s}" for m in ("fft", "direct", "edt"))
    print(f"{'data':24s} {'shape':>16s} {'ball':>6s} {'scipy s':>8s} {methods}  auto  peak MB (fft)")
    for name, mask, sp in cases:
        for d in (10.0, 25.0):
            k = M.ball(d, sp)
            t_ref, ref = timed(lambda: ndi.binary_dilation(mask, k), args.repeat)
            row = f"{name:24s} {str(mask.shape):>16s} {d:5.0f}mm {t_ref:8.3f}"
            for method in ("fft", "direct", "edt"):
                t, out = timed(lambda: M.dilate(mask, d, sp, method=method, backend="cpu"), args.repeat)
                assert np.array_equal(out, ref), (name, d, method)
                row += f" {t:8.3f} {t_ref / t:6.1f}"
            tracemalloc.start()
            M.dilate(mask, d, sp, method="fft", backend="cpu")
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            row += f"  {M.cpu.cheapest_method(mask.shape, k):6s} {peak:7.0f}"
            print(row, flush=True)


    if args.labelers:
        bench_labelers()


def _scipy_dilate(m, k, spacing, *, backend, method, border_value, workers):
    return ndi.binary_dilation(m, k, border_value=border_value)


def bench_labelers() -> None:
    n = ct.read_volume(DATA / "chest_native.nii.gz")
    f32_mb = n.array.size * 4 / 1e6
    rows = []
    for name in ("this project", "scipy.ndimage"):
        original = M._dilate
        if name == "scipy.ndimage":
            M._dilate = _scipy_dilate
        try:
            tracemalloc.start()
            t = time.perf_counter()
            labels = ct.auto_label(n, backend="cpu")
            dt = time.perf_counter() - t
            peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        finally:
            M._dilate = original
        rows.append((name, dt, peak, labels))
        print(f"auto_label native chest {n.shape}: {name:14s} {dt:7.1f} s  peak {peak:6.0f} MB "
              f"({peak / f32_mb:.2f}x the float32 input)", flush=True)
    same = np.array_equal(rows[0][3], rows[1][3])
    print(f"speed-up {rows[1][1] / rows[0][1]:.1f}x, identical labels: {same}")


if __name__ == "__main__":
    main()
