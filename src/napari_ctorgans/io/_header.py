"""Strict parsing of the text headers of MetaImage (``.mha``, ``.mhd``) and NRRD (``.nrrd``, ``.nhdr``) files.

ITK reads a header number with C's ``atof``, which stops at the first byte it does not expect: one flipped byte
turns ``Offset = -164.5`` into ``-\\xce64.5``, read as ``-0`` (the volume moves by 164.5 mm without a word). These
parsers accept only what the formats define: ASCII text, every number a whole valid number, every field with the
count of values its dimension asks for, known element types and encodings. Anything else raises
:class:`~._errors.Damaged` naming the field, so that the reader refuses the file instead of misplacing it.
"""

from __future__ import annotations

import math
import re
from typing import BinaryIO

from ._errors import Damaged

_FLOAT = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_FLOAT_RE = re.compile(_FLOAT)
_INT_RE = re.compile(r"[+-]?\d+")
_VECTOR_RE = re.compile(r"\(([^()]*)\)")
_VECTORS_RE = re.compile(r"\s*(?:(?:\([^()]*\)|none)\s*)+")
_PRINTABLE = re.compile(rb"[\x20-\x7e\t]*")
MAX_LINES = 4096

META_ITEMSIZE = {"MET_UCHAR": 1, "MET_CHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
                 "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
                 "MET_DOUBLE": 8}
NRRD_ITEMSIZE = {
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t", "signed char", "int8", "int8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t", "ushort",
                     "unsigned short", "unsigned short int", "uint16", "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t",
                     "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t", "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}
NRRD_ENCODINGS = ("raw", "gzip", "gz", "bzip2", "bz2", "ascii", "text", "txt", "hex")


def _text(line: bytes, number: int) -> str:
    """One header line as text: printable ASCII (and tabs) only."""
    body = line.rstrip(b"\r\n")
    if _PRINTABLE.fullmatch(body) is None:
        key = re.split(rb"[=:]", body, maxsplit=1)[0].strip().decode("ascii", "backslashreplace")
        shown = body[:80].decode("ascii", "backslashreplace")
        raise Damaged(f"its header line {number} ({key}) holds a byte that is not ASCII text: '{shown}'")
    return body.decode("ascii")


def _numbers(name: str, value: str, count: int | None, *, integer: bool = False, positive: bool = False,
             nan_ok: bool = False) -> list[float]:
    """The numbers of one field, each a whole valid number; ``count`` of them when given."""
    tokens = value.split()
    if count is not None and len(tokens) != count:
        raise Damaged(f"its header field {name} holds {len(tokens)} values ({value!r}) where {count} are needed")
    out = []
    for token in tokens:
        if nan_ok and token.lower() == "nan":
            out.append(math.nan)
            continue
        pattern = _INT_RE if integer else _FLOAT_RE
        if pattern.fullmatch(token) is None:
            kind = "an integer" if integer else "a number"
            raise Damaged(f"its header field {name} holds {token!r}, which is not {kind} ({name} = {value!r})")
        number = int(token) if integer else float(token)
        if not math.isfinite(number) or (positive and number <= 0):
            raise Damaged(f"its header field {name} holds {token!r}, which is not a "
                          f"{'positive ' if positive else ''}finite number ({name} = {value!r})")
        out.append(number)
    return out


def _one_int(name: str, value: str, lo: int) -> int:
    (number,) = _numbers(name, value, 1, integer=True)
    if number < lo:
        raise Damaged(f"its header field {name} is {value!r}; it must be at least {lo}")
    return int(number)


def _choice(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise Damaged(f"its header field {name} is {value!r}, not one of {', '.join(sorted(allowed))}")
    return value


# ------------------------------------------------------------------------------------------------ MetaImage

_META_BOOL = ("BinaryData", "BinaryDataByteOrderMSB", "ElementByteOrderMSB", "CompressedData")
_META_VECTORS = {"ElementSpacing": 1, "ElementSize": 1, "Offset": 1, "Position": 1, "Origin": 1,
                 "CenterOfRotation": 1, "TransformMatrix": 2, "Rotation": 2, "Orientation": 2}


def read_meta_header(fh: BinaryIO) -> tuple[dict[str, str], int]:
    """The fields of a MetaImage header (keys in lower case) and the byte offset just after it."""
    raw: dict[str, str] = {}
    offset = 0
    for number in range(1, MAX_LINES + 1):
        line = fh.readline(1 << 16)
        if not line:
            break
        offset += len(line)
        text = _text(line, number)
        if not text.strip():
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise Damaged(f"its header line {number} is not 'Field = value': {text[:80]!r}")
        raw[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            _check_meta(raw)
            return {k.lower(): v for k, v in raw.items()}, offset
    raise Damaged("its header has no ElementDataFile line (the file was cut off inside the header, or the line "
                  "is damaged, or it is not a MetaImage)")


def _check_meta(raw: dict[str, str]) -> None:
    if "NDims" not in raw or "DimSize" not in raw:
        raise Damaged(f"its header has no {'NDims' if 'NDims' not in raw else 'DimSize'} field")
    ndims = _one_int("NDims", raw["NDims"], 1)
    _numbers("DimSize", raw["DimSize"], ndims, integer=True, positive=True)
    for name, power in _META_VECTORS.items():
        if name in raw:
            _numbers(name, raw[name], ndims**power, positive=name in ("ElementSpacing", "ElementSize"))
    for name in _META_BOOL:
        if name in raw:
            _choice(name, raw[name].lower(), ("true", "false"))
    if "ElementType" not in raw:
        raise Damaged("its header has no ElementType field")
    _choice("ElementType", raw["ElementType"], META_ITEMSIZE)
    if "ObjectType" in raw:
        _choice("ObjectType", raw["ObjectType"], ("Image",))
    for name, lo in (("ElementNumberOfChannels", 1), ("CompressedDataSize", 0), ("HeaderSize", -1)):
        if name in raw:
            _one_int(name, raw[name], lo)
    orientation = raw.get("AnatomicalOrientation")
    if orientation is not None and re.fullmatch(f"[RLAPSI?]{{{ndims}}}", orientation) is None:
        raise Damaged(f"its header field AnatomicalOrientation is {orientation!r}, not {ndims} of the letters "
                      "R, L, A, P, S, I")
    if not raw["ElementDataFile"]:
        raise Damaged("its header field ElementDataFile is empty")


# ----------------------------------------------------------------------------------------------------- NRRD

_NRRD_SPACES = {**dict.fromkeys(("right-anterior-superior", "ras", "left-anterior-superior", "las",
                                 "left-posterior-superior", "lps", "scanner-xyz", "3d-right-handed",
                                 "3d-left-handed"), 3),
                **dict.fromkeys(("right-anterior-superior-time", "rast", "left-anterior-superior-time", "last",
                                 "left-posterior-superior-time", "lpst", "scanner-xyz-time", "3d-right-handed-time",
                                 "3d-left-handed-time"), 4)}
_NRRD_PER_AXIS = ("spacings", "thicknesses", "axis mins", "axismins", "axis maxs", "axismaxs")
_NRRD_WORDS = ("kinds", "centers", "centerings")
_NRRD_FIELDS = {"dimension", "type", "encoding", "endian", "content", "min", "max", "oldmin", "old min", "oldmax",
                "old max", "datafile", "data file", "lineskip", "line skip", "byteskip", "byte skip", "sampleunits",
                "sample units", "sizes", "labels", "units", "space", "space dimension", "space units",
                "space origin", "space directions", "measurement frame", "number", *_NRRD_PER_AXIS, *_NRRD_WORDS}


def read_nrrd_header(fh: BinaryIO, *, detached: bool = False) -> tuple[dict[str, str], int]:
    """The fields of a NRRD header (names in lower case) and the byte offset of the data after its blank line.

    A detached header (``.nhdr``) may end at the end of the file.
    """
    first = fh.readline(64)
    if re.fullmatch(rb"NRRD000[1-5]\r?\n", first) is None:
        raise Damaged(f"its first line is {first[:16]!r}, not the NRRD magic 'NRRD0001' to 'NRRD0005'")
    fields: dict[str, str] = {}
    offset = len(first)
    for number in range(2, MAX_LINES + 1):
        line = fh.readline(1 << 16)
        offset += len(line)
        if not line and detached:
            break
        if not line:
            raise Damaged("its header has no end (the file was cut off inside the header)")
        text = _text(line, number)
        if not text.strip():
            break
        if text.startswith("#"):
            continue
        if ":=" in text:  # a key/value pair: free text
            continue
        name, sep, value = text.partition(": ")
        if not sep or name.lower() not in _NRRD_FIELDS:
            raise Damaged(f"its header line {number} is not a NRRD field ('name: value'): {text[:80]!r}")
        fields[name.lower()] = value.strip()
    else:
        raise Damaged("its header has no end (the file was cut off inside the header)")
    _check_nrrd(fields)
    return fields, offset


def _vector_tokens(name: str, value: str) -> list[str]:
    """The vectors ``(x,y,z)`` (or ``none``) of a field, refusing anything between or around them."""
    if _VECTORS_RE.fullmatch(value) is None:
        raise Damaged(f"its header field {name} is {value!r}, which is not a list of vectors '(x,y,z)'")
    return re.findall(r"\([^()]*\)|none", value)


def _nrrd_vector(name: str, token: str, size: int) -> list[float]:
    match = _VECTOR_RE.fullmatch(token)
    if match is None:
        raise Damaged(f"its header field {name} holds {token!r}, which is not a vector '(x,y,z)'")
    parts = match.group(1).split(",")
    if any(not p.strip() for p in parts):
        raise Damaged(f"its header field {name} holds {token!r}, which is not a vector '(x,y,z)'")
    return _numbers(name, " ".join(p.strip() for p in parts), size)


def _check_nrrd(fields: dict[str, str]) -> None:
    for name in ("type", "dimension", "sizes", "encoding"):
        if name not in fields:
            raise Damaged(f"its header has no {name} field")
    dim = _one_int("dimension", fields["dimension"], 1)
    _numbers("sizes", fields["sizes"], dim, integer=True, positive=True)
    itemsize = NRRD_ITEMSIZE[_choice("type", fields["type"], NRRD_ITEMSIZE)]
    _choice("encoding", fields["encoding"], NRRD_ENCODINGS)
    if "endian" in fields:
        _choice("endian", fields["endian"], ("little", "big"))
    elif itemsize > 1 and fields["encoding"] not in ("ascii", "text", "txt"):
        raise Damaged(f"its header has no endian field, which a {fields['type']} type needs")
    for name in _NRRD_PER_AXIS:
        if name in fields:
            _numbers(name, fields[name], dim, nan_ok=True)
    for name in _NRRD_WORDS:
        if name in fields and len(fields[name].split()) != dim:
            raise Damaged(f"its header field {name} holds {len(fields[name].split())} values where {dim} are needed")
    for name, lo in (("byte skip", -1), ("byteskip", -1), ("line skip", 0), ("lineskip", 0)):
        if name in fields:
            _one_int(name, fields[name], lo)
    _check_nrrd_space(fields, dim)


def _check_nrrd_space(fields: dict[str, str], dim: int) -> None:
    if "space" in fields:
        space = _NRRD_SPACES.get(fields["space"].lower())
        if space is None:
            raise Damaged(f"its header field space is {fields['space']!r}, not a NRRD space name")
    elif "space dimension" in fields:
        space = _one_int("space dimension", fields["space dimension"], 1)
    else:
        space = None
    spatial = ("space directions", "space origin", "measurement frame")
    if space is None:
        if any(name in fields for name in spatial):
            raise Damaged("its header gives space directions or a space origin without a space field")
        return
    if "space origin" in fields:
        _nrrd_vector("space origin", fields["space origin"], space)
    if "space directions" in fields:
        tokens = _vector_tokens("space directions", fields["space directions"])
        if len(tokens) != dim:
            raise Damaged(f"its header field space directions holds {len(tokens)} vectors where {dim} are needed "
                          f"({fields['space directions']!r})")
        for token in tokens:
            if token != "none":
                _nrrd_vector("space directions", token, space)
    if "measurement frame" in fields:
        tokens = _vector_tokens("measurement frame", fields["measurement frame"])
        if len(tokens) != space:
            raise Damaged(f"its header field measurement frame holds {len(tokens)} vectors where {space} are needed")
        for token in tokens:
            _nrrd_vector("measurement frame", token, space)
