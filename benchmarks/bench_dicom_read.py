"""Cost of the validated DICOM reader (pydicom headers of every slice, checks, GDCM pixels) against GDCM's series
reader alone, and of the gantry-tilt resampling.

Data: the real 20-slice JPEG 2000 series ``abdomen_dicom/``, and a 141-slice uncompressed series written from
``chest_native.nii.gz`` (512 x 512 x 141, int16) into a temporary folder; a copy of it with a 15 degree gantry tilt
(ImageOrientationPatient rewritten) is resampled. Prints the median of ``--repeat`` runs. Run::

    .venv/bin/python benchmarks/bench_dicom_read.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

import napari_ctorgans as ct

DATA = Path(os.environ.get("CTORGANS_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) / "ct"


def _write_series(folder: Path) -> None:
    img = sitk.DICOMOrient(sitk.ReadImage(str(DATA / "chest_native.nii.gz")), "LPS")
    arr = sitk.GetArrayFromImage(img).astype(np.int16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    spacing, origin = img.GetSpacing(), img.GetOrigin()
    for z in range(arr.shape[0]):
        plane = sitk.GetImageFromArray(arr[z : z + 1])
        plane.SetSpacing(spacing)
        pos = (origin[0], origin[1], origin[2] + z * spacing[2])
        plane.SetOrigin(pos)
        for key, value in {"0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
                           "0020|000e": "1.2.826.0.1.3680043.2.1125.9", "0008|0018": f"1.2.826.0.1.3680043.2.1125.9.{z + 1}",
                           "0020|0013": str(z + 1), "0020|0032": "\\".join(f"{p:.4f}" for p in pos),
                           "0020|0037": "1\\0\\0\\0\\1\\0"}.items():
            plane.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"IM{z:04d}.dcm"))
        writer.Execute(plane)


def _tilt(src: Path, dst: Path, degrees: float = 15.0) -> None:
    shutil.copytree(src, dst)
    t = np.radians(degrees)
    for f in dst.iterdir():
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1, 0, 0, 0, float(np.cos(t)), float(np.sin(t))]
        ds.save_as(f)


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _gdcm(folder: Path):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return ct.io.from_sitk(reader.Execute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        native, tilted = Path(tmp) / "chest", Path(tmp) / "chest_tilted"
        native.mkdir()
        _write_series(native)
        _tilt(native, tilted)
        for name, folder in [("abdomen_dicom (20 x 512 x 512, JPEG 2000)", DATA / "abdomen_dicom"),
                             ("chest (141 x 512 x 512, uncompressed)", native)]:
            same = np.array_equal(ct.read_volume(folder).array, _gdcm(folder).array)
            new = _median_time(lambda: ct.read_volume(folder), args.repeat)
            old = _median_time(lambda: _gdcm(folder), args.repeat)
            listing = _median_time(lambda: ct.list_dicom_series(folder), args.repeat)
            print(f"{name}: read_volume {new:.2f} s, GDCM series reader {old:.2f} s, list_dicom_series "
                  f"{listing:.2f} s, same array {same}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tilt = _median_time(lambda: ct.read_volume(tilted), args.repeat)
        print(f"chest with a 15 degree gantry tilt (resampled): read_volume {tilt:.2f} s")


if __name__ == "__main__":
    main()
