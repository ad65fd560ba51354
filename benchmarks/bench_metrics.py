"""Speed of ``ct.metrics`` vs MONAI and the ``surface-distance`` package on a clinical-size CT.

Masks: lungs (air below -500 HU not connected to the image border, two largest components) and bone (> 200 HU)
of ``chest_native.nii.gz`` (512 x 512 x 141, 0.977 x 0.977 x 2.0 mm), each against a perturbed copy (dilated by one
voxel and shifted by 2 voxels in y). Every library computes the same set: Dice, ASSD, HD95, Hausdorff and surface
Dice at 2 mm. Run::

    .venv/bin/python benchmarks/bench_metrics.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans import metrics as M

DATA = Path(os.environ.get("CTORGANS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "ct"


def make_masks(hu: np.ndarray) -> dict[str, np.ndarray]:
    air = hu < -500
    lab, n = ndi.label(air)
    border = np.unique(np.concatenate([lab[:, 0].ravel(), lab[:, -1].ravel(), lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    sizes = ndi.sum_labels(np.ones_like(lab), lab, index=np.arange(n + 1))
    sizes[border] = 0
    sizes[0] = 0
    keep = np.argsort(sizes)[-2:]
    lungs = np.isin(lab, keep)
    bone = hu > 200
    return {"lungs": lungs, "bone": bone}


def perturb(mask: np.ndarray) -> np.ndarray:
    return np.roll(ndi.binary_dilation(mask), 2, axis=1)


def ours(pred, ref, sp):
    row = M.evaluate(pred.astype(np.uint8), ref.astype(np.uint8), spacing=sp, organs=[1], tolerance_mm=2.0)[0]
    return row.dice, row.assd, row.hd95, row.mssd, row.surface_dice


def monai_metrics(pred, ref, sp):
    import torch
    from monai.metrics import (
        compute_average_surface_distance, compute_dice, compute_hausdorff_distance, compute_surface_dice,
    )

    P, R = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    kw = {"include_background": True, "spacing": sp}
    return (
        float(compute_dice(P, R, include_background=True)),
        float(compute_average_surface_distance(P, R, symmetric=True, **kw)),
        float(compute_hausdorff_distance(P, R, percentile=95, **kw)),
        float(compute_hausdorff_distance(P, R, **kw)),
        float(compute_surface_dice(P, R, [2.0], **kw)),
    )


def surface_distance_metrics(pred, ref, sp):
    import surface_distance as sd

    s = sd.compute_surface_distances(ref, pred, sp)
    a, b = sd.compute_average_surface_distance(s)
    return (
        sd.compute_dice_coefficient(ref, pred),
        (a + b) / 2,
        sd.compute_robust_hausdorff(s, 95),
        sd.compute_robust_hausdorff(s, 100),
        sd.compute_surface_dice_at_tolerance(s, 2.0),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--slices", type=int, default=300, help="also time ours on the chest mirrored to this many slices")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    sp = tuple(vol.spacing)
    print(f"chest_native: shape {vol.shape}, spacing {tuple(round(s, 3) for s in sp)} mm")
    masks = make_masks(vol.array)
    funcs = {"napari-ctorgans": ours, "monai": monai_metrics, "surface-distance": surface_distance_metrics}
    print(f"{'mask':6} {'voxels':>9} {'library':17} {'time s':>7} {'vs ours':>7}  dice   assd  hd95    hd  sdice@2")
    for name, ref in masks.items():
        pred = perturb(ref)
        times = {}
        for lib, fn in funcs.items():
            best = np.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                values = fn(pred, ref, sp)
                best = min(best, time.perf_counter() - t0)
            times[lib] = best
            ratio = best / times["napari-ctorgans"]
            vals = " ".join(f"{v:5.3f}" for v in values)
            print(f"{name:6} {int(ref.sum()):9d} {lib:17} {best:7.2f} {ratio:6.2f}x  {vals}")
    if args.slices > vol.shape[0]:
        # clinical-size check: the chest and its mirror image stacked to 512 x 512 x slices
        hu = vol.array
        while hu.shape[0] < args.slices:
            hu = np.concatenate([hu, hu[::-1]], axis=0)
        big = make_masks(hu[: args.slices])
        for name, ref in big.items():
            pred = perturb(ref)
            t0 = time.perf_counter()
            ours(pred, ref, sp)
            print(f"{name:6} {int(ref.sum()):9d} napari-ctorgans on {ref.shape}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
