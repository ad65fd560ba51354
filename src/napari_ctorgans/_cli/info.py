"""``ctorgans info``: versions, devices, and what a CT file holds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions and devices, or describe a CT file or DICOM folder")
    p.add_argument("path", nargs="?", help="a CT file or DICOM folder to describe")
    from ._args import add_resample_irregular, add_series

    add_series(p, "PATH")

    add_resample_irregular(p)
    p.set_defaults(func=run)


def device_report() -> list[str]:
    """Which compute devices are usable, and why not when they are not."""
    lines = []
    try:
        import torch

        if torch.cuda.is_available():
            lines.append(f"torch {torch.__version__}: CUDA device {torch.cuda.get_device_name(0)}")
        else:
            lines.append(f"torch {torch.__version__}: no CUDA device (CPU build or no GPU/driver); using the CPU")
    except ImportError:
        lines.append("torch: not installed (needed for training and prediction)")
    try:
        import numba

        lines.append(f"numba {numba.__version__}: {numba.config.NUMBA_NUM_THREADS} CPU threads")
    except ImportError:
        lines.append("numba: not installed")
    return lines


def organ_counts(labels) -> list[tuple[int, str, int]]:
    """``(value, name, voxels)`` of every label value present in a label map except background, by value."""
    import numpy as np

    from ..stats import organ_name

    arr = np.asarray(labels)
    counts = np.bincount(arr.ravel().astype(np.int64, copy=False)) if arr.size else np.zeros(1, np.int64)
    return [(v, organ_name(v), int(n)) for v, n in enumerate(counts) if v and n]


def organ_summary(labels, voxel_ml: float) -> str:
    """One line naming each organ of a label map with its voxels and millilitres (the label/predict summary)."""
    rows = organ_counts(labels)
    return ", ".join(f"{name} {n} voxels, {n * voxel_ml:.1f} mL" for _, name, n in rows) or "no organ found"


def _is_label_map(arr) -> bool:
    """Integers that are all organ values (or the ignore value): a label map, not a CT."""
    import numpy as np

    from ..organs import IGNORE_LABEL, ORGANS

    if arr.dtype.kind not in "iu" or arr.size == 0 or arr.min() < 0 or arr.max() > IGNORE_LABEL:
        return False
    present = np.flatnonzero(np.bincount(arr.ravel().astype(np.int64, copy=False)))
    return all(int(v) in ORGANS or int(v) == IGNORE_LABEL for v in present)


def _xyz(values, digits: int) -> str:
    return "(" + ", ".join(f"{v:.{digits}f}" for v in tuple(values)[::-1]) + ")"


def describe(vol, path) -> list[str]:
    """The lines ``ctorgans info PATH`` prints: grid in the (x, y, z) order viewers use, then values or organs."""
    import numpy as np

    arr = vol.array
    z, y, x = vol.shape
    lines = [
        f"{path}",
        f"  size (x, y, z):    {x} x {y} x {z} voxels  (array shape (z, y, x): {vol.shape})   dtype: {arr.dtype}",
        f"  spacing (x, y, z): {_xyz(vol.spacing, 4)} mm",
        f"  origin (x, y, z):  {_xyz(vol.origin, 2)} mm (LPS: x to the patient's left, y posterior, z superior)",
        f"  orientation:       {vol.source_orientation} in the file (held in memory as LPS, axis 0 "
        "inferior->superior)",
    ]
    if _is_label_map(arr):
        ml = vol.voxel_volume_ml
        lines.append("  label map:         " + (f"{len(organ_counts(arr))} organ(s)" if organ_counts(arr) else
                                                  "no organ (all background)"))
        lines += [f"    {v:>3} {name:<12} {n:>10} voxels {n * ml:>10.1f} mL" for v, name, n in organ_counts(arr)]
    else:
        lines.append(f"  values:            min {arr.min()}  max {arr.max()}  mean {float(np.mean(arr)):.1f}")
    if "dicom_series" in vol.metadata:
        uid = vol.metadata["dicom_series"]
        files = vol.metadata.get("dicom_files")
        n = len(files) if isinstance(files, (list, tuple)) else files
        shown = f"SeriesInstanceUID {uid}" if uid else "their SeriesInstanceUID tag is empty"
        lines.append(f"  DICOM series:      {n} files, {shown}")
    return lines


def run(args: argparse.Namespace) -> int:
    from .. import __version__

    if not args.path:
        print(f"napari-ctorgans {__version__}")
        for line in device_report():
            print(line)
        return 0
    from ..io import read_volume

    vol = read_volume(args.path, series=args.series, resample_irregular=args.resample_irregular)
    print("\n".join(describe(vol, args.path)))
    return 0
