"""Whole-box prediction (the default) against the previous 48^3 tiles, both against the reference labels.

    python benchmarks/agree_old_path.py [CHECKPOINT]     (default: the built-in starter model)

On ``ct/abdomen_3mm.nii.gz`` (all five organs) and the DICOM series ``ct/abdomen_dicom`` (liver and bone) from
../shared/data. The old path: ``roi_size=(48, 48, 48), overlap=0.5, mode="gaussian", crop_to_body=False``.
"""

from __future__ import annotations

import sys

import numpy as np

import napari_ctorgans as ct
from napari_ctorgans.metrics import dice

from eval_real import DATA

OLD = dict(roi_size=(48, 48, 48), overlap=0.5, mode="gaussian", crop_to_body=False)


def main(argv: list[str]) -> int:
    model = argv[0] if argv else None
    scans = [("abdomen", DATA / "abdomen_3mm.nii.gz", DATA / "abdomen_3mm_ctorg.nii.gz", range(1, 6)),
             ("DICOM", DATA / "abdomen_dicom", DATA / "abdomen_dicom_ctorg.nii.gz", (1, 5))]
    print("| scan, organ | fast vs reference | old vs reference | fast vs old |\n|---|---|---|---|")
    for name, image, labels, organs in scans:
        if not image.exists():
            print(f"({image} not found: skipped)")
            continue
        vol = ct.read_volume(image)
        ref = np.asarray(ct.read_labels(labels, like=vol).array)
        fast, old = ct.predict(vol, model, labelers=None), ct.predict(vol, model, labelers=None, **OLD)
        for k in organs:
            print(f"| {name}, {ct.ORGANS[k].name} | {dice(fast == k, ref == k):.3f} | {dice(old == k, ref == k):.3f} "
                  f"| {dice(fast == k, old == k):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
