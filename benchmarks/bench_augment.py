"""Speed of the augmentation pipeline against the paper's CPU baseline (SciPy) and peers.

Usage::

    python benchmarks/bench_augment.py [--repeats 7] [--threads N]

Cases: a 160 x 120 x 120 (z, y, x) crop, i.e. the paper's 120 x 120 x 160 network input, and the whole
``ct/abdomen_3mm.nii.gz``. Every method runs the same parameters: rotation, scaling, shear, reflection,
displacement, image trilinear + labels nearest, occlusion slab, additive Gaussian noise and window. Methods are
interleaved (one call of each per round) so that load from other processes hits them alike; the table shows the
median and the best time per volume, voxels per second, the ratio to the SciPy baseline (median / median) and to a
memory-bandwidth floor (numpy copy of the bytes read and written).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans.augment import AugmentParams, augment, draw_transform

OURS = "ctorgans cpu (all threads)"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct"


def scipy_baseline(img, lab, params, seed, out_shape):
    """The paper's CPU version: two affine_transform calls, then occlusion, numpy noise and window."""
    d = draw_transform(params, seed, img.shape, out_shape)
    ri = ndi.affine_transform(
        img, d["matrix"], d["offset"], output_shape=out_shape, order=1, mode="grid-constant", cval=-1024.0
    )
    rl = ndi.affine_transform(lab, d["matrix"], d["offset"], output_shape=out_shape, order=0, mode="grid-constant")
    if d["occlusion"] is not None:
        z = np.arange(out_shape[0])
        z0, z1 = d["occlusion"]
        ri[(z >= z0) & (z <= z1)] = 0.0
    ri += np.random.default_rng(seed).normal(0.0, d["noise_sigma"], ri.shape).astype(np.float32)
    a, b = d["window"]
    np.clip((ri - a) / (b - a), 0.0, 1.0, out=ri)
    return ri, rl


def make_monai(params, out_shape):
    import torch
    from monai.transforms import RandAffined

    t = RandAffined(
        keys=("image", "label"),
        prob=1.0,
        spatial_size=out_shape,
        rotate_range=[np.deg2rad(r[1]) for r in params.rotation_deg],
        shear_range=[params.shear[1]] * 6,
        translate_range=[r[1] for r in params.displacement],
        scale_range=[r[1] - 1.0 for r in params.scale],
        mode=("bilinear", "nearest"),
        padding_mode="zeros",
    )
    t.set_random_state(0)

    def run(img, lab):
        out = t({"image": torch.from_numpy(img)[None], "label": torch.from_numpy(lab)[None]})
        return out["image"], out["label"]

    return run


def make_torchio(params, out_shape):
    import torch
    import torchio as tio

    tr = tio.Compose(
        [
            tio.RandomAffine(
                scales=params.scale[0], degrees=params.rotation_deg[0][1], translation=params.displacement[0][1]
            ),
            tio.CropOrPad(out_shape),
        ]
    )

    def run(img, lab):
        subj = tio.Subject(
            image=tio.ScalarImage(tensor=torch.from_numpy(img)[None]),
            label=tio.LabelMap(tensor=torch.from_numpy(lab)[None]),
        )
        out = tr(subj)
        return out["image"].data, out["label"].data

    return run


def bench(case, img, lab, params, out_shape, repeats):
    n_out = int(np.prod(out_shape))
    src_bytes = img.nbytes + lab.nbytes
    dst = np.empty(n_out * 5, np.uint8)
    src = np.resize(np.frombuffer(img.tobytes() + lab.tobytes(), np.uint8), max(src_bytes, n_out * 5))

    import numba

    def ours(p, threads):
        def run(s):
            numba.set_num_threads(threads)
            try:
                return augment(img, lab, p, seed=s, backend="cpu", out_shape=out_shape)
            finally:
                numba.set_num_threads(all_threads)

        return run

    all_threads = numba.get_num_threads()
    elastic = AugmentParams(**{**params.to_dict(), "elastic_magnitude": 4.0})
    methods = {
        "scipy (paper CPU baseline)": lambda s: scipy_baseline(img, lab, params, s, out_shape),
        OURS: ours(params, all_threads),
        "ctorgans cpu, 1 thread": ours(params, 1),
        "ctorgans cpu + elastic": ours(elastic, all_threads),
        "memory floor (numpy copy)": lambda s: np.copyto(dst, src[: dst.size]),
    }
    try:
        monai = make_monai(params, out_shape)
        methods["MONAI RandAffined (no noise)"] = lambda s: monai(img, lab)
    except ImportError:
        pass
    try:
        tio_run = make_torchio(params, out_shape)
        methods["TorchIO RandomAffine (no noise)"] = lambda s: tio_run(img, lab)
    except ImportError:
        pass
    times: dict[str, list[float]] = {k: [] for k in methods}
    for name, f in methods.items():  # warm-up: JIT compilation, caches
        f(0)
    for r in range(repeats):
        for name, f in methods.items():
            t0 = time.perf_counter()
            f(r + 1)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["scipy (paper CPU baseline)"]
    floor = med["memory floor (numpy copy)"]
    print(f"\n### {case}: output {out_shape[0]} x {out_shape[1]} x {out_shape[2]} (z, y, x), {n_out / 1e6:.2f} Mvoxels")
    print("| method | median ms/volume | best ms | Mvoxels/s | speed-up vs scipy | x memory floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, v in times.items():
        print(
            f"| {k} | {med[k] * 1e3:.1f} | {min(v) * 1e3:.1f} | {n_out / med[k] / 1e6:.1f} | "
            f"{base / med[k]:.1f} | {med[k] / floor:.1f} |"
        )
    return base / med[OURS], base / med["ctorgans cpu, 1 thread"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    args = parser.parse_args(argv)
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    path = DATA / "abdomen_3mm.nii.gz"
    if not path.exists():
        print(f"data missing: {path}", file=sys.stderr)
        return 1
    img = ct.read_volume(path).array.astype(np.float32)
    lab = np.asarray(ct.read_labels(DATA / "abdomen_3mm_ctorg.nii.gz").array, dtype=np.uint8)
    params = AugmentParams(elastic_magnitude=0.0)
    print(f"numba threads: {numba.get_num_threads()}; input {img.shape} float32 HU + uint8 labels")
    r1 = bench("crop (paper input size)", img, lab, params, (160, 120, 120), args.repeats)
    r2 = bench("whole abdomen_3mm", img, lab, params, img.shape, args.repeats)
    print(
        f"\nctorgans cpu vs scipy: {r1[0]:.1f}x (crop), {r2[0]:.1f}x (whole volume) on all threads; "
        f"{r1[1]:.1f}x and {r2[1]:.1f}x on 1 thread (scipy is single-threaded); target >= 8x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
