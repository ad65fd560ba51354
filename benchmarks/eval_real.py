"""Per-organ Dice of a model on the real evaluation scans and on an unseen phantom.

    python benchmarks/eval_real.py [CHECKPOINT]      (default: the built-in starter model)

Scans (from ../shared/data, see its README): ``ct/abdomen_3mm.nii.gz`` against its reference (all five organs) and
the DICOM series ``ct/abdomen_dicom`` against its reference (liver and bone); phantom seed 100 (never trained on).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

import napari_ctorgans as ct
from napari_ctorgans.metrics import dice

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
ORGANS = {v: ct.ORGANS[v].name for v in range(1, 6)}  # the five CT-ORG organs


def organ_dice(pred: np.ndarray, ref: np.ndarray, organs) -> dict[str, float]:
    return {ORGANS[k]: dice(pred == k, ref == k) for k in organs}


def evaluate(model=None) -> dict[str, dict[str, float]]:
    """``{scan: {organ: Dice}}`` for the evaluation scans (those found) and phantom seed 100."""
    rows = {}
    vol, ref = ct.make_phantom(seed=100)
    rows["phantom seed 100 (unseen)"] = organ_dice(ct.predict(vol, model), ref, ORGANS)
    if (DATA / "abdomen_3mm.nii.gz").exists():
        vol = ct.read_volume(DATA / "abdomen_3mm.nii.gz")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz").array)
        rows["ct/abdomen_3mm.nii.gz"] = organ_dice(ct.predict(vol, model), ref, ORGANS)
    if (DATA / "abdomen_dicom").exists():
        vol = ct.read_volume(DATA / "abdomen_dicom")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_dicom_ctorg.nii.gz", like=vol).array)
        rows["ct/abdomen_dicom"] = organ_dice(ct.predict(vol, model), ref, (1, 5))
    return rows


def main(argv: list[str]) -> int:
    model = argv[0] if argv else None
    t0 = time.perf_counter()
    rows = evaluate(model)
    print(f"model: {model or 'starter (built in)'}")
    print("| scan | " + " | ".join(ORGANS.values()) + " |")
    print("|---|" + "---|" * len(ORGANS))
    for scan, d in rows.items():
        print(f"| {scan} | " + " | ".join(f"{d[o]:.2f}" if o in d else "" for o in ORGANS.values()) + " |")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
