"""Per-organ Dice of a model on the real evaluation scans and on an unseen phantom.

    python benchmarks/eval_real.py [CHECKPOINT]      (default: the built-in starter model)
    python benchmarks/eval_real.py --fit [CHECKPOINT]   (how well it fits the random phantoms, with confusion rows)
    python benchmarks/eval_real.py --held-out [--anatomy=N] [CHECKPOINT]
        (mean Dice on unseen random phantoms 60-65 of anatomy version N, default 2: the network alone and the
        labellers' lungs and bone)

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
    """``{scan: {organ: Dice}}`` for the evaluation scans (those found) and phantom seed 100: ``ct.predict``'s
    default (for the starter: the labellers' lungs and bone) and the network alone."""
    rows = {}
    vol, ref = ct.make_phantom(seed=100)
    rows["phantom seed 100 (unseen)"] = organ_dice(ct.predict(vol, model), ref, ORGANS)
    if (DATA / "abdomen_3mm.nii.gz").exists():
        vol = ct.read_volume(DATA / "abdomen_3mm.nii.gz")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz").array)
        rows["ct/abdomen_3mm.nii.gz"] = organ_dice(ct.predict(vol, model), ref, ORGANS)
        rows["ct/abdomen_3mm.nii.gz, network alone"] = organ_dice(ct.predict(vol, model, labelers=None), ref, ORGANS)
    if (DATA / "abdomen_dicom").exists():
        vol = ct.read_volume(DATA / "abdomen_dicom")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_dicom_ctorg.nii.gz", like=vol).array)
        rows["ct/abdomen_dicom"] = organ_dice(ct.predict(vol, model), ref, (1, 5))
        rows["ct/abdomen_dicom, network alone"] = organ_dice(ct.predict(vol, model, labelers=None), ref, (1, 5))
    return rows


def fit(model=None, seeds=(3, 60)) -> None:
    """Dice and confusion rows on domain-randomised phantoms: seed 3 is one the starter trains on (seeds 0-47),
    seed 60 is not. Each row: a reference class, its voxels, and how many of them were predicted as each class."""
    for seed in seeds:
        vol, ref = ct.make_random_phantom(seed=seed)
        pred = ct.predict(vol, model, labelers=None)
        print(f"random phantom seed {seed} ({'trained on' if seed < 48 else 'unseen'}): "
              + ", ".join(f"{ORGANS[k]} {dice(pred == k, ref == k):.2f}" for k in ORGANS if (ref == k).any()))
        print("  reference class: voxels -> predicted as " + ", ".join(["background", *ORGANS.values()]))
        for k in range(6):
            row = [int(np.count_nonzero((ref == k) & (pred == j))) for j in range(6)]
            print(f"  {k}: {int(np.count_nonzero(ref == k))} -> {row}")


def held_out(model=None, seeds=range(60, 66), anatomy: int = 2) -> None:
    """Per-organ Dice on random phantoms the starter never trains on, and their mean over the phantoms that hold
    the organ (the figure recipes are chosen by: never the evaluation scans): the network alone, and the
    labellers' lungs and bone (``ct.auto_label``) on the same phantoms."""
    per = {k: [] for k in ORGANS}
    lab = {3: [], 5: []}
    for seed in seeds:
        vol, ref = ct.make_random_phantom(seed=seed, anatomy=anatomy)
        pred = ct.predict(vol, model, labelers=None)
        auto = ct.auto_label(vol)
        row = {k: dice(pred == k, ref == k) for k in ORGANS if (ref == k).any()}
        for k, d in row.items():
            per[k].append(d)
            if k in lab:
                lab[k].append(dice(auto == k, ref == k))
        print(f"seed {seed}: " + ", ".join(f"{ORGANS[k]} {d:.2f}" for k, d in row.items()), flush=True)
    print("mean, network: " + ", ".join(f"{ORGANS[k]} {np.mean(v):.2f} (n={len(v)})" for k, v in per.items() if v))
    print("mean, labellers: " + ", ".join(f"{ORGANS[k]} {np.mean(v):.2f} (n={len(v)})" for k, v in lab.items() if v))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--held-out"]:
        anatomy = 2
        if len(argv) > 1 and argv[1].startswith("--anatomy="):
            anatomy, argv = int(argv[1].split("=", 1)[1]), argv[1:]
        held_out(argv[1] if len(argv) > 1 else None, anatomy=anatomy)
        return 0
    if argv[:1] == ["--fit"]:
        fit(argv[1] if len(argv) > 1 else None)
        return 0
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
