"""Reading and writing CT volumes and label maps with their geometry (SimpleITK underneath).

SimpleITK orders axes (x, y, z); numpy arrays here are (z, y, x). The conversion happens only in
:mod:`napari_ctorgans.io._sitk`.
"""

from ._read import read_labels, read_volume
from ._sitk import CANONICAL, SUPPORTED_SUFFIXES, from_sitk, to_sitk
from ._write import atomic_output, write_bytes_atomic, write_labels, write_volume

__all__ = [
    "CANONICAL",
    "atomic_output",
    "SUPPORTED_SUFFIXES",
    "from_sitk",
    "list_dicom_series",
    "read_labels",
    "read_volume",
    "to_sitk",
    "write_bytes_atomic",
    "write_labels",
    "write_volume",
]


def __getattr__(name: str):
    if name == "list_dicom_series":  # pydicom loads only when DICOM is read
        from ._dicom import list_dicom_series

        return list_dicom_series
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
