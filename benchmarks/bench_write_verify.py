"""Cost of the verified write (temporary file, checksum/size scan, voxel digest, fsync, rename) against a plain
``SimpleITK.WriteImage``, for a clinical-size label map and CT.

Data: ``chest_native.nii.gz`` (512 x 512 x 141, int16) and a label map made from it (lungs < -500 HU -> 3,
bone > 200 HU -> 5, uint8). Each case runs in a fresh process so that the peak resident memory (ru_maxrss) of the
write itself is measured (Linux: VmHWM reset through /proc/self/clear_refs), above the loaded array. Best of
``--repeat`` wall and CPU seconds; on a loaded machine the CPU column is the steadier one. Run::

    .venv/bin/python benchmarks/bench_write_verify.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("CTORGANS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "ct"

_CHILD = r"""
import json, sys, time
import numpy as np, SimpleITK as sitk
import napari_ctorgans as ct
from napari_ctorgans.io._sitk import to_sitk
mode, array_path, geometry, out, repeat = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5])
arr = np.load(array_path)
like = ct.Volume.from_geometry(np.zeros((1, 1, 1), np.uint8), geometry)
like = ct.Volume(np.broadcast_to(np.uint8(0), arr.shape), like.spacing, like.origin, like.direction, like.source_orientation)
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))
times, cpus, peaks = [], [], []
for _ in range(repeat):
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak resident size (VmHWM)
        fh.write("5")
    base = status("VmRSS:")
    t, c = time.perf_counter(), time.process_time()
    if mode == "plain":
        sitk.WriteImage(to_sitk(arr, like, orientation=like.source_orientation), out, useCompression=True)
    elif arr.dtype == np.uint8:
        ct.write_labels(out, arr, like=like, overwrite=True)
    else:
        ct.write_volume(out, like.with_array(arr), overwrite=True)
    times.append(time.perf_counter() - t)
    cpus.append(time.process_time() - c)
    peaks.append((status("VmHWM:") - base) / 1024)
print(json.dumps({"best_s": min(times), "cpu_s": min(cpus), "peak_mb": max(peaks)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import napari_ctorgans as ct

    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    labels = np.where(vol.array < -500, 3, np.where(vol.array > 200, 5, 0)).astype(np.uint8)
    geometry = json.dumps(vol.geometry())
    print(f"{'array':<14}{'format':<9}{'plain s':>9}{'verified s':>12}{'added s':>9}{'added CPU s':>13}"
          f"{'plain MB':>10}{'verified MB':>13}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in (("labels uint8", labels), ("CT int16", vol.array)):
            npy = Path(tmp) / "array.npy"
            np.save(npy, arr)
            for suffix in (".nii.gz", ".nii", ".mha", ".nrrd"):
                res = {}
                for mode in ("plain", "verified"):
                    run = subprocess.run([sys.executable, "-c", _CHILD, mode, str(npy), geometry,
                                          str(Path(tmp) / f"out_{mode}{suffix}"), str(args.repeat)],
                                         capture_output=True, text=True, check=True)
                    res[mode] = json.loads(run.stdout.strip().splitlines()[-1])
                p, v = res["plain"], res["verified"]
                print(f"{name:<14}{suffix:<9}{p['best_s']:>9.3f}{v['best_s']:>12.3f}{v['best_s'] - p['best_s']:>9.3f}"
                      f"{v['cpu_s'] - p['cpu_s']:>13.3f}{p['peak_mb']:>10.0f}{v['peak_mb']:>13.0f}")


if __name__ == "__main__":
    main()
