"""``ctorgans info``: versions, devices, and what a CT file holds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions and devices, or describe a CT file or DICOM folder")
    p.add_argument("path", nargs="?", help="a CT file or DICOM folder to describe")
    p.add_argument("--series", help="DICOM series UID when a folder holds several")
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


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from .. import __version__

    if not args.path:
        print(f"napari-ctorgans {__version__}")
        for line in device_report():
            print(line)
        return 0
    from ..io import read_volume

    vol = read_volume(args.path, series=args.series)
    arr = vol.array
    print(f"{args.path}")
    print(f"  shape (z, y, x): {vol.shape}   dtype: {arr.dtype}")
    print(f"  spacing (mm):    {tuple(round(s, 4) for s in vol.spacing)}")
    print(f"  origin (mm):     {tuple(round(o, 2) for o in vol.origin)}")
    print(f"  orientation:     {vol.source_orientation} (held in memory as LPS, axis 0 inferior->superior)")
    print(f"  values:          min {arr.min()}  max {arr.max()}  mean {float(np.mean(arr)):.1f}")
    if "dicom_series" in vol.metadata:
        resampled = ", resampled onto an even grid" if vol.metadata.get("dicom_resampled") else ""
        print(f"  DICOM series:    {vol.metadata['dicom_series']!r} ({len(vol.metadata['dicom_files'])} files{resampled})")
    return 0
