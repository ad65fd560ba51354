"""DICOM series: every slice's header read with pydicom and checked before the slices are stacked.

The geometry of the volume comes from each slice's own ImagePositionPatient and ImageOrientationPatient, never
from an average: duplicated, missing, shifted, re-oriented, resized, truncated and foreign files are refused with
a message naming them. A gantry-tilted series is resampled onto an orthogonal grid by shifting each slice in its
own plane to its true position (as dcm2niix does); an unevenly spaced series is refused unless
``resample_irregular=True``, which interpolates between the true slice positions onto an even grid. The pixel
data are decoded by SimpleITK (GDCM), which knows every transfer syntax.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.uid import UID

from ..volume import Volume
from ._sitk import from_sitk
from ._verify import is_dicom_file as _is_dicom_file

#: Suffixes of files that sit beside DICOM slices and are never slices themselves.
_NOT_SLICES = {".txt", ".md", ".json", ".xml", ".csv", ".pdf", ".html", ".htm", ".jpg", ".jpeg", ".png", ".gif",
               ".bmp", ".nii", ".gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".raw", ".zip", ".log", ".ini", ".db", ".py"}
_POSITION_TOL_MM = 0.2  # a slice off the line through the others by more than this is displaced
_SPACING_TOL_MM = 0.05  # plus 2 % of the step: steps that differ by more are uneven
_COPY_FIX = "copy the complete series again from the scanner or PACS"
_CUT = "is truncated or damaged (its header or pixel data is cut off)"


@dataclass
class _Slice:
    path: Path
    series: str
    sop: str
    position: np.ndarray  # ImagePositionPatient (x, y, z) in mm
    orientation: np.ndarray  # ImageOrientationPatient: row cosine, then column cosine
    size: tuple[int, int]  # Rows, Columns
    spacing: tuple[float, float]  # PixelSpacing: between rows, between columns
    rescale: tuple[float, float]
    instance: int | None
    modality: str
    description: str
    link: bool
    padding: tuple[float, float] | None = None  # Pixel Padding Value (and Range Limit) as stored, before rescale

    @property
    def name(self) -> str:
        return self.path.name


class _Unreadable(Exception):
    pass


def _candidates(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files of the folder that may be slices (file links followed), and broken links."""
    files, broken = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        path = Path(entry.path)
        if entry.name.startswith(".") or entry.name.upper() == "DICOMDIR" or path.suffix.lower() in _NOT_SLICES:
            continue
        if entry.is_symlink() and not path.exists():
            broken.append((path, f"is a broken link (its target {os.readlink(path)} does not exist); restore the "
                                 "target or remove the link"))
        elif entry.is_file():  # follows file links; folders and folder links are never entered
            files.append(path)
    return files, broken


def _header(path: Path, full: bool) -> _Slice | None:
    """One file's slice header; None for a DICOM object that is not an image slice (DICOMDIR, RTSTRUCT, SR)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not full, force=True)
        except Exception as exc:  # pydicom raises many types on damaged input
            raise _Unreadable(f"cannot be parsed as DICOM ({type(exc).__name__}: {exc})") from None
    meta = getattr(ds, "file_meta", None)
    sop_class = str(ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else ""))
    is_image = "Image Storage" in UID(sop_class).name if sop_class else False
    has_slice = all(k in ds for k in ("ImagePositionPatient", "ImageOrientationPatient", "Rows", "Columns"))
    eof = any("End of file" in str(w.message) for w in caught)
    if not (has_slice or sop_class):  # every DICOM object names its SOP class
        raise _Unreadable(_CUT if _is_dicom_file(path) else "is not a DICOM file")
    if is_image and not has_slice and not eof and "PixelData" in ds and int(ds.get("NumberOfFrames", 1) or 1) > 1:
        return None  # a multi-frame object; not a slice of this reader's series
    if not is_image and not has_slice:
        return None
    if eof or not has_slice or (full and not _pixels_complete(ds)):
        raise _Unreadable(_CUT)
    try:
        return _slice_of(ds, path)
    except (ValueError, TypeError, IndexError) as exc:
        raise _Unreadable(f"has unreadable geometry tags ({exc})") from None


def _pixels_complete(ds) -> bool:
    if "PixelData" not in ds:
        return False
    if ds.file_meta.get("TransferSyntaxUID", UID("1.2.840.10008.1.2")).is_encapsulated:
        return True  # fragments end in a delimiter; its absence was caught as an end-of-file warning
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    expected = int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1)) * int(ds.BitsAllocated) // 8
    return len(ds.PixelData) >= expected * frames


def _slice_of(ds, path: Path) -> _Slice:
    meta = getattr(ds, "file_meta", None)
    sop = str(ds.get("SOPInstanceUID", "") or (meta.get("MediaStorageSOPInstanceUID", "") if meta else ""))
    if "PixelSpacing" not in ds:
        raise ValueError("PixelSpacing (0028,0030) is missing, so the voxel size is unknown")
    spacing = [float(v) for v in ds.PixelSpacing]
    orientation = np.asarray([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    position = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=float)
    if orientation.shape != (6,) or position.shape != (3,) or len(spacing) != 2:
        raise ValueError("ImageOrientationPatient needs 6 values, ImagePositionPatient and PixelSpacing 3 and 2")
    instance = ds.get("InstanceNumber", None)
    return _Slice(
        path=path,
        series=str(ds.get("SeriesInstanceUID", "")).strip(),
        sop=sop.strip(),
        position=position,
        orientation=orientation,
        size=(int(ds.Rows), int(ds.Columns)),
        spacing=(spacing[0], spacing[1]),
        rescale=(float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)),
        instance=int(instance) if instance not in (None, "") else None,
        modality=str(ds.get("Modality", "")).strip(),
        description=str(ds.get("SeriesDescription", "")).strip(),
        link=path.is_symlink(),
        padding=_padding_tags(ds),
    )


def _padding_tags(ds) -> tuple[float, float] | None:
    """Pixel Padding Value (0028,0120) and Pixel Padding Range Limit (0028,0121), as stored: (low, high)."""
    values = []
    for tag in (0x00280120, 0x00280121):
        element = ds.get(tag)
        value = None if element is None else element.value
        if isinstance(value, bytes):  # read before the pixel representation resolved the US/SS ambiguity
            signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
            value = int.from_bytes(value[:2], "little", signed=signed) if len(value) >= 2 else None
        if value not in (None, "", b""):
            values.append(float(value))
    if not values:
        return None
    return (min(values), max(values))


def _padding_hu(slices: list[_Slice]) -> list[float] | None:
    """The HU range of the slices' padding tags (each slice's own rescale), for ``metadata["pixel_padding_hu"]``."""
    ends = [v * sl.rescale[0] + sl.rescale[1] for sl in slices if sl.padding is not None for v in sl.padding]
    return [float(min(ends)), float(max(ends))] if ends else None


def _scan(folder: Path, full: bool) -> tuple[dict[str, list[_Slice]], list[tuple[Path, str]]]:
    """Slices of the folder by series UID, and the files that could not be read with the reason."""
    files, bad = _candidates(folder)
    series: dict[str, list[_Slice]] = {}
    for path in files:
        try:
            sl = _header(path, full)
        except (_Unreadable, OSError) as exc:
            why = f"cannot be opened ({exc.strerror})" if isinstance(exc, OSError) else str(exc)
            bad.append((path, f"{why}; {_COPY_FIX}, or move it out of the folder if it is not part of the series"))
            continue
        if sl is not None:
            series.setdefault(sl.series, []).append(sl)
    for slices in series.values():
        normal = _normal(slices[0])
        slices.sort(key=lambda s: (float(s.position @ normal), s.name))
    return series, bad


def _normal(sl: _Slice) -> np.ndarray:
    n = np.cross(sl.orientation[:3], sl.orientation[3:])
    return n / (np.linalg.norm(n) or 1.0)


def list_dicom_series(folder: str | os.PathLike) -> list[dict]:
    """List the DICOM series in a folder from each file's header.

    Returns
    -------
    list of dict
        One dict per series with ``uid``, ``files`` (sorted by slice position), ``n_slices`` and ``description``.
        Files that cannot be read are left out here; :func:`read_volume` refuses a series beside them.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    found, _ = _scan(folder, full=False)
    return [{"uid": uid, "files": [str(s.path) for s in slices], "n_slices": len(slices),
             "description": slices[0].description} for uid, slices in found.items()]


def _series_of_file(path: Path) -> str:
    try:
        sl = _header(path, full=False)
    except _Unreadable as exc:
        raise ValueError(f"{path} {exc}; open the series folder instead, or {_COPY_FIX}") from None
    if sl is None:
        raise ValueError(f"{path} is a DICOM file without an image slice; open a slice of the series instead")
    return sl.series


def _choose_series(folder: Path, found: dict[str, list[_Slice]], series: str | None) -> str:
    if series is None:
        if len(found) > 1:
            listing = "\n".join(f"  {uid!r}: {len(s)} slices {s[0].description}" for uid, s in found.items())
            raise ValueError(
                f"{folder} holds {len(found)} DICOM series; choose one with "
                f"read_volume(path, series=<uid>) (CLI: --series <uid>) or open one of its files:\n{listing}"
            )
        return next(iter(found))
    for uid in found:
        if uid == str(series).strip():
            return uid
    known = ", ".join(repr(uid) for uid in found)
    raise ValueError(f"DICOM series {series!r} is not in {folder}; series found: {known}")


def _label(uid: str) -> str:
    return repr(uid) if uid else "(without a SeriesInstanceUID)"


def _names(slices) -> str:
    names = [s.name for s in slices]
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _odd_ones(slices: list[_Slice], values, tol: float, what: str, fix: str) -> list[str]:
    """Problems for slices whose value differs from the majority's by more than ``tol``."""
    values = np.asarray(values, dtype=float)
    common = np.median(values, axis=0)  # the majority's value, when there is a majority
    odd = [i for i, v in enumerate(values) if np.abs(v - common).max() > tol]
    if not odd:
        return []

    def show(v) -> str:
        return "(" + ", ".join(f"{float(x):.6g}" for x in v) + ")"

    if len(odd) == len(slices):  # no majority value to compare with: name every value and its slices
        groups: dict[str, list] = {}
        for sl, v in zip(slices, values):
            groups.setdefault(show(v), []).append(sl)
        listing = "; ".join(f"{_names(g)} {'has' if len(g) == 1 else 'have'} {k}" for k, g in groups.items())
        return [f"the slices disagree on {what}, with no majority: {listing}; {fix}"]
    return [f"{_names([slices[i] for i in odd])} {'has' if len(odd) == 1 else 'have'} {what} {show(values[odd[0]])} "
            f"while the other {len(slices) - len(odd)} slices have {show(common)}; {fix}"]


def _check_uniform(slices: list[_Slice]) -> list[str]:
    foreign = "remove the odd slices from the folder (a localizer or another series?) or " + _COPY_FIX
    problems = _odd_ones(slices, [s.size for s in slices], 0, "size (Rows, Columns)", foreign)
    problems += _odd_ones(slices, [s.spacing for s in slices], 1e-3, "PixelSpacing", foreign)
    problems += _odd_ones(slices, [s.orientation for s in slices], 1e-3, "ImageOrientationPatient", foreign)
    r, c = slices[0].orientation[:3], slices[0].orientation[3:]
    if abs(np.linalg.norm(r) - 1) > 1e-3 or abs(np.linalg.norm(c) - 1) > 1e-3 or abs(r @ c) > 1e-3:
        problems.append(f"{slices[0].name} has an ImageOrientationPatient whose row and column directions are not "
                        f"orthonormal ({slices[0].orientation.tolist()}); the header is damaged: {_COPY_FIX}")
    return problems


def _pixel_digest(sl: _Slice) -> str:
    return hashlib.blake2b(pydicom.dcmread(sl.path, force=True).PixelData, digest_size=16).hexdigest()


def _drop_duplicates(slices: list[_Slice]) -> tuple[list[_Slice], list[str], list[str]]:
    """Slices without exact duplicates, the dropped duplicates (for a warning), and problems for differing ones."""
    kept, dropped, problems = [], [], []
    by_sop: dict[str, _Slice] = {}
    for sl in slices:  # sorted by position: slices at one position are neighbours
        twin = by_sop.get(sl.sop) if sl.sop else None
        if twin is None and kept and np.linalg.norm(kept[-1].position - sl.position) < 1e-3:
            twin = kept[-1]
        if twin is None:
            kept.append(sl)
            by_sop[sl.sop] = sl
            continue
        same = np.linalg.norm(twin.position - sl.position) < 1e-3 and twin.rescale == sl.rescale \
            and _pixel_digest(twin) == _pixel_digest(sl)
        if same:
            dropped.append(f"{sl.name} (a copy of {twin.name})")
            continue
        why = "the same SOPInstanceUID" if sl.sop and twin.sop == sl.sop else "the same ImagePositionPatient"
        differ = "positions" if why.startswith("the same SOP") else "pixel data or rescale"
        problems.append(f"{twin.name} and {sl.name} have {why} but different {differ}: two versions of one slice "
                        "(or two acquisitions mixed in one series); keep the right one, move the other out of the "
                        f"folder, or {_COPY_FIX}")
    return kept, dropped, problems


@dataclass
class _Grid:
    """Where the slices lie in the frame of their rows (u), columns (v) and normal (s), in mm."""

    s: np.ndarray  # (N,) position along the slice normal, increasing
    uv: np.ndarray  # (N, 2) in-plane position of each slice's first voxel
    drift: np.ndarray  # (2,) in-plane shift per mm along the normal: non-zero for a gantry tilt
    step: float  # the series' slice step along the normal
    even: bool


def _stack_geometry(slices: list[_Slice]) -> tuple[_Grid, list[str], list[str]]:
    """The slices' grid, problems with displaced slices, and problems with uneven spacing."""
    r, c, n = slices[0].orientation[:3], slices[0].orientation[3:], _normal(slices[0])
    pos = np.asarray([sl.position for sl in slices])
    s, uv = pos @ n, np.stack([pos @ r, pos @ c], axis=1)
    ds = np.diff(s)
    flat = [f"{slices[i].name} and {slices[i + 1].name} lie in the same plane at different in-plane positions: "
            f"one of them belongs to another acquisition; move it out of the folder or {_COPY_FIX}"
            for i in np.nonzero(ds < 1e-3)[0]]
    if flat:
        return _Grid(s, uv, np.zeros(2), 0.0, False), flat, []
    # the line through the positions, fitted robustly: one displaced slice cannot bend it
    drift = np.median(np.diff(uv, axis=0) / ds[:, None], axis=0)
    if np.abs(drift).max() * (s[-1] - s[0]) <= _POSITION_TOL_MM:
        drift = np.zeros(2)
    base = np.median(uv - np.outer(s - s[0], drift), axis=0)
    off = np.linalg.norm(uv - base - np.outer(s - s[0], drift), axis=1)
    displaced = [
        f"{sl.name} lies {d:.3g} mm away (in the slice plane) from the line through the other slices' "
        f"positions: its ImagePositionPatient is wrong or it belongs to another series; restore it "
        f"({_COPY_FIX}) or move it out of the folder"
        for sl, d in zip(slices, off) if d > _POSITION_TOL_MM
    ]
    step = float(np.median(ds))
    uneven = np.nonzero(np.abs(ds - step) > _SPACING_TOL_MM + 0.02 * step)[0]
    grid = _Grid(s=s, uv=uv, drift=drift, step=step, even=not len(uneven))
    return grid, displaced, _spacing_problems(slices, ds, step, uneven)


def _spacing_problems(slices: list[_Slice], ds: np.ndarray, step: float, uneven: np.ndarray) -> list[str]:
    if not len(uneven):
        return []
    inst = [sl.instance for sl in slices]
    ordered = None not in inst and len(set(np.sign(np.diff(inst)))) == 1 and 0 not in np.diff(inst)
    steps, missing = [], False
    for i in uneven:
        text = f"{slices[i].name} -> {slices[i + 1].name}: {ds[i]:.4g} mm"
        k = int(round(ds[i] / step))
        if ordered and k >= 2 and abs(ds[i] - k * step) <= _SPACING_TOL_MM + 0.02 * step \
                and abs(inst[i + 1] - inst[i]) == k:
            lo, hi = sorted((inst[i], inst[i + 1]))
            text += f" (instance number{'s' if k > 2 else ''} {', '.join(str(j) for j in range(lo + 1, hi))} missing)"
            missing = True
        steps.append(text)
    listing = "; ".join(steps[:6]) + (f"; and {len(steps) - 6} more" if len(steps) > 6 else "")
    cause = f"slices are missing: {_COPY_FIX}" if missing else \
        f"a slice is displaced or the series mixes spacings; if it is damaged, {_COPY_FIX}"
    headline = "a gap in the series" if missing else "uneven slice spacing"
    return [f"{headline}: the slices are {step:.4g} mm apart except {listing}; {cause}; to read it as "
            f"it is, pass read_volume(path, resample_irregular=True) (CLI: --resample-irregular), which "
            f"interpolates onto an even {step:.4g} mm grid between the true slice positions"]


def _read_pixels(slices: list[_Slice]) -> sitk.Image:
    """Decode every slice (rescale slope and intercept applied) and stack them in the given order."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(sl.path) for sl in slices])
    if hasattr(reader, "SetSpacingWarningRelThreshold"):
        reader.SetSpacingWarningRelThreshold(1e9)  # the spacing was checked from the headers; only the array is used
    fractional = any(float(v) != round(float(v)) for sl in slices for v in sl.rescale)
    if len({sl.rescale for sl in slices}) > 1 or fractional:
        # per-slice rescale must not be cut to the first slice's type; a fractional slope or intercept gives HU
        # with fractions, which GDCM would hold in float64 (twice the memory of float32, which holds them exactly)
        reader.SetOutputPixelType(sitk.sitkFloat32)
    try:
        image = reader.Execute()
    except RuntimeError:
        for sl in slices:  # find the slice that cannot be decoded
            try:
                sitk.ReadImage(str(sl.path))
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
                raise ValueError(f"cannot decode the pixel data of {sl.path} ({first}); {_COPY_FIX}") from None
        raise
    shape = image.GetSize()[::-1]
    if shape != (len(slices), *slices[0].size):
        raise ValueError(f"the slices of {slices[0].path.parent} decode to shape {shape}, but their headers "
                         f"say {(len(slices), *slices[0].size)}; a file is damaged: {_COPY_FIX}")
    return image  # its geometry is GDCM's; the caller sets the slices' own


def _shift_plane(plane: np.ndarray, offset: tuple[float, float], shape: tuple[int, int], fill: float) -> np.ndarray:
    """Output pixel (y, x) = the plane linearly interpolated at (y + offset[0], x + offset[1]); ``fill`` outside."""
    whole = np.floor(offset).astype(int)
    fy, fx = np.asarray(offset) - whole
    canvas = np.full((shape[0] + 1, shape[1] + 1), fill, dtype=np.float32)  # canvas[y, x] = plane[y + oy, x + ox]
    y0, x0 = max(0, -whole[0]), max(0, -whole[1])
    y1, x1 = min(canvas.shape[0], plane.shape[0] - whole[0]), min(canvas.shape[1], plane.shape[1] - whole[1])
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = plane[y0 + whole[0] : y1 + whole[0], x0 + whole[1] : x1 + whole[1]]
    top = (1 - fx) * canvas[:-1, :-1] + fx * canvas[:-1, 1:]
    bottom = (1 - fx) * canvas[1:, :-1] + fx * canvas[1:, 1:]
    return (1 - fy) * top + fy * bottom


def _resample(stack: np.ndarray, grid: _Grid, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Resample tilted or unevenly spaced slices onto an orthogonal, evenly spaced grid.

    Each slice is shifted in its own plane to its true position (the gantry-tilt correction), then output
    slices between two input slices are interpolated linearly along the normal. The output lattice contains the
    first slice's voxels and covers every slice. Returns the array and the (u, v, s) position of voxel (0, 0, 0).
    """
    dy, dx = spacing
    lo, hi = grid.uv.min(axis=0), grid.uv.max(axis=0)
    before = np.ceil((grid.uv[0] - lo) / (dx, dy) - 1e-6)  # whole voxels added before the first slice's corner
    after = np.ceil((hi - grid.uv[0]) / (dx, dy) - 1e-6)
    corner = grid.uv[0] - before * (dx, dy)
    shape = (stack.shape[1] + int(before[1] + after[1]), stack.shape[2] + int(before[0] + after[0]))
    fill = float(stack.min())
    shifted: dict[int, np.ndarray] = {}

    def plane(j: int) -> np.ndarray:
        if j not in shifted:
            offset = ((corner[1] - grid.uv[j, 1]) / dy, (corner[0] - grid.uv[j, 0]) / dx)
            shifted[j] = _shift_plane(stack[j], offset, shape, fill)
        return shifted[j]

    n_out = int(np.floor((grid.s[-1] - grid.s[0]) / grid.step + 1e-6)) + 1
    integer = stack.dtype.kind in "iu"
    out = np.empty((n_out, *shape), dtype=stack.dtype if integer else np.float32)
    for k in range(n_out):
        s = grid.s[0] + k * grid.step
        j = int(np.clip(np.searchsorted(grid.s, s + 1e-6, side="right") - 1, 0, len(grid.s) - 2))
        w = (s - grid.s[j]) / (grid.s[j + 1] - grid.s[j])
        value = plane(j) if w < 1e-6 else plane(j + 1) if w > 1 - 1e-6 else (1 - w) * plane(j) + w * plane(j + 1)
        out[k] = np.clip(np.rint(value), *_limits(stack.dtype)) if integer else value
        for old in [i for i in shifted if i < j]:
            del shifted[old]  # memory: at most two shifted planes
    return out, np.array([corner[0], corner[1], grid.s[0]])


def _limits(dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _problems(folder: Path, uid: str, slices: list[_Slice], bad, resample_irregular: bool):
    """Everything that stops the series from being stacked safely; the kept slices, grid and dropped copies."""
    problems = [f"{path.name} {why}" for path, why in bad]
    problems += _check_uniform(slices)
    kept, dropped, grid = slices, [], None
    if not problems:
        kept, dropped, duplicates = _drop_duplicates(slices)
        problems += duplicates
    if not problems and len(kept) < 2:
        raise ValueError(
            f"DICOM series {_label(uid)} in {folder} has a single slice; a CT volume needs the whole series"
        )
    if not problems:
        grid, displaced, uneven = _stack_geometry(kept)
        problems += displaced + ([] if resample_irregular else uneven)
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ValueError(f"DICOM series {_label(uid)} in {folder} cannot be stacked into a volume safely:\n{listing}")
    return kept, grid, dropped


def _read_dicom(folder: Path, series: str | None, file_hint: Path | None, resample_irregular: bool = False) -> Volume:
    found, bad = _scan(folder, full=True)
    if not found:
        unread = f"; {len(bad)} file(s) could not be read, e.g. {bad[0][0].name} {bad[0][1]}" if bad else ""
        raise ValueError(f"no DICOM series found in {folder}{unread}; point to a folder of DICOM slices or to a "
                         "NIfTI/NRRD/MHA file")
    if series is None and file_hint is not None:
        series = _series_of_file(file_hint)
    uid = _choose_series(folder, found, series)
    kept, grid, dropped = _problems(folder, uid, found[uid], bad, resample_irregular)
    if dropped:
        warnings.warn(f"DICOM series in {folder}: dropped {len(dropped)} exact duplicate slice(s): "
                      f"{', '.join(dropped)}; remove the copies to silence this", UserWarning, stacklevel=3)
    links = [sl for sl in kept if sl.link]
    if links:
        warnings.warn(f"DICOM series in {folder}: {len(links)} slice(s) are file links, read from their targets: "
                      + ", ".join(f"{sl.name} -> {os.path.realpath(sl.path)}" for sl in links[:3])
                      + ("" if len(links) <= 3 else ", ..."), UserWarning, stacklevel=3)
    modality = kept[0].modality
    if modality and modality.upper() != "CT":
        warnings.warn(
            f"DICOM series in {folder} has modality {modality!r}, not CT; HU thresholds and models assume CT "
            "in Hounsfield units, so results on it are meaningless",
            UserWarning,
            stacklevel=3,
        )
    resampled = bool(np.any(grid.drift) or not grid.even)
    if resampled:
        warnings.warn(_resample_note(folder, grid), UserWarning, stacklevel=3)
    return _volume(folder, uid, kept, grid, _read_pixels(kept), resampled, modality or "CT")


def _resample_note(folder: Path, grid: _Grid) -> str:
    parts = []
    if np.any(grid.drift):
        parts.append(f"acquired with a gantry tilt of {np.degrees(np.arctan(np.linalg.norm(grid.drift))):.3g} "
                     "degrees")
    if not grid.even:
        parts.append(f"unevenly spaced (steps {np.diff(grid.s).min():.4g} to {np.diff(grid.s).max():.4g} mm)")
    return (f"DICOM series in {folder} is {' and '.join(parts)}; it was resampled onto an orthogonal grid of "
            f"{grid.step:.4g} mm slices from the true slice positions (metadata['dicom_resampled'] is True)")


def _volume(folder: Path, uid: str, slices: list[_Slice], grid: _Grid, image: sitk.Image, resampled: bool,
            modality: str) -> Volume:
    """The stacked (or resampled) slices as a canonical Volume whose geometry is the slices' own."""
    r, c, n = slices[0].orientation[:3], slices[0].orientation[3:], _normal(slices[0])
    dy, dx = slices[0].spacing
    if resampled:
        stack, (u0, v0, s0) = _resample(sitk.GetArrayViewFromImage(image), grid, (dy, dx))
        origin, dz = u0 * r + v0 * c + s0 * n, grid.step
        image = sitk.GetImageFromArray(stack)
    else:
        origin, dz = slices[0].position, (grid.s[-1] - grid.s[0]) / (len(slices) - 1)
    image.SetSpacing((float(dx), float(dy), float(dz)))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(np.column_stack([r, c, n]).ravel().tolist()))
    vol = from_sitk(image, path=str(folder))
    # the array axis along the slice normal, and whether the canonical order reversed the slices
    along = vol.direction.T @ n[::-1]
    axis = int(np.argmax(np.abs(along)))
    order = slices if along[axis] > 0 else slices[::-1]
    vol.metadata.update(
        dicom_series=uid,
        dicom_files=[str(sl.path) for sl in order],
        dicom_sop_uids=[sl.sop for sl in order],
        dicom_slice_axis=axis,
        dicom_resampled=resampled,
        modality=modality,
    )
    padding = _padding_hu(slices)
    if padding is not None:  # the padding outside the reconstruction field, in HU (napari_ctorgans.padding)
        vol.metadata["pixel_padding_hu"] = padding
    return vol
