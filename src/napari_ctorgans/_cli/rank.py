"""``ctorgans rank INPUT [INPUT ...] [-o rank.csv]``: order scans by expected correction effort."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rank",
        usage="ctorgans rank INPUT [INPUT ...] [--checkpoint C] [-o rank.csv] [options]",
        help="order scans by expected correction effort, the one to correct first on top",
        description="Predict each scan, measure where the draft is unsure (ct.uncertainty) and order the scans "
        "by expected correction effort: the uncertainty summed over the predicted organs and over the background "
        "voxels that may be a missed organ, in mL (docs/uncertainty.md). Correct the top scan first, then "
        "fine-tune on it. The table is printed; -o also writes it as CSV.",
    )
    p.add_argument("input", nargs="+", help="CT files, DICOM series folders, a folder of scans or a .txt list")
    p.add_argument("--checkpoint", "-c", default=None,
                   help="the model (default: 'starter', the built-in starter model)")
    p.add_argument("--method", default="entropy", choices=("entropy", "tta"),
                   help="entropy of one pass (default) or disagreement of mirrored passes (--passes times slower)")
    p.add_argument("--passes", type=int, default=4, help="mirrored passes of --method tta (2 to 8)")
    p.add_argument("--labelers", default="auto", metavar="ORGANS",
                   help="organs taken from the automatic labellers, as in 'ctorgans predict' (default: auto)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("-o", "--output", default=None, help="CSV file to write the ranking to, e.g. rank.csv")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..infer.hybrid import resolve_labelers
    from ..infer.predict import Predictor
    from ..infer.rank import rank_scans, write_rank_csv
    from ..models import resolve_model

    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() != ".csv":
        raise ValueError(f"-o {out.name}: the ranking is written as a .csv file (e.g. rank.csv)")
    if out is not None and out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")  # before the long work, not after
    resolve_labelers(args.labelers)  # a bad --labelers fails before any scan is read
    device = args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    model = Predictor.from_checkpoint(resolve_model(args.checkpoint), device=device)

    def progress(done: int, total: int, scan: str) -> None:
        print(f"[{done}/{total}] {scan}", file=sys.stderr, flush=True)

    rows = rank_scans(args.input, model, method=args.method, passes=args.passes, labelers=args.labelers,
                      device=device, progress=progress)
    print(f"{'rank':>4}  {'effort mL':>9}  {'unsure':>6}  scan")
    for row in rows:
        if row["error"]:
            print(f"{row['rank']:>4}  {'-':>9}  {'-':>6}  {row['scan']}  (not ranked: {row['error']})")
        else:
            print(f"{row['rank']:>4}  {row['effort_ml']:9.1f}  {row['uncertain_share']:6.1%}  {row['scan']}")
    if out is not None:
        write_rank_csv(out, rows, overwrite=args.overwrite)
        print(f"wrote {out}")
    failed = sum(bool(r["error"]) for r in rows)
    return 1 if failed == len(rows) else 0
