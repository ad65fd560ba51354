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
from test_faults_round2_headers import FIELDS, _still_numbers  # noqa: E402


def _flips(header: bytes, suffix: str):
    for field, start in FIELDS[suffix]:
        begin = header.index(start.encode()) + len(start)
        end = header.index(b"\n", begin)
        value = header[begin:end].decode()
        for pos in range(begin, end, 2 if field == "TransformMatrix" else 1):
            for bit in (0x01, 0x04, 0x10, 0x40, 0x80):
                flipped = header[:pos] + bytes([header[pos] ^ bit]) + header[pos + 1:]
                yield _still_numbers(value, flipped[begin:end].decode("latin-1")), flipped


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
            for valid, flipped in _flips(header, suffix):
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
