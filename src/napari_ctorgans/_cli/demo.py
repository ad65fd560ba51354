"""``ctorgans demo``: the whole loop on the built-in phantom, headless by default (``--gui`` opens napari)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the automatic labellers, training and prediction on the built-in phantom")
    p.add_argument("--out", default="demo-output", help="folder for the outputs (default: demo-output)")
    p.add_argument("--gui", action="store_true", help="open napari with the sample and the CT Organs panel")
    p.add_argument("--iterations", type=int, default=None,
                   help="training iterations of the small model (default: the cpu-quick preset's 1600; "
                        "fewer run faster but learn less; 0 skips training)")
    p.add_argument("--seed", type=int, default=0,
                   help="the model trains on phantoms SEED..SEED+3 and segments phantom SEED+100, which it never saw")
    p.set_defaults(func=run)


def _step(title: str):
    print(f"== {title}", flush=True)
    return time.perf_counter()


def run(args: argparse.Namespace) -> int:
    if args.gui:
        return _run_gui()
    import numpy as np

    import napari_ctorgans as ct

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"outputs": {}}

    t = _step("phantom")
    vol, truth = ct.make_phantom(seed=args.seed + 100)  # the scan the trained model segments; never trained on
    ct.write_volume(out / "phantom_ct.nii.gz", vol, overwrite=True)
    ct.write_labels(out / "phantom_truth.nii.gz", truth, like=vol, overwrite=True)
    summary["outputs"]["ct"] = str(out / "phantom_ct.nii.gz")
    print(f"   {vol}  ({time.perf_counter() - t:.1f} s)")

    t = _step("automatic labels (lungs, bone)")
    auto = ct.auto_label(vol)
    ct.write_labels(out / "auto_labels.nii.gz", auto, like=vol, overwrite=True)
    rows = ct.metrics.evaluate(auto, truth, spacing=vol.spacing, organs=[3, 5])
    summary["auto_label"] = [_row(r) for r in rows]
    for r in summary["auto_label"]:
        print(f"   {r['organ']:>8}: Dice {r['dice']:.3f}  ASSD {r['assd']:.2f} mm")
    print(f"   ({time.perf_counter() - t:.1f} s)")

    pred = None
    iterations = ct.TrainConfig.preset("cpu-quick").iterations if args.iterations is None else args.iterations
    if iterations > 0:
        t = _step(f"train a small 3D U-Net for {iterations} iterations on four other phantoms (CPU)")
        cases = [ct.make_phantom(seed=s) for s in range(args.seed, args.seed + 4)]
        config = ct.TrainConfig.preset(
            "cpu-quick", iterations=iterations, output_dir=str(out / "training"), seed=args.seed,
            validate_every=iterations + 1,
        )
        status = None
        for status in ct.train(config, cases, overwrite=True):  # the demo's own folder: start afresh
            if status.iteration % 100 == 0 or status.iteration == iterations:
                print(f"   iteration {status.iteration:4d}  loss {status.loss:.4f}", flush=True)
        print(f"   ({time.perf_counter() - t:.1f} s)")
        ckpt = Path(config.output_dir) / "last.pt"
        t = _step("sliding-window prediction")
        pred = ct.predict(vol, ckpt)  # the call of the CI test that asserts Dice >= 0.90 for every organ
        ct.write_labels(out / "predicted_labels.nii.gz", pred, like=vol, overwrite=True)
        rows = ct.metrics.evaluate(pred, truth, spacing=vol.spacing)
        summary["prediction"] = [_row(r) for r in rows]
        for r in summary["prediction"]:
            print(f"   {r['organ']:>8}: Dice {r['dice']:.3f}")
        print(f"   ({time.perf_counter() - t:.1f} s)")

    t = _step("picture (coronal and axial views)")
    png = _screenshot(vol, auto if pred is None else pred, out)
    summary["outputs"]["picture"] = str(png)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"outputs written to {out.resolve()} ({png.name}, summary.json)")
    return 0


def _row(r) -> dict:
    return r if isinstance(r, dict) else r.to_dict() if hasattr(r, "to_dict") else vars(r)


def _screenshot(vol, labels, out: Path) -> Path:
    """A coronal and an axial view of the CT with its labels in the organ colours: a napari screenshot with a
    display (e.g. under xvfb-run), else a matplotlib montage (``demo_montage.png``, not called a screenshot)."""
    import os

    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        try:
            from .._napari.demo import viewer_screenshot

            png = out / "demo_screenshot.png"
            viewer_screenshot(vol, labels, png)
            return png
        except Exception as exc:  # fall back to the montage
            print(f"   napari screenshot unavailable ({exc}); writing a montage of two slices instead")
    png = out / "demo_montage.png"
    _montage(vol, labels, png)
    return png


def best_slices(labels) -> tuple[int, int]:
    """(coronal y, axial z) slices that show the most organs (then the most labelled voxels)."""
    import numpy as np

    def pick(slices):
        scores = [(len(np.unique(sl)), int(np.count_nonzero(sl))) for sl in slices]
        return max(range(len(scores)), key=lambda i: scores[i])

    labels = np.asarray(labels)
    y = pick(labels[:, i, :] for i in range(labels.shape[1]))
    z = pick(labels[i] for i in range(labels.shape[0]))
    return y, z


def _montage(vol, labels, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    from ..organs import ORGANS

    colours = np.zeros((256, 4))
    for value, organ in ORGANS.items():
        colours[value] = organ.color if value else (0, 0, 0, 0)
    cmap = ListedColormap(colours)
    y, z = best_slices(labels)
    sz, sy, sx = vol.spacing
    fig, axes = plt.subplots(1, 2, figsize=(12, 6))
    views = (
        ("coronal", vol.array[:, y, :], labels[:, y, :], "lower", (sx, sz)),  # head up
        ("axial", vol.array[z], labels[z], "upper", (sx, sy)),
    )
    for ax, (name, img, lab, origin, (w, h)) in zip(axes, views):
        ax.imshow(np.clip(img, -160, 240), cmap="gray", origin=origin, aspect=h / w)
        ax.imshow(lab.astype(np.uint8), cmap=cmap, vmin=0, vmax=255, alpha=0.6, origin=origin, aspect=h / w,
                  interpolation="nearest")
        ax.set_title(f"{name} slice")
        ax.axis("off")
    present = [int(v) for v in np.unique(labels) if int(v) in ORGANS and v]
    handles = [plt.Rectangle((0, 0), 1, 1, color=ORGANS[v].color) for v in present]
    fig.legend(handles, [ORGANS[v].name for v in present], loc="lower center", ncol=len(present), frameon=False)
    fig.savefig(png, dpi=80, bbox_inches="tight")
    plt.close(fig)


def _run_gui() -> int:
    from .._napari.demo import run_gui

    return run_gui()
