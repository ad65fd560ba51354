"""Command-line options shared by several sub-commands, defined once."""

from __future__ import annotations

import argparse


def add_resample_irregular(parser: argparse.ArgumentParser) -> None:
    """``--resample-irregular``: read an unevenly spaced DICOM series (``read_volume(..., resample_irregular=True)``)."""
    parser.add_argument("--resample-irregular", action="store_true",
                        help="read a DICOM series with uneven slice spacing or missing slices by interpolating onto "
                             "an even grid between the true slice positions (refused by default)")


def add_label_format(parser: argparse.ArgumentParser) -> None:
    """``--format``: the label file format of the output."""
    # the names of io.formats.LABEL_FORMATS, literal so that building the parser does not import SimpleITK
    parser.add_argument("--format", default=None, choices=("nifti", "nrrd", "mha", "dicom-seg", "rtstruct"),
                        help="label file format (default: from the output suffix; dicom-seg and rtstruct need a CT "
                             "read from its DICOM series)")


def add_series(parser: argparse.ArgumentParser, what: str = "INPUT") -> None:
    """``--series UID``: which DICOM series of a folder that holds several (``read_volume(..., series=UID)``)."""
    parser.add_argument("--series", default=None, metavar="UID",
                        help=f"the SeriesInstanceUID to read when the DICOM folder {what} holds several series (the "
                             "error message lists them)")
