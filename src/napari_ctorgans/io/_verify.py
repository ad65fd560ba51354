"""Does a file hold what its header announces? Sizes, gzip/zlib checksums and a digest of the voxel bytes.

Used on every read (a damaged or cut-off file is refused instead of being read as zeros or noise) and on every
write (the temporary file must be complete and hold exactly the intended voxels before it replaces anything).
Everything streams in chunks of :data:`CHUNK` bytes, so memory stays flat for any volume size.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from ._errors import Damaged

try:  # ISA-L inflates about 1.5x faster than zlib, with the same checksums and the same interface
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib does the same, slower
    _zlib = zlib

CHUNK = 1 << 20  # 1 MiB

def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` starts with the DICOM preamble and ``DICM`` (cheap: pydicom is not loaded for it)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"



@dataclass
class Scan:
    """What :func:`scan` found: the voxel-byte digest (None where the layout cannot be followed) and the header."""

    digest: str | None
    format: str
    header: dict = field(default_factory=dict)
    voxels: np.ndarray | None = None  # the voxel bytes (uint8), where asked for and the file is a .nii.gz


def array_digest(array: np.ndarray) -> str:
    """Digest of an array's bytes in C order, hashed slab by slab (no full copy of the array)."""
    arr = np.asarray(array)
    h = hashlib.sha256()
    if arr.ndim == 0 or arr.size == 0:
        h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()
    per_slab = max(1, CHUNK // max(1, arr[0].nbytes))
    for start in range(0, arr.shape[0], per_slab):
        h.update(memoryview(np.ascontiguousarray(arr[start : start + per_slab])).cast("B"))
    return h.hexdigest()


def _inflate(fh: BinaryIO, wbits: int, multi: bool) -> Iterator[bytes]:
    """Decompress a zlib/gzip stream chunk by chunk; checksums are checked by zlib, an early end is refused."""
    d = _zlib.decompressobj(wbits)
    data = fh.read(CHUNK)
    try:
        while data:
            out = d.decompress(data, CHUNK)
            if out:
                yield out
            if d.eof:
                rest = d.unused_data or (fh.read(CHUNK) if multi else b"")
                if not multi or not rest.strip(b"\0"):
                    return
                d, data = _zlib.decompressobj(wbits), rest  # a further gzip member
                continue
            data = d.unconsumed_tail or fh.read(CHUNK)
        tail = d.flush()
        if tail:
            yield tail
    except (zlib.error, _zlib.error) as exc:
        raise Damaged(f"the compressed data is corrupt: {exc}") from None
    if not d.eof:
        raise Damaged("the compressed data ends early (the file was cut off)")


def _raw(fh: BinaryIO) -> Iterator[bytes]:
    while data := fh.read(CHUNK):
        yield data


def _payload(stream: Iterator[bytes], offset: int, nbytes: int, want_digest: bool,
             sink: memoryview | None = None, exact: bool = False) -> str | None:
    """Skip ``offset`` bytes, then hash ``nbytes`` (and copy them into ``sink``); refuse a shorter stream (and,
    ``exact``, a longer one: its header's sizes are damaged)."""
    h = hashlib.sha256() if want_digest else None
    pos = 0
    end = offset + nbytes
    for chunk in stream:
        lo, hi = max(offset - pos, 0), min(end - pos, len(chunk))
        if hi > lo:
            part = memoryview(chunk)[lo:hi]
            if h is not None:
                h.update(part)
            if sink is not None:
                sink[pos + lo - offset : pos + hi - offset] = part
        pos += len(chunk)
    if pos < end:
        raise Damaged(f"it holds {pos - offset if pos > offset else 0} bytes of voxel data where its header "
                      f"announces {nbytes}")
    if exact and pos > end:
        raise Damaged(f"it holds {pos - offset} bytes of voxel data where its header announces {nbytes} (a size "
                      "field of the header is damaged)")
    return h.hexdigest() if h is not None else None


# ---------------------------------------------------------------------------------------------------- NIfTI


def nifti_header(head: bytes) -> dict:
    """Parse the fields of a NIfTI-1 or NIfTI-2 header that say where the voxels are and where they lie."""
    if len(head) < 348:
        raise Damaged(f"its NIfTI header is incomplete ({len(head)} of 348 bytes)")
    for order in "<>":
        size = struct.unpack_from(order + "i", head, 0)[0]
        if size in (348, 540):
            break
    else:
        raise Damaged("its first bytes are not a NIfTI header (sizeof_hdr is neither 348 nor 540)")
    if size == 540:
        if len(head) < 540:
            raise Damaged(f"its NIfTI-2 header is incomplete ({len(head)} of 540 bytes)")
        datatype, bitpix = struct.unpack_from(order + "hh", head, 12)
        dims, pixdim = struct.unpack_from(order + "8q", head, 16), struct.unpack_from(order + "8d", head, 104)
        (vox_offset,), scl = struct.unpack_from(order + "q", head, 168), struct.unpack_from(order + "dd", head, 176)
        qform, sform = struct.unpack_from(order + "ii", head, 344)
        quatern, srow = struct.unpack_from(order + "6d", head, 352), struct.unpack_from(order + "12d", head, 400)
        (units,) = struct.unpack_from(order + "i", head, 500)
    else:
        datatype, bitpix = struct.unpack_from(order + "hh", head, 70)
        dims, pixdim = struct.unpack_from(order + "8h", head, 40), struct.unpack_from(order + "8f", head, 76)
        (vox_offset,), scl = struct.unpack_from(order + "f", head, 108), struct.unpack_from(order + "ff", head, 112)
        qform, sform = struct.unpack_from(order + "hh", head, 252)
        quatern, srow = struct.unpack_from(order + "6f", head, 256), struct.unpack_from(order + "12f", head, 280)
        units = head[123]
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or any(d < 1 for d in dims[1 : ndim + 1]) or bitpix <= 0 or bitpix % 8:
        raise Damaged(f"its NIfTI header is corrupt (dim {tuple(dims)}, bitpix {bitpix})")
    if not np.isfinite(vox_offset) or vox_offset < size:
        raise Damaged(f"its NIfTI header is corrupt (vox_offset {vox_offset})")
    nbytes = int(np.prod([int(d) for d in dims[1 : ndim + 1]], dtype=object)) * (bitpix // 8)
    return {"version": 1 if size == 348 else 2, "little_endian": order == "<", "ndim": ndim,
            "dim": tuple(int(d) for d in dims[1 : ndim + 1]), "pixdim": tuple(float(p) for p in pixdim),
            "vox_offset": int(vox_offset), "nbytes": nbytes, "qform_code": int(qform), "sform_code": int(sform),
            "quatern": tuple(float(q) for q in quatern), "srow": tuple(float(s) for s in srow),
            "datatype": int(datatype), "bitpix": int(bitpix), "scl": tuple(float(v) for v in scl),
            "xyzt_units": int(units) & 0xFF}


def _isize_agrees(path: Path, hdr: dict) -> bool:
    """The gzip trailer holds the uncompressed size modulo 2**32: a cheap look before allocating the voxels."""
    with open(path, "rb") as fh:
        fh.seek(-4, 2)
        return int.from_bytes(fh.read(4), "little") == (hdr["vox_offset"] + hdr["nbytes"]) % 2**32


def _scan_nifti(path: Path, gz: bool, want_digest: bool, keep: bool = False) -> Scan:
    with open(path, "rb") as fh:
        stream = _inflate(fh, 31, multi=True) if gz else _raw(fh)
        first = b""
        for chunk in stream:  # collect the header (up to 544 bytes)
            first += chunk
            if len(first) >= 544:
                break
        hdr = nifti_header(first)
        want = want_digest and hdr["little_endian"]
        if not gz and not want:  # the size tells whether the voxels are all there; no need to read them
            size = path.stat().st_size
            if size < hdr["vox_offset"] + hdr["nbytes"]:
                raise Damaged(f"it holds {max(size - hdr['vox_offset'], 0)} bytes of voxel data where its header "
                              f"announces {hdr['nbytes']}")
            return Scan(None, "nifti", hdr)
        voxels = np.empty(hdr["nbytes"], np.uint8) if keep and gz and _isize_agrees(path, hdr) else None
        sink = None if voxels is None else memoryview(voxels)
        digest = _payload(_chain(first, stream), hdr["vox_offset"], hdr["nbytes"], want, sink)
    return Scan(digest, "nifti", hdr, voxels)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


# ------------------------------------------------------------------------------------------- MetaImage, NRRD


def _check_data_size(path: Path, offset: int, expected: int, what: str) -> None:
    """The bytes after the header must be exactly the announced data (more means a damaged size field)."""
    found = path.stat().st_size - offset
    if found > expected:
        raise Damaged(f"it holds {found} bytes of {what} where its header announces {expected} (a size field of "
                      "the header is damaged)")


def _scan_meta(path: Path, want_digest: bool) -> Scan:
    from ._header import META_ITEMSIZE, read_meta_header

    with open(path, "rb") as fh:
        fields, offset = read_meta_header(fh)
    count = int(np.prod([int(v) for v in fields["dimsize"].split()], dtype=object))
    count *= int(fields.get("elementnumberofchannels", "1"))
    itemsize = META_ITEMSIZE[fields["elementtype"]]
    datafile = fields["elementdatafile"]
    if datafile != "LOCAL":
        if " " in datafile or "%" in datafile or datafile.upper() == "LIST":
            return Scan(None, "meta", fields)  # a list of slice files: ITK reads and checks them
        path, offset = path.parent / datafile, 0
        if not path.is_file():
            raise Damaged(f"its data file {path} is missing")
    if "headersize" in fields:
        return Scan(None, "meta", fields)  # data after a header of its own: ITK skips it
    compressed = fields.get("compresseddata", "false").lower() == "true"
    if compressed and "compresseddatasize" in fields:
        _check_data_size(path, offset, int(fields["compresseddatasize"]), "compressed data")
    elif not compressed:
        _check_data_size(path, offset, count * itemsize, "voxel data")
    little = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "false")).lower() != "true"
    with open(path, "rb") as data:
        data.seek(offset)
        stream = _inflate(data, 47, multi=False) if compressed else _raw(data)
        digest = _payload(stream, 0, count * itemsize, want_digest and little, exact=True)
    return Scan(digest, "meta", fields)


def _scan_nrrd(path: Path, want_digest: bool, detached: bool = False) -> Scan:
    from ._header import NRRD_ITEMSIZE, read_nrrd_header

    with open(path, "rb") as fh:
        fields, offset = read_nrrd_header(fh, detached=detached)
        itemsize = NRRD_ITEMSIZE[fields["type"]]
        encoding = fields["encoding"]
        skips = any(int(fields.get(k, "0")) for k in ("byte skip", "byteskip", "line skip", "lineskip"))
        if detached or "data file" in fields or "datafile" in fields or encoding not in ("raw", "gzip", "gz") \
                or skips:
            return Scan(None, "nrrd", fields)  # data elsewhere or encoded as text: ITK reads it
        count = int(np.prod([int(v) for v in fields["sizes"].split()], dtype=object))
        if encoding == "raw":
            _check_data_size(path, offset, count * itemsize, "voxel data")
        fh.seek(offset)
        stream = _raw(fh) if encoding == "raw" else _inflate(fh, 31, multi=True)
        little = fields.get("endian", "little") == "little" or itemsize == 1
        digest = _payload(stream, 0, count * itemsize, want_digest and little, exact=True)
    return Scan(digest, "nrrd", fields)


def scan(path: str | Path, *, digest: bool = False, keep_voxels: bool = False) -> Scan:
    """Check that a file is complete and its compressed data intact; optionally digest its voxel bytes.

    Parameters
    ----------
    path : str or Path
        ``.nii``, ``.nii.gz``, ``.mha``, ``.mhd``, ``.nrrd`` (other files return an empty :class:`Scan`).
    digest : bool
        Also hash the voxel bytes (in file order), to compare with :func:`array_digest` of the written array.
    keep_voxels : bool
        For ``.nii.gz``: keep the decompressed voxel bytes in ``Scan.voxels``, so that the file is decompressed
        once for both the checksum and the read.

    Raises
    ------
    Damaged
        The file is empty, cut off, or its compressed data fail their checksum.
    """
    path = Path(path)
    name = path.name.lower()
    if path.is_file() and path.stat().st_size == 0:
        raise Damaged("the file is empty (0 bytes)")
    if name.endswith((".nii", ".nii.gz")):
        return _scan_nifti(path, name.endswith(".gz"), digest, keep_voxels)
    if name.endswith((".mha", ".mhd")):
        return _scan_meta(path, digest)
    if name.endswith(".nrrd"):
        return _scan_nrrd(path, digest)
    if name.endswith(".nhdr"):
        return _scan_nrrd(path, digest, detached=True)
    return Scan(None, "other")
