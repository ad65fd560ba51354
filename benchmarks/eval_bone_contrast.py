"""Bone labeller on contrast-enhanced CT: Dice against the reference and bone voxels in bright homogeneous blood.

    python benchmarks/eval_bone_contrast.py [--before FILE] [--time] [--scans NAME,...]

For every labelled scan in ../shared/data/ct it prints the bone Dice of ``label_bones`` and how many of its voxels
fall in *bright blood*: voxels above 150 HU inside the body that the reference labels background and that lie more
than 5 mm from reference bone (heart chambers, aorta, vena cava, and where the reference leaves them unlabelled,
enhanced kidneys and bowel). The largest connected pieces of that overlap are listed with their centre (z, y, x)
so they can be looked at. ``--before FILE`` runs another copy of ``labelers/bones.py`` (e.g. one written by
``git show REV:src/napari_ctorgans/labelers/bones.py``) next to the current one. ``--time`` times
``label_bones`` on the native chest (512 x 512 x 141; best of 5, the two labellers interleaved). The chest scans
have no reference: only their bone volume is printed (compare the two labellers' volumes, then look).

``ct/abdomen_contrast*`` is patient 1 of 3D-IRCADb-01 (IRCAD, CC BY-NC-ND 4.0): evaluation only.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans.metrics import dice

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ct"
SCANS = {
    "abdomen_3mm": ("abdomen_3mm.nii.gz", "abdomen_3mm_ctorg.nii.gz"),
    "abdomen_dicom": ("abdomen_dicom", "abdomen_dicom_ctorg.nii.gz"),
    "abdomen_contrast": ("abdomen_contrast.nii.gz", "abdomen_contrast_ctorg.nii.gz"),
    "chest_3mm": ("chest_3mm.nii.gz", None),
    "chest_native": ("chest_native.nii.gz", None),
}


def load_before(path: str):
    """``label_bones`` of another copy of bones.py, imported inside the package (its relative imports work)."""
    spec = importlib.util.spec_from_file_location("napari_ctorgans.labelers._bones_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod.label_bones


def bright_blood(arr, ref, spacing, body) -> np.ndarray:
    """Voxels above 150 HU in the body, reference background, more than 5 mm from reference bone."""
    near = ndi.distance_transform_edt(ref != 5, sampling=spacing) <= 5.0
    return (arr > 150) & (ref == 0) & body & ~near


def large(blood, spacing, diameter_mm=7.0) -> np.ndarray:
    """The part of ``blood`` that holds a ball of ``diameter_mm``: vessel lumens, heart chambers, enhanced organs,
    not the thin calcified rims of costal cartilage or the partial-volume edge of unlabelled bone."""
    from napari_ctorgans import morphology

    return morphology.opening(blood, diameter_mm, spacing)


def pieces(mask, spacing, n=3) -> str:
    lab, k = ndi.label(mask)
    if k == 0:
        return ""
    sizes = np.bincount(lab.ravel())[1:]
    top = np.argsort(sizes)[::-1][:n]
    cms = ndi.center_of_mass(mask, lab, top + 1)
    ml = float(np.prod(spacing)) / 1000.0
    return "; ".join(f"{sizes[i] * ml:.2f} ml at {tuple(int(c) for c in cm)}" for i, cm in zip(top, cms))


def report(name, fns) -> None:
    scan, lab = SCANS[name]
    if not (DATA / scan).exists():
        print(f"{name}: not found, skipped")
        return
    vol = ct.read_volume(DATA / scan)
    ref = np.asarray(ct.read_labels(DATA / lab, like=vol).array) if lab else None
    body = ct.label_body(vol)
    ml = vol.voxel_volume_ml
    for tag, fn in fns.items():
        t = time.perf_counter()
        bone = fn(vol, body=body)
        sec = time.perf_counter() - t
        line = f"{name} [{tag}]: bone {np.count_nonzero(bone) * ml:.0f} ml ({sec:.1f} s)"
        if ref is not None:
            blood = bright_blood(vol.array, ref, vol.spacing, body)
            hit, big = bone & blood, bone & large(blood, vol.spacing)
            organs = np.count_nonzero(bone & np.isin(ref, (1, 2, 3, 4)))
            line += (f", Dice {dice(bone, ref == 5):.3f}, bright blood {np.count_nonzero(blood) * ml:.0f} ml, "
                     f"bone in it {np.count_nonzero(hit)} voxels ({np.count_nonzero(hit) * ml:.2f} ml), "
                     f"in its 7 mm core {np.count_nonzero(big)} voxels, in reference organs {organs} voxels: "
                     + pieces(hit, vol.spacing))
        print(line, flush=True)


def time_native(fns, repeat=5) -> None:
    """Best of ``repeat`` runs of each labeller on the native chest, the runs interleaved (before, now, before, ...)
    so that the load of a shared machine falls on both alike."""
    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    body = ct.label_body(vol)
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for tag, fn in fns.items():
            best[tag] = min(best[tag], _once(fn, vol, body))
    for tag, sec in best.items():
        print(f"chest_native label_bones [{tag}]: best of {repeat} (interleaved) {sec:.2f} s", flush=True)


def _once(fn, vol, body) -> float:
    t = time.perf_counter()
    fn(vol, body=body)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="another copy of labelers/bones.py to compare with")
    p.add_argument("--time", action="store_true", help="time label_bones on the native chest")
    p.add_argument("--scans", default=",".join(SCANS))
    args = p.parse_args(argv)
    fns = {}
    if args.before:
        fns["before"] = load_before(args.before)
    fns["now"] = ct.label_bones
    if args.time:
        time_native(fns)
        return 0
    for name in args.scans.split(","):
        report(name.strip(), fns)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
