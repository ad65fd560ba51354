"""One flipped byte in a number of a MetaImage or NRRD header: the file is refused, naming the field, instead of
being read with its origin, spacing, direction or size silently changed. Every valid file still reads."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import napari_ctorgans as ct

# (suffix, compress, field, the text the field's value starts with in the written header)
FIELDS = {
    ".mha": [("Offset", "Offset = "), ("ElementSpacing", "ElementSpacing = "),
             ("TransformMatrix", "TransformMatrix = "), ("DimSize", "DimSize = ")],
    ".mhd": [("Offset", "Offset = "), ("DimSize", "DimSize = ")],
    ".nrrd": [("space origin", "space origin: "), ("space directions", "space directions: "),
              ("sizes", "sizes: ")],
}


@pytest.fixture(scope="module")
def crop(abdomen_3mm):
    """A real CT crop, 5 slices deep (so that a flipped DimSize/sizes digit 5 -> 4 leaves bytes over)."""
    a = abdomen_3mm
    return ct.Volume(a.array[40:45, 30:54, 40:70], spacing=a.spacing, origin=a.origin, direction=a.direction,
                     source_orientation=a.source_orientation)


def _still_numbers(old: str, new: str) -> bool:
    """Whether a flipped value is still a list of the same count of plain numbers (no header check can see it)."""
    if not new.isascii():
        return False
    split = lambda v: [t for t in re.split(r"[\s(),]+", v) if t]  # noqa: E731
    if len(split(old)) != len(split(new)) or re.sub(r"[^\s(),]", "", old) != re.sub(r"[^\s(),]", "", new):
        return False
    return all(re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", t) for t in split(new))


def header_flips(header: bytes, suffix: str):
    """Every single-bit flip (5 bits per byte) of the numbers of the :data:`FIELDS` of ``header``, as
    ``(field, still_valid_numbers, flipped_header)``."""
    for field, start in FIELDS[suffix]:
        begin = header.index(start.encode()) + len(start)
        end = header.index(b"\n", begin)
        value = header[begin:end].decode()
        for pos in range(begin, end, 2 if field == "TransformMatrix" else 1):
            for bit in (0x01, 0x04, 0x10, 0x40, 0x80):
                flipped = header[:pos] + bytes([header[pos] ^ bit]) + header[pos + 1:]
                yield field, _still_numbers(value, flipped[begin:end].decode("latin-1")), flipped


@pytest.mark.parametrize("suffix", [".mha", ".mhd", ".nrrd"])
@pytest.mark.parametrize("compress", [True, False])
def test_every_flip_of_a_header_number_is_refused_naming_the_field(tmp_path, crop, suffix, compress):
    path = ct.write_volume(tmp_path / f"crop{suffix}", crop, compress=compress)
    back = ct.read_volume(path)  # the valid file reads, whole and in place
    assert np.array_equal(back.array, crop.array) and back.same_grid(crop)
    header = path.read_bytes()
    damaged = tmp_path / f"damaged{suffix}"
    if suffix == ".mhd":
        data = next(p for p in tmp_path.iterdir() if p.suffix in (".raw", ".zraw"))
        (tmp_path / data.name.replace("crop", "damaged")).write_bytes(data.read_bytes())
        header = header.replace(data.name.encode(), data.name.replace("crop", "damaged").encode())
    refused = 0
    for field, valid, flipped in header_flips(header, suffix):
        if valid:
            continue  # e.g. a digit into another digit: no header check can see it
        damaged.write_bytes(flipped)
        with pytest.raises(ValueError) as err:
            ct.read_volume(damaged)
        message = str(err.value)
        assert message.startswith(f"cannot read {damaged}: "), message
        assert f"({field})" in message or f"field {field} " in message or "bytes of voxel data" in message, message
        refused += 1
    assert refused > 50


def test_the_reported_flips_are_refused(tmp_path, crop):
    """The two bytes of the report: ``Offset = -1..`` -> ``-\\xCE..`` in an .mha, ``-16.`` -> ``-16\\xBB`` in .nrrd."""
    mha = ct.write_volume(tmp_path / "crop.mha", crop)
    text = mha.read_bytes()
    i = text.index(b"Offset = -") + len(b"Offset = -")
    (tmp_path / "bad.mha").write_bytes(text[:i] + b"\xce" + text[i + 1:])
    with pytest.raises(ValueError, match=r"header line \d+ \(Offset\) holds a byte that is not ASCII"):
        ct.read_volume(tmp_path / "bad.mha")
    nrrd = ct.write_volume(tmp_path / "crop.nrrd", crop)
    text = nrrd.read_bytes()
    i = text.index(b"space origin: (") + len(b"space origin: (") + 3
    (tmp_path / "bad.nrrd").write_bytes(text[:i] + b"\xbb" + text[i + 1:])
    with pytest.raises(ValueError, match=r"header line \d+ \(space origin\) holds a byte that is not ASCII"):
        ct.read_volume(tmp_path / "bad.nrrd")


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_a_header_field_of_the_wrong_count_or_kind_is_refused(tmp_path, crop, suffix):
    path = ct.write_volume(tmp_path / f"crop{suffix}", crop)
    text = path.read_bytes()
    cases = {
        ".mha": [(b"NDims = 3", b"NDims = 4", "field DimSize holds 3 values"),
                 (b"ElementType = MET_INT", b"ElementType = MET_INU", "field ElementType is 'MET_INU'"),
                 (b"ElementSpacing = 3 3 3", b"ElementSpacing = 3 3 nan", "field ElementSpacing holds 'nan'"),
                 (b"ElementSpacing = 3 3 3", b"ElementSpacing = 3 3 0", "not a positive finite number")],
        ".nrrd": [(b"dimension: 3", b"dimension: 2", "field sizes holds 3 values"),
                  (b"type: int", b"type: inu", "field type is 'inu'"),
                  (b"encoding: gzip", b"encoding: gzip2", "field encoding is 'gzip2'"),
                  (b"space directions: (", b"space directions: ((", "which is not a list of vectors")],
    }[suffix]
    for old, new, expected in cases:
        assert old in text
        (tmp_path / f"bad{suffix}").write_bytes(text.replace(old, new, 1))
        with pytest.raises(ValueError, match=re.escape(expected)):
            ct.read_volume(tmp_path / f"bad{suffix}")


def test_label_maps_in_every_header_format_round_trip(tmp_path, crop, abdomen_3mm_labels):
    labels = abdomen_3mm_labels.array[40:45, 30:54, 40:70]
    for name in ("l.mha", "l.mhd", "l.nrrd", "u.mha", "u.nrrd"):
        path = ct.write_labels(tmp_path / name, labels, like=crop, compress=name[0] == "l")
        back = ct.read_labels(path)
        assert np.array_equal(back.array, labels) and back.same_grid(crop), name
    assert Path(tmp_path / "l.zraw").is_file() and not list(tmp_path.glob(".ctorgans-*"))
