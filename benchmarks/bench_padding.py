"""Cost of padding and of the CT check on a clinical-size scan: 512 x 512 x 800 int16, built from the native chest's
slices repeated, with -3024 outside the 250 mm reconstruction circle (and the same scan without padding).

    python benchmarks/bench_padding.py [SLICES]

Prints, for each step, the wall time and the peak of new memory (numpy allocations, by tracemalloc) against the
size of the scan itself: the padding mask, the labellers' air-filled copy (``as_ct``) and the CT check. The scan
without padding shows the usual path, which makes no copy.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import napari_ctorgans as ct
from napari_ctorgans.labelers._common import as_ct

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct" / "chest_native.nii.gz"


def measure(what: str, func, size: int) -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    func()
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"| {what} | {dt:.2f} | {peak / 2**20:.0f} MiB ({peak / size:.2f}x the scan) |")


def main(argv: list[str]) -> int:
    slices = int(argv[0]) if argv else 800
    native = ct.read_volume(DATA)
    reps = -(-slices // native.shape[0])
    arr = np.tile(native.array, (reps, 1, 1))[:slices]
    y = (np.arange(arr.shape[1]) - (arr.shape[1] - 1) / 2) * native.spacing[1]
    x = (np.arange(arr.shape[2]) - (arr.shape[2] - 1) / 2) * native.spacing[2]
    outside = (y[:, None] ** 2 + x[None, :] ** 2) > 250.0**2
    plain = ct.Volume(arr, spacing=native.spacing)
    padded_arr = arr.copy()
    padded_arr[:, outside] = -3024
    padded = ct.Volume(padded_arr, spacing=native.spacing)
    size = arr.nbytes
    print(f"scan {arr.shape} {arr.dtype}, {size / 2**20:.0f} MiB; padding {outside.mean():.1%} of each slice")
    print("| step | seconds | peak new memory |")
    print("|---|---|---|")
    for name, vol in (("padded", padded), ("no padding", plain)):
        measure(f"ct.padding_mask, {name}", lambda v=vol: ct.padding_mask(v), size)
        measure(f"labellers' input (as_ct), {name}", lambda v=vol: as_ct(v), size)
        measure(f"ct.check_ct, {name}", lambda v=vol: ct.check_ct(v), size)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
