"""Every single-bit flip (bits 0, 2, 4, 6, 7) of every byte of the geometry and size numbers of MetaImage and NRRD
headers written from a real CT crop: how many are refused, how many are still valid numbers (a digit turned into
another digit: no header check can see it), and how many are read although the header is damaged.

    .venv/bin/python benchmarks/eval_header_flips.py

The same flips are asserted in tests/faults/test_faults_round2_headers.py; this script only counts them.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "faults")]

import napari_ctorgans as ct  # noqa: E402
from conftest import CT_DIR  # noqa: E402
from test_faults_round2_headers import header_flips  # noqa: E402


def main() -> None:
    a = ct.read_volume(CT_DIR / "abdomen_3mm.nii.gz")
    crop = ct.Volume(a.array[40:45, 30:54, 40:70], spacing=a.spacing, origin=a.origin, direction=a.direction,
                     source_orientation=a.source_orientation)
    counts = {"refused": 0, "still valid numbers": 0, "read although damaged": 0}
    for suffix in (".mha", ".mhd", ".nrrd"):
        for compress in (True, False):
            folder = Path(tempfile.mkdtemp())
            header = ct.write_volume(folder / f"crop{suffix}", crop, compress=compress).read_bytes()
            damaged = folder / f"damaged{suffix}"
            if suffix == ".mhd":
                data = next(p for p in folder.iterdir() if p.suffix in (".raw", ".zraw"))
                (folder / data.name.replace("crop", "damaged")).write_bytes(data.read_bytes())
                header = header.replace(data.name.encode(), data.name.replace("crop", "damaged").encode())
            for _, valid, flipped in header_flips(header, suffix):
                if valid:
                    counts["still valid numbers"] += 1
                    continue
                damaged.write_bytes(flipped)
                try:
                    ct.read_volume(damaged)
                    counts["read although damaged"] += 1
                except ValueError:
                    counts["refused"] += 1
    print(counts)


if __name__ == "__main__":
    main()
