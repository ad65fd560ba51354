"""``ctorgans demo --train``: the automatic labels and a small U-Net trained on phantoms (the earlier demo)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from .real import step


def _row(r) -> dict:
    return r if isinstance(r, dict) else r.to_dict() if hasattr(r, "to_dict") else vars(r)


def _train(config, cases, iterations: int) -> None:
    import napari_ctorgans as ct
    from .._napari.train_estimate import estimate_text, step_seconds  # Qt-free: the Train tab's estimate

    print(f"   {estimate_text(config, step_seconds(config))}", flush=True)
    every = max(1, min(100, iterations // 20))
    for status in ct.train(config, cases, overwrite=True):  # the demo's own folder: start afresh
        if status.iteration % every == 0 or status.iteration == iterations:
            print(f"   iteration {status.iteration:4d}  loss {status.loss:.4f}", flush=True)
    lock = Path(config.output_dir) / ".train.lock"  # released when the run closed; the file itself goes too
    lock.unlink(missing_ok=True)


def run_phantom(out: Path, iterations: int | None, seed: int, picture: Callable) -> dict:
    """Label phantom ``seed + 100``; with iterations > 0, train the cpu-quick preset on phantoms seed..seed+3 and
    predict it (the calls of the long test that asserts Dice >= 0.90 for every organ)."""
    import napari_ctorgans as ct

    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"outputs": {}}
    t = step("phantom")
    vol, truth = ct.make_phantom(seed=seed + 100)  # the scan the trained model segments; never trained on
    ct.write_volume(out / "phantom_ct.nii.gz", vol, overwrite=True)
    ct.write_labels(out / "phantom_truth.nii.gz", truth, like=vol, overwrite=True)
    summary["outputs"]["ct"] = str(out / "phantom_ct.nii.gz")
    print(f"   {vol}  ({time.perf_counter() - t:.1f} s)")
    t = step("automatic labels (lungs, bone)")
    auto = ct.auto_label(vol)
    ct.write_labels(out / "auto_labels.nii.gz", auto, like=vol, overwrite=True)
    summary["auto_label"] = [_row(r) for r in ct.metrics.evaluate(auto, truth, spacing=vol.spacing, organs=[3, 5])]
    for r in summary["auto_label"]:
        print(f"   {r['organ']:>8}: Dice {r['dice']:.3f}  ASSD {r['assd']:.2f} mm")
    print(f"   ({time.perf_counter() - t:.1f} s)")
    pred = None
    iterations = ct.TrainConfig.preset("cpu-quick").iterations if iterations is None else iterations
    if iterations > 0:
        t = step(f"train a small 3D U-Net for {iterations} iterations on four other phantoms (CPU)")
        config = ct.TrainConfig.preset("cpu-quick", iterations=iterations, output_dir=str(out / "training"),
                                       seed=seed, validate_every=iterations + 1)
        _train(config, [ct.make_phantom(seed=s) for s in range(seed, seed + 4)], iterations)
        print(f"   ({time.perf_counter() - t:.1f} s)")
        t = step("sliding-window prediction")
        pred = ct.predict(vol, Path(config.output_dir) / "last.pt")  # the long test's call
        ct.write_labels(out / "predicted_labels.nii.gz", pred, like=vol, overwrite=True)
        summary["prediction"] = [_row(r) for r in ct.metrics.evaluate(pred, truth, spacing=vol.spacing)]
        for r in summary["prediction"]:
            print(f"   {r['organ']:>8}: Dice {r['dice']:.3f}")
        print(f"   ({time.perf_counter() - t:.1f} s)")
    t = step("picture (coronal slices through every organ)")
    maps = {"automatic labels" if pred is None else "predicted": auto if pred is None else pred, "truth": truth}
    png = picture(vol, maps, out, "phantom")
    summary["outputs"]["picture"] = str(png)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"outputs written to {out.resolve()} ({Path(png).name}, summary.json)")
    return summary
