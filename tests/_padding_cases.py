"""Padded and re-encoded copies of the real test scans, made the way scanners store them.

Outside the reconstruction circle (radius 250 mm around the centre of the slice: the field of a 500 mm
reconstruction) the scan holds a padding value instead of air; DICOM copies are edited with pydicom (pixel data
re-encoded uncompressed, as signed or unsigned integers with the chosen rescale slope and intercept).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: radius (mm) of the reconstruction circle outside which the copies hold padding
RADIUS_MM = 250.0


def outside_circle(shape, spacing, radius_mm: float = RADIUS_MM) -> np.ndarray:
    """2D mask (rows, columns) of the pixels farther than ``radius_mm`` from the centre of the slice."""
    y = (np.arange(shape[0]) - (shape[0] - 1) / 2) * spacing[0]
    x = (np.arange(shape[1]) - (shape[1] - 1) / 2) * spacing[1]
    return (y[:, None] ** 2 + x[None, :] ** 2) > radius_mm**2


def padded(vol, value: float, radius_mm: float = RADIUS_MM):
    """A copy of ``vol`` (a ct.Volume) holding ``value`` outside the reconstruction circle in every axial slice."""
    out = np.array(vol.array, copy=True)
    out[:, outside_circle(vol.shape[1:], vol.spacing[1:], radius_mm)] = value
    return vol.with_array(out)


def write_dicom_copy(src: Path, dst: Path, *, pad_hu: float | None = None, slope: float = 1.0,
                     intercept: float = -1024.0, unsigned: bool = False, bits_stored: int = 16,
                     padding_tag: bool = False, range_limit_hu: float | None = None, clip_hu: float | None = None,
                     slices: slice = slice(None)) -> Path:
    """A pydicom-edited copy of the DICOM series ``src`` in ``dst``: HU decoded (SimpleITK), optionally clipped at
    ``clip_hu`` and padded with ``pad_hu`` outside the circle, stored as ``(HU - intercept) / slope`` in signed or
    unsigned 16-bit integers (``bits_stored`` of them), with Pixel Padding Value set when ``padding_tag`` (and Pixel
    Padding Range Limit at ``range_limit_hu``); only the
    files ``slices`` of the series sorted by name (a contiguous run of slices keeps the tests fast)."""
    import pydicom
    import SimpleITK as sitk
    from pydicom.uid import ExplicitVRLittleEndian

    dst.mkdir(parents=True, exist_ok=True)
    for path in _by_position(src)[slices]:
        ds = pydicom.dcmread(path)
        hu = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))[0].astype(np.float64)
        if clip_hu is not None:
            hu = np.minimum(hu, clip_hu)
        if pad_hu is not None:
            spacing = [float(v) for v in ds.PixelSpacing]
            hu[outside_circle(hu.shape, spacing)] = pad_hu
        raw = np.rint((hu - intercept) / slope)
        dtype = np.uint16 if unsigned else np.int16
        lim = np.iinfo(dtype)
        top = (1 << bits_stored) - 1 if unsigned else (1 << (bits_stored - 1)) - 1
        low = 0 if unsigned else -(1 << (bits_stored - 1))
        assert raw.min() >= max(lim.min, low) and raw.max() <= min(lim.max, top), (raw.min(), raw.max())
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelRepresentation = 0 if unsigned else 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits_stored, bits_stored - 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
        for tag in (0x00280120, 0x00280121, 0x00280106, 0x00280107):
            if tag in ds:
                del ds[tag]
        if padding_tag and pad_hu is not None:
            ds.add_new(0x00280120, "US" if unsigned else "SS", int(round((pad_hu - intercept) / slope)))
            if range_limit_hu is not None:
                ds.add_new(0x00280121, "US" if unsigned else "SS", int(round((range_limit_hu - intercept) / slope)))
        ds.PixelData = raw.astype(dtype).tobytes()
        ds["PixelData"].VR = "OW"
        ds.save_as(dst / path.name, enforce_file_format=True)
    return dst


def _by_position(src: Path) -> list[Path]:
    import pydicom

    files = [p for p in src.iterdir() if p.is_file()]
    return sorted(files, key=lambda p: float(pydicom.dcmread(p, stop_before_pixels=True).ImagePositionPatient[2]))
