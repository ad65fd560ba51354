"""Calibration of ``ct.uncertainty`` against the errors of the starter model on the labelled shared scans.

    python benchmarks/bench_uncertainty.py [--method entropy|tta] [--passes N] [--details]
    python benchmarks/bench_uncertainty.py --native     # seconds on the 512 x 512 x 141 chest
    python benchmarks/bench_uncertainty.py --band-pool  # the labellers' band computed at 1, 2, 3 mm on the DICOM series
    python benchmarks/bench_uncertainty.py --compare    # ct.compare_models: the starter against a broken copy

For each scan: the AUROC of the uncertainty for the wrong voxels (all voxels, and per organ on the voxels that
either the prediction or the reference calls that organ), the error rate per uncertainty decile inside the body
(HU > -500), and the seconds taken. The DICOM series is labelled for liver and bone only, so there the other
organs' voxels are left out of the count (the reference calls them background). ``--details`` adds, on the
abdomen, the error rate by distance to the labellers' lung and bone surfaces (what the band is matched to), the
AUROC of the network's own ``1 - p(label)`` for those organs, and the first five regions of ``ct.next_region``.
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
    parser.add_argument("--details", action="store_true")
    parser.add_argument("--native", action="store_true")
    parser.add_argument("--band-pool", action="store_true")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        return compare()
    if args.native:
        return native()
    if args.band_pool:
        return band_pool()
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
        if args.details and name == "abdomen_3mm":
            details(vol, ref, u, labels)
    return 0


def compare() -> int:
    """ct.compare_models of the starter and a copy with its liver output silenced (a fine-tune gone wrong), on 20
    slices of the shared abdomen through the liver, the kidneys marked as the organs the user corrected."""
    import copy

    import torch

    vol = ct.read_volume(DATA / "abdomen_3mm.nii.gz")
    ref = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz", like=vol).array)[84:104]
    crop = ct.Volume(np.ascontiguousarray(vol.array[84:104]), spacing=vol.spacing)
    model, info = ct.load_checkpoint(ct.starter_path())
    broken = copy.deepcopy(model)
    with torch.no_grad():
        [m for m in broken.modules() if isinstance(m, torch.nn.Conv3d)][-1].bias[1] -= 20.0
    result = ct.compare_models((model, info), (broken, info), [(crop, ref, ["kidneys"])], labelers=None)
    for row in result.rows:
        print(f"  {row['scan']} {row['organ']:8s} {row['old']:.2f} -> {row['new']:.2f}"
              f"{'' if row['corrected'] else '  (not corrected)'}")
    print(result.summary)
    return 0


def band_pool() -> int:
    """Bone AUROC on the DICOM series and the band's seconds with the band computed every 1, 2 or 3 mm."""
    import napari_ctorgans.infer.uncertainty as unc

    vol = ct.read_volume(DATA / "abdomen_dicom")
    ref = np.asarray(ct.read_labels(DATA / "abdomen_dicom_ctorg.nii.gz", like=vol).array)
    model = ct.Predictor.from_checkpoint(None)
    band = unc.labeller_band
    try:
        for pool in (1.0, 2.0, 3.0):
            seconds = []

            def timed(*a, pool=pool, seconds=seconds, **k):
                t = time.perf_counter()
                out = band(*a, **{**k, "pool_mm": pool})
                seconds.append(time.perf_counter() - t)
                return out

            unc.labeller_band = timed
            u, labels = unc.uncertainty(vol, model, return_labels=True)
            counted = np.isin(labels, (0, 1, 5)) & np.isin(ref, (0, 1, 5))
            near = ((labels == 5) | (ref == 5)) & counted
            print(f"pool {pool:.0f} mm: bone AUROC {calibration(u, labels, ref, mask=near)['auroc']:.3f}, band "
                  f"{' + '.join(f'{t:.2f}' for t in seconds)} s (lungs + bone)")
    finally:
        unc.labeller_band = band
    return 0


def native() -> int:
    """Seconds of ct.predict, ct.uncertainty and the regions on the native chest, and the peak memory."""
    import resource

    from napari_ctorgans.infer.regions import uncertain_regions

    vol = ct.read_volume(DATA / "chest_native.nii.gz")
    t = time.perf_counter()
    ct.predict(vol)
    t_pred = time.perf_counter() - t
    t = time.perf_counter()
    u = ct.uncertainty(vol)
    t_unc = time.perf_counter() - t
    t = time.perf_counter()
    regions = uncertain_regions(u, spacing=vol.spacing)
    t_reg = time.perf_counter() - t
    print(f"chest_native {vol.shape}: predict {t_pred:.1f} s, uncertainty {t_unc:.1f} s, regions {t_reg:.2f} s "
          f"({len(regions)}), peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")
    return 0


def details(vol, ref, u, labels) -> None:
    from scipy import ndimage

    from napari_ctorgans.infer.regions import uncertain_regions

    wrong = labels != ref
    _, probs = ct.predict(vol, return_probabilities=True)  # the same grid at 3 mm
    for value in (3, 5):
        mask = labels == value
        surface = (mask ^ ndimage.binary_erosion(mask, border_value=1)) | (ndimage.binary_dilation(mask) & ~mask)
        d = ndimage.distance_transform_edt(~surface, sampling=vol.spacing)
        rates = {mm: wrong[(d >= mm - 0.1) & (d < mm + 0.1)].mean() for mm in (0.0, 3.0, 6.0)}
        near = mask | (ref == value)
        p_label = np.take_along_axis(probs, labels[None].astype(np.int64), 0)[0]
        auroc = calibration(1 - p_label, labels, ref, mask=near)["auroc"]
        print(f"  {ct.ORGANS[value].name}: wrong at 0/3/6 mm from the labeller's surface "
              + "/".join(f"{r:.1%}" for r in rates.values()) + f"; AUROC of the network's 1 - p(label) {auroc:.3f}")
    for r in uncertain_regions(u, spacing=vol.spacing)[:5]:
        box = r.box
        print(f"  region {r.rank + 1} at {r.center} score {r.score:.3f}: kidney voxels in the box, reference "
              f"{int((ref[box] == 4).sum())}, draft {int((labels[box] == 4).sum())}; wrong {wrong[box].mean():.0%}")


if __name__ == "__main__":
    raise SystemExit(main())
