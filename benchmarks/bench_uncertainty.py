"""Calibration of ``ct.uncertainty`` against the errors of the starter model on the labelled shared scans.

    python benchmarks/bench_uncertainty.py [--method entropy|tta] [--passes N]

For each scan: the AUROC of the uncertainty for the wrong voxels (all voxels, and per organ on the voxels that
either the prediction or the reference calls that organ), the error rate per uncertainty decile inside the body
(HU > -500), and the seconds taken. The DICOM series is labelled for liver and bone only, so there the other
organs' voxels are left out of the count (the reference calls them background).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import napari_ctorgans as ct
from napari_ctorgans.infer.uncertainty import calibration

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ct"
SCANS = {"abdomen_3mm": ("abdomen_3mm.nii.gz", "abdomen_3mm_ctorg.nii.gz", (1, 2, 3, 4, 5)),
         "abdomen_dicom": ("abdomen_dicom", "abdomen_dicom_ctorg.nii.gz", (1, 5))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="entropy", choices=("entropy", "tta"))
    parser.add_argument("--passes", type=int, default=4)
    args = parser.parse_args()
    for name, (ct_file, ref_file, organs) in SCANS.items():
        vol = ct.read_volume(DATA / ct_file)
        ref = np.asarray(ct.read_labels(DATA / ref_file, like=vol).array)
        t0 = time.perf_counter()
        u, labels = ct.uncertainty(vol, method=args.method, passes=args.passes, return_labels=True)
        seconds = time.perf_counter() - t0
        counted = np.isin(labels, (0, *organs)) & np.isin(ref, (0, *organs))
        whole = calibration(u, labels, ref, mask=counted)
        print(f"\n{name} ({args.method}{'' if args.method == 'entropy' else f', {args.passes} passes'}): "
              f"{seconds:.1f} s; AUROC {whole['auroc']:.3f}, wrong voxels {whole['error_rate']:.2%}")
        for value in organs:
            near = ((labels == value) | (ref == value)) & counted
            c = calibration(u, labels, ref, mask=near)
            print(f"  {ct.ORGANS[value].name:8s} AUROC {c['auroc']:.3f} on {int(near.sum())} voxels "
                  f"(wrong {c['error_rate']:.1%})")
        body = counted & (np.asarray(vol.array) > -500)
        print("  deciles inside the body (uncertainty range: error rate)")
        for k, row in enumerate(calibration(u, labels, ref, mask=body)["bins"], start=1):
            print(f"  {k:2d}  {row['low']:.3f}-{row['high']:.3f}: {row['error_rate']:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
