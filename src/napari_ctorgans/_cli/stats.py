"""``ctorgans stats LABELS --ct CT -o report.csv|.json [--png report.png]``: the organ report of a label map."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stats",
        help="per-organ volume, HU statistics, position (LPS mm) and pieces; a one-page PNG report",
        description="Measure every organ of a label map on its CT: volume in mL; HU mean, std, median, 5th and "
        "95th percentile; centroid and bounding box in patient coordinates (mm, LPS, as DICOM viewers show "
        "them); number of connected pieces. The table is printed and written as CSV or JSON; --png draws each "
        "organ through its centroid in three planes with the table.",
    )
    p.add_argument("labels", help="label map (NIfTI, NRRD, MHA), DICOM-SEG or RTSTRUCT file, on the CT's grid")
    p.add_argument("--ct", required=True, help="the CT the labels belong to (file or DICOM series folder)")
    p.add_argument("-o", "--output", default=None, help="table to write: report.csv or report.json")
    p.add_argument("--png", default=None, help="one-page picture report to write, e.g. report.png")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    from ._args import add_series

    add_series(p, "--ct")
    p.set_defaults(func=run)


def _check_outputs(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    table = Path(args.output) if args.output else None
    png = Path(args.png) if args.png else None
    if table is not None and table.suffix.lower() not in (".csv", ".json"):
        raise ValueError(f"-o {table.name}: the table is written as .csv or .json; for the picture use --png")
    if png is not None and png.suffix.lower() != ".png":
        raise ValueError(f"--png {png.name}: the picture report is a .png file")
    for path in (table, png):
        if path is not None and path.exists() and not args.overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it")
    return table, png


def run(args: argparse.Namespace) -> int:
    import napari_ctorgans as ct
    from napari_ctorgans.stats import table_rows

    table, png = _check_outputs(args)
    from ._ct import read_ct

    volume = read_ct(args.ct, series=args.series, option="--ct")
    labels = ct.read_labels(args.labels, like=volume)
    rows = ct.organ_statistics(labels, volume)
    if not rows:
        raise ValueError(f"{args.labels} holds no organ (all background); there is nothing to report")
    for row in table_rows(rows):
        print(f"{row['name']:>10}  {row['volume_ml']:9.1f} mL  HU {row['hu_mean']:7.1f} ± {row['hu_std']:6.1f}  "
              f"centroid L {row['centroid_L_mm']:.1f} P {row['centroid_P_mm']:.1f} S {row['centroid_S_mm']:.1f} mm  "
              f"{row['pieces']} piece(s)")
    if table is not None:
        from napari_ctorgans.stats import write_statistics

        write_statistics(table, rows, overwrite=args.overwrite, extra={"ct": str(args.ct), "labels": str(args.labels)})
        print(f"wrote {table}")
    if png is not None:
        from napari_ctorgans.report import write_report_png

        write_report_png(png, labels, volume, rows, overwrite=args.overwrite)
        print(f"wrote {png}")
    return 0
