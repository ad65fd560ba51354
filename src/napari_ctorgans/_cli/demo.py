"""``ctorgans demo``: the starter model on the shipped real CT (``--train``: training on phantoms; ``--gui``:
napari)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="segment the shipped real CT with the built-in model and compare it with its reference labels",
        description="Predict the five organs of the shipped sample CT (a real abdomen) with the starter model and "
        "the automatic labellers, print the Dice table against its reference labels, and write the statistics "
        "(CSV), the report picture, a DICOM-SEG and a picture of the viewer into --out. --train runs the "
        "earlier demo instead: a small U-Net trained on phantoms (minutes to an hour on a CPU; the estimate is "
        "printed before it starts).")
    p.add_argument("--out", default="demo-output", help="folder for the outputs (default: demo-output)")
    p.add_argument("--gui", action="store_true", help="open napari with the sample and the CT Organs panel")
    p.add_argument("--train", action="store_true",
                   help="train a small 3D U-Net on phantoms and segment an unseen phantom (the cpu-quick preset)")
    p.add_argument("--iterations", type=int, default=None,
                   help="with --train (implies it): training iterations (default: the cpu-quick preset's 1600; "
                        "fewer run faster but learn less; 0 skips training)")
    p.add_argument("--seed", type=int, default=0,
                   help="with --train: the model trains on phantoms SEED..SEED+3 and segments phantom SEED+100")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.gui:
        from .._napari.demo import run_gui

        return run_gui()
    out = Path(args.out)
    if args.train or args.iterations is not None:
        from .._demo.phantom import run_phantom

        run_phantom(out, args.iterations, args.seed, picture)
    else:
        from .._demo.real import run_sample

        run_sample(out, picture)
    return 0


def picture(vol, maps: dict, out: Path, title: str) -> Path:
    """Coronal slices through every organ of each label map, with a legend: canvas screenshots of the napari viewer
    with a display (e.g. under xvfb-run; ``demo_screenshot.png``), else a matplotlib montage (``demo_montage.png``,
    not called a screenshot)."""
    from .._demo.views import montage

    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        try:
            from .._napari.demo import viewer_screenshot

            return viewer_screenshot(vol, maps, out / "demo_screenshot.png", title)
        except Exception as exc:  # fall back to the montage
            print(f"   napari screenshot unavailable ({exc}); writing a matplotlib montage instead", flush=True)
    return montage(vol, maps, out / "demo_montage.png", title)
