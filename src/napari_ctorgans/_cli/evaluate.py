"""``ctorgans evaluate PRED REF``: per-organ Dice, IoU, VOE, RVD, ASSD, MSSD, RMSD, HD95 and surface Dice."""

from __future__ import annotations

import argparse
import math


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare a predicted label map with a reference label map, organ by organ",
        description="Per-organ metrics (distances in mm, volumes in mL) of PRED against REF; both label files must "
        "share a grid (shape, spacing, origin, direction).",
    )
    p.add_argument("pred", help="predicted label map (.nii.gz, .nrrd, .mha, ...)")
    p.add_argument("ref", help="reference label map on the same grid")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--tolerance", type=float, default=2.0, help="surface Dice tolerance in mm (default 2)")
    p.add_argument("--organs", nargs="+", help="organ names or label values (default: all present)")
    p.set_defaults(func=run)


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def run(args: argparse.Namespace) -> int:
    from ..io import read_labels
    from ..metrics import evaluate, write_csv

    pred = read_labels(args.pred)
    ref = read_labels(args.ref)
    if not pred.same_grid(ref):
        raise ValueError(
            f"PRED and REF must be on the same grid: PRED has shape {pred.shape} and spacing {pred.spacing}, "
            f"REF has shape {ref.shape} and spacing {ref.spacing}; resample the prediction to the reference first"
        )
    organs = None
    if args.organs:
        organs = [int(o) if o.isdigit() else o for o in args.organs]
    rows = evaluate(pred.array, ref.array, spacing=ref.spacing, organs=organs, tolerance_mm=args.tolerance)
    header = ["organ", "dice", "iou", "voe", "rvd", "assd", "mssd", "rmsd", "hd95", f"sdice@{args.tolerance:g}mm"]
    print("  ".join(f"{h:>10}" for h in header))
    for r in rows:
        vals = [r.dice, r.iou, r.voe, r.rvd, r.assd, r.mssd, r.rmsd, r.hd95, r.surface_dice]
        print("  ".join([f"{r.organ:>10}", *(f"{_fmt(v):>10}" for v in vals)]))
    if args.csv:
        path = write_csv(rows, args.csv)
        print(f"wrote {path}")
    return 0
