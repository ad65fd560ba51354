"""The labellers on thin slices: a 60-slice, 256 x 256 slab of the native chest resampled to 0.35 mm slices.

Times ``label_body``, ``label_lungs`` and ``label_bones`` of the checkout on ``PYTHONPATH`` (this one by default).
To compare with an earlier commit, run it twice::

    python benchmarks/bench_thin_slices.py
    git worktree add /tmp/base <commit> && PYTHONPATH=/tmp/base/src python benchmarks/bench_thin_slices.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans.labelers import label_body, label_bones, label_lungs

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"


def main() -> None:
    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    slab = vol.array[40:100, 128:384, 128:384].astype(np.float32)
    thin = ndi.zoom(slab, (vol.spacing[0] / 0.35, 1, 1), order=1).astype(np.int16)
    v = ct.Volume(thin, spacing=(0.35, vol.spacing[1], vol.spacing[2]))
    print(ct.__file__, v)
    for name, f in (("body", label_body), ("lungs", label_lungs), ("bone", label_bones)):
        t = time.perf_counter()
        m = f(v)
        print(f"{name}: {time.perf_counter() - t:.2f} s, {int(m.sum())} voxels", flush=True)


if __name__ == "__main__":
    main()
