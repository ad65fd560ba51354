"""The plausibility step (ct.plausible) on every shared scan and on region crops of them: Dice per organ with and
without it, the false-organ volume (mL) with and without it, and its run time.

    python benchmarks/eval_plausible.py [CHECKPOINT]      (default: the built-in starter model)
    python benchmarks/eval_plausible.py --time             (only the run time of the step on the native chest)

*False organ*: the predicted voxels of an organ where the case rules it out: every voxel of an organ the field of
view cannot hold (listed per case below: a thorax above the diaphragm holds no liver, kidneys or bladder; a scan
without its pelvis holds no bladder); with a reference, also the pieces (26-connected) of an organ that do not touch
that organ in the reference, and all of an organ the reference does not have. Bone is left out (it is possible
anywhere in the body). ``ct/abdomen_contrast*`` (3D-IRCADb-01, IRCAD, CC BY-NC-ND 4.0) is used to evaluate only.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage

import napari_ctorgans as ct
from napari_ctorgans.metrics import dice

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
NAMES = {v: ct.ORGANS[v].name for v in range(1, 6)}
LIVER, BLADDER, LUNGS, KIDNEYS = 1, 2, 3, 4
ALL = (1, 2, 3, 4, 5)


def _crop(vol, zs):
    return ct.Volume(np.ascontiguousarray(vol.array[zs]), spacing=vol.spacing, direction=vol.direction)


def cases():
    """``(name, volume, reference or None, organs ruled out, organs the reference labels)``: the organs a reference
    does not label (the DICOM series labels only liver and bone) count only when ruled out."""
    out = []
    if (DATA / "abdomen_3mm.nii.gz").exists():
        ab = ct.read_volume(DATA / "abdomen_3mm.nii.gz")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz").array)
        out += [("abdomen_3mm", ab, ref, (), ALL),
                ("abdomen_3mm: pelvis below the kidneys (z < 64)", _crop(ab, slice(0, 64)), ref[:64], (), ALL),
                ("abdomen_3mm: above the pelvis (z >= 62)", _crop(ab, slice(62, None)), ref[62:], (), ALL),
                ("abdomen_3mm: pelvis slab (z < 22)", _crop(ab, slice(0, 22)), ref[:22], (), ALL)]
    if (DATA / "abdomen_dicom").exists():
        vol = ct.read_volume(DATA / "abdomen_dicom")
        ref = np.asarray(ct.read_labels(DATA / "abdomen_dicom_ctorg.nii.gz", like=vol).array)
        out.append(("abdomen_dicom (upper abdomen, 40 mm)", vol, ref, (BLADDER,), (LIVER, 5)))
    if (DATA / "abdomen_contrast.nii.gz").exists():
        vol = ct.read_volume(DATA / "abdomen_contrast.nii.gz")
        out.append(("abdomen_contrast (evaluation only)", vol,
                    np.asarray(ct.read_labels(DATA / "abdomen_contrast_ctorg.nii.gz", like=vol).array), (), ALL))
    if (DATA / "chest_3mm.nii.gz").exists():
        ch = ct.read_volume(DATA / "chest_3mm.nii.gz")
        out += [("chest_3mm", ch, None, (BLADDER,), ()),
                ("chest_3mm: above the diaphragm (z >= 35)", _crop(ch, slice(35, None)), None,
                 (LIVER, BLADDER, KIDNEYS), ()),
                ("chest_3mm: neck and shoulders (z >= 80)", _crop(ch, slice(80, None)), None,
                 (LIVER, BLADDER, KIDNEYS), ())]
    if (DATA / "chest_native.nii.gz").exists():
        out.append(("chest_native", ct.read_volume(DATA / "chest_native.nii.gz"), None, (BLADDER,), ()))
    return out


def false_ml(labels: np.ndarray, ref, ruled_out, labelled, voxel_ml: float) -> dict[str, float]:
    out = {}
    for v, name in NAMES.items():
        mask = labels == v
        if not mask.any() or v == 5:  # bone is possible anywhere in the body
            continue
        if v in ruled_out:
            n = int(mask.sum())
        elif ref is None or v not in labelled:
            n = 0  # a reference that does not label this organ cannot tell
        elif not (ref == v).any():
            n = int(mask.sum())
        else:
            lab, k = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
            hit = np.unique(lab[(ref == v) & mask])
            n = int(np.count_nonzero(~np.isin(lab, hit) & mask))
        if n:
            out[name] = n * voxel_ml
    return out


def run(model=None) -> None:
    print("| case | organ Dice without -> with the step | false organ (mL) without | with | removed |")
    print("|---|---|---|---|---|")
    for name, vol, ref, ruled_out, labelled in cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = ct.predict(vol, model, plausible=False)
        out, removed = ct.plausible(raw, vol)
        dices = ""
        if ref is not None:
            dices = ", ".join(f"{NAMES[v]} {dice(raw == v, ref == v):.3f} -> {dice(out == v, ref == v):.3f}"
                              for v in NAMES if (ref == v).any())
        f0, f1 = (false_ml(x, ref, ruled_out, labelled, vol.voxel_volume_ml) for x in (raw, out))
        fmt = lambda f: ", ".join(f"{k} {m:.1f}" for k, m in f.items()) or "0"  # noqa: E731
        print(f"| {name} | {dices or 'no reference'} | {fmt(f0)} | {fmt(f1)} | "
              + ("; ".join(str(r) for r in removed) or "nothing") + " |", flush=True)


def timing(repeats: int = 3) -> None:
    """Seconds (wall and CPU) of ct.plausible on the native chest (512 x 512 x 141), landmarks included, best of
    ``repeats``: alone, and with the labellers' lungs and bone given (as ct.predict does for the starter)."""
    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = ct.predict(vol, plausible=False)
    from napari_ctorgans.landmarks import find_landmarks

    ct.plausible(raw, vol)  # warm-up (imports, first calls)
    for what, given in (("landmarks found from the CT", False), ("lungs and bone given", True)):
        wall, cpu = np.inf, np.inf
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            lm = find_landmarks(vol, lungs=raw == LUNGS, bone=raw == 5) if given else None
            ct.plausible(raw, vol, landmarks=lm)
            wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
        print(f"ct.plausible on chest_native {vol.shape}, {what}: {wall:.2f} s wall, {cpu:.2f} s CPU "
              f"(best of {repeats})")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--time" in sys.argv:
        timing()
    else:
        run(args[0] if args else None)
