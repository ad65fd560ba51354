"""Write a CT volume as a DICOM CT series (pydicom), so that the demo can write a DICOM-SEG of a NIfTI sample."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..stats import index_to_lps
from ..volume import Volume


def _base(volume: Volume, uids: dict, description: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    ds.Modality = "CT"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Sample^Abdomen", "SAMPLE", "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.StudyDate, ds.StudyTime, ds.SeriesNumber = "20000101", "000000", 1
    ds.SeriesDescription, ds.Manufacturer = description[:64], "napari-ctorgans"
    ds.PositionReferenceIndicator = ""
    direction = np.asarray(volume.direction, dtype=float)
    row, col = direction[:, 2][::-1], direction[:, 1][::-1]  # LPS of the x (column) and y (row) index axes
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
    sz, sy, sx = volume.spacing
    ds.PixelSpacing, ds.SliceThickness = [f"{sy:.6f}", f"{sx:.6f}"], f"{sz:.6f}"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
    return ds


def write_ct_series(folder: str | os.PathLike, volume: Volume, *, description: str = "CT") -> Path:
    """Write ``volume`` (HU, within int16) as one DICOM CT series, one file per axial slice, into a new or empty
    ``folder``; ``ct.read_volume(folder)`` gives the same voxels on the same grid back."""
    import copy

    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; give a new folder for the DICOM series")
    arr = np.asarray(volume.array)
    if arr.min() < -32768 or arr.max() > 32767:
        raise ValueError(f"the CT's values {arr.min()}..{arr.max()} do not fit the int16 of a DICOM CT series")
    folder.mkdir(parents=True, exist_ok=True)
    uids = {key: generate_uid() for key in ("study", "series", "frame")}
    base = _base(volume, uids, description)
    for k in range(arr.shape[0]):
        ds = copy.deepcopy(base)
        ds.SOPInstanceUID, ds.InstanceNumber = generate_uid(), k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in index_to_lps(volume, (k, 0, 0))]
        ds.PixelData = np.ascontiguousarray(arr[k], dtype="<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.save_as(folder / f"CT{k + 1:04d}.dcm", enforce_file_format=True)
    return folder
