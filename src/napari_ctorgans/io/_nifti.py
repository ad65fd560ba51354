"""NIfTI specifics: a ``.nii.gz`` decompressed once (checksum and read in one pass), and NIfTI-2 files, which
ITK cannot open, rewritten as NIfTI-1 (same voxels, same geometry) in a temporary file."""

from __future__ import annotations

import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ._verify import CHUNK, Damaged

_INT16_MAX = 32767
#: NIfTI datatype code -> numpy type (without byte order)
_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}


def array_from_voxels(path: Path, hdr: dict,
                      voxels: np.ndarray | None) -> tuple[np.ndarray, sitk.ImageFileReader] | None:
    """The (z, y, x) array ITK would read from a NIfTI-1 file, as a view of its voxel bytes (no copy for native byte
    order), and ITK's reading of the header, which places it in space.

    ``voxels`` are the bytes of a ``.nii.gz`` already decompressed for its checksum; None for an uncompressed
    ``.nii``, whose bytes are then read here, once, straight into the array (ITK's reader and a copy out of it cost
    4x as long), and only when ITK would not do more than copy them.

    None where ITK would do more than copy the voxels (intensity scaling, vectors, more than 3 dimensions, an
    unexpected pixel type), so the caller lets ITK read.
    """
    code = _DTYPES.get(hdr["datatype"])
    slope, inter = hdr["scl"]
    if hdr["version"] != 1 or hdr["ndim"] != 3 or code is None or slope not in (0.0, 1.0) or inter != 0.0:
        return None
    dtype = np.dtype(("<" if hdr["little_endian"] else ">") + code)
    if dtype.itemsize * 8 != hdr["bitpix"]:
        return None
    info = sitk.ImageFileReader()
    info.SetFileName(str(path))
    info.ReadImageInformation()
    if info.GetSize() != hdr["dim"] or info.GetNumberOfComponents() != 1 or info.GetDimension() != 3:
        return None
    if sitk.GetImageFromArray(np.zeros((1, 1, 1), dtype.newbyteorder("="))).GetPixelID() != info.GetPixelID():
        return None
    if voxels is None:
        voxels = np.fromfile(path, np.uint8, hdr["nbytes"], offset=int(hdr["vox_offset"]))
    return voxels.view(dtype).reshape(hdr["dim"][::-1]).astype(dtype.newbyteorder("="), copy=False), info


def _nifti1_header(hdr: dict) -> bytes:
    """A NIfTI-1 header (348 bytes, then 4 bytes of no extensions) with the fields ITK reads from ``hdr``."""
    order = "<" if hdr["little_endian"] else ">"
    head = bytearray(352)
    struct.pack_into(order + "i", head, 0, 348)
    head[38] = ord("r")
    dims = (hdr["ndim"], *hdr["dim"], *([1] * (7 - hdr["ndim"])))
    struct.pack_into(order + "8h", head, 40, *dims)
    struct.pack_into(order + "hh", head, 70, hdr["datatype"], hdr["bitpix"])
    struct.pack_into(order + "8f", head, 76, *hdr["pixdim"])
    struct.pack_into(order + "3f", head, 108, 352.0, *hdr["scl"])
    head[123] = hdr["xyzt_units"]
    struct.pack_into(order + "hh", head, 252, hdr["qform_code"], hdr["sform_code"])
    struct.pack_into(order + "6f12f", head, 256, *hdr["quatern"], *hdr["srow"])
    head[344:348] = b"n+1\0"
    return bytes(head)


def read_nifti2(path: Path, hdr: dict) -> sitk.Image:
    """Read a NIfTI-2 file (``hdr`` from :func:`~napari_ctorgans.io._verify.nifti_header`) with ITK.

    The header's float64 geometry becomes float32 on the way (about 1e-5 mm on an origin of 1000 mm).
    """
    if max(hdr["dim"]) > _INT16_MAX:
        raise ValueError(
            f"{path} is a NIfTI-2 file of {hdr['dim']} voxels, more than {_INT16_MAX} along an axis, which the ITK "
            "reader used here cannot hold; crop or downsample it with another tool (e.g. nibabel) first"
        )
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with tempfile.TemporaryDirectory(prefix="ctorgans-nifti2-") as tmp:
        out = Path(tmp) / "nifti1.nii"
        with opener(path, "rb") as src, open(out, "wb") as dst:
            dst.write(_nifti1_header(hdr))
            src.seek(hdr["vox_offset"])
            remaining = hdr["nbytes"]
            while remaining:
                chunk = src.read(min(CHUNK, remaining))
                if not chunk:
                    raise Damaged("its voxel data end early")
                dst.write(chunk)
                remaining -= len(chunk)
        return sitk.ReadImage(str(out))
