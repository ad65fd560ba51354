"""``ctorgans evaluate PRED REF``: per-organ Dice, IoU, VOE, RVD, ASSD, MSSD, RMSD, HD95 and surface Dice.

PRED and REF are two label files, or two folders of label files. Folders are paired by file name: a prediction
``NAME`` pairs with the reference of the same file name; otherwise ``<stem>_labels.<ext>`` pairs with ``<stem>.<ext>``
(either side may carry the ``_labels`` suffix; the extensions may differ, e.g. ``.nii.gz`` against ``.nrrd``). Files
left without a partner, or whose key is shared by several files, are reported and skipped.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

LABEL_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="compare predicted label maps with reference label maps, organ by organ",
        description="Per-organ metrics (distances in mm, volumes in mL) of PRED against REF; both label files must "
        "share a grid (shape, spacing, origin, direction). With two folders, files are paired by name (same file "
        "name, or '<stem>_labels' against '<stem>'), every pair is evaluated and the CSV gets a 'case' column plus "
        "rows with case 'global' holding the global Dice per organ over all cases.",
    )
    p.add_argument("pred", help="predicted label map (.nii.gz, .nrrd, .mha, ...) or a folder of them")
    p.add_argument("ref", help="reference label map on the same grid, or a folder of them")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--tolerance", type=float, default=2.0, help="surface Dice tolerance in mm (default 2)")
    p.add_argument("--organs", nargs="+", help="organ names or label values (default: all present)")
    p.set_defaults(func=run)


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3f}"


def _split(name: str) -> tuple[str, str] | None:
    low = name.lower()
    for suffix in LABEL_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)], suffix
    return None


def _label_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and _split(p.name) is not None)


def _key(name: str) -> str:
    stem = _split(name)[0]
    return stem[: -len("_labels")] if stem.endswith("_labels") else stem


def pair_files(pred_dir: Path, ref_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[Path], list[Path]]:
    """Pair label files of two folders: ``(pairs as (case, pred, ref), unpaired preds, unpaired refs)``.

    A prediction pairs with the reference of the same file name; the others pair by stem with any ``_labels``
    suffix removed (``case1_labels.nii.gz`` with ``case1.nii.gz``). A key shared by several files pairs nothing.
    """
    preds, refs = _label_files(pred_dir), _label_files(ref_dir)
    ref_by_name = {p.name: p for p in refs}
    pairs, left_preds = [], []
    for p in preds:
        if p.name in ref_by_name:
            pairs.append((_key(p.name), p, ref_by_name.pop(p.name)))
        else:
            left_preds.append(p)
    by_key_p: dict[str, list[Path]] = {}
    by_key_r: dict[str, list[Path]] = {}
    for p in left_preds:
        by_key_p.setdefault(_key(p.name), []).append(p)
    for r in ref_by_name.values():
        by_key_r.setdefault(_key(r.name), []).append(r)
    unpaired_p, unpaired_r = [], []
    for key, ps in by_key_p.items():
        rs = by_key_r.pop(key, [])
        if len(ps) == 1 and len(rs) == 1:
            pairs.append((key, ps[0], rs[0]))
        else:
            unpaired_p += ps
            unpaired_r += rs
    for rs in by_key_r.values():
        unpaired_r += rs
    pairs.sort(key=lambda t: t[0])
    return pairs, sorted(unpaired_p), sorted(unpaired_r)


def _organs(args):
    if not args.organs:
        return None
    return [int(o) if o.isdigit() else o for o in args.organs]


def _check_grid(pred, ref, pred_name: str = "PRED", ref_name: str = "REF") -> None:
    if not pred.same_grid(ref):
        raise ValueError(
            f"{pred_name} and {ref_name} must be on the same grid: {pred_name} has shape {pred.shape} and spacing "
            f"{pred.spacing}, {ref_name} has shape {ref.shape} and spacing {ref.spacing}; resample the prediction "
            "to the reference first"
        )


def _print_table(rows, tolerance: float) -> None:
    header = ["organ", "dice", "iou", "voe", "rvd", "assd", "mssd", "rmsd", "hd95", f"sdice@{tolerance:g}mm"]
    print("  ".join(f"{h:>10}" for h in header))
    for r in rows:
        if r.status:  # on one side only: named as the napari panel names it, not scored 0 / inf
            print(f"{r.organ:>10}  {r.status:>10}  (pred {r.pred_ml:.1f} mL, ref {r.ref_ml:.1f} mL; the CSV keeps "
                  "Dice 0 and distances inf)")
            continue
        vals = [r.dice, r.iou, r.voe, r.rvd, r.assd, r.mssd, r.rmsd, r.hd95, r.surface_dice]
        print("  ".join([f"{r.organ:>10}", *(f"{_fmt(v):>10}" for v in vals)]))


def run(args: argparse.Namespace) -> int:
    pred_path, ref_path = Path(args.pred), Path(args.ref)
    if pred_path.is_dir() or ref_path.is_dir():
        if not (pred_path.is_dir() and ref_path.is_dir()):
            raise ValueError(
                f"PRED and REF must both be files or both be folders, got PRED {str(pred_path)!r} and REF "
                f"{str(ref_path)!r}"
            )
        return _run_folders(args, pred_path, ref_path)

    from ..io import read_labels
    from ..metrics import evaluate, write_csv

    pred = read_labels(args.pred)
    ref = read_labels(args.ref)
    _check_grid(pred, ref)
    rows = evaluate(pred.array, ref.array, spacing=ref.spacing, organs=_organs(args), tolerance_mm=args.tolerance)
    _print_table(rows, args.tolerance)
    if args.csv:
        path = write_csv(rows, args.csv)
        print(f"wrote {path}")
    return 0


def _run_folders(args: argparse.Namespace, pred_dir: Path, ref_dir: Path) -> int:
    from tqdm import tqdm

    from ..io import read_labels
    from ..metrics import NOT_IN_REFERENCE, NOT_PREDICTED, evaluate, write_csv

    pairs, lone_preds, lone_refs = pair_files(pred_dir, ref_dir)
    for p in lone_preds:
        print(f"unpaired prediction: {p}", file=sys.stderr)
    for r in lone_refs:
        print(f"unpaired reference: {r}", file=sys.stderr)
    if not pairs:
        raise ValueError(
            f"no pairs of label files between {str(pred_dir)!r} and {str(ref_dir)!r}; name a prediction like its "
            "reference (same file name, or '<stem>_labels.nii.gz' for '<stem>.nii.gz')"
        )
    organs = _organs(args)
    rows, failed = [], []
    pool: dict[int, list] = {}  # label -> [organ, intersection, pred + ref voxels]
    for case, p, r in tqdm(pairs, desc="evaluate", unit="case"):
        try:
            pred, ref = read_labels(p), read_labels(r)
            _check_grid(pred, ref, p.name, r.name)
            case_rows = evaluate(pred.array, ref.array, spacing=ref.spacing, organs=organs,
                                 tolerance_mm=args.tolerance, case=case)
        except (ValueError, TypeError, OSError) as exc:
            failed.append(case)
            tqdm.write(f"case {case}: skipped: {exc}", file=sys.stderr)
            continue
        for row in case_rows:
            acc = pool.setdefault(row.label, [row.organ, 0, 0])
            acc[1] += row.intersection_voxels
            acc[2] += row.pred_voxels + row.ref_voxels
        rows.extend(case_rows)
    # global Dice per organ: 2 sum|S & R| / sum(|S| + |R|) over the cases (ct.metrics.global_dice, from the counts)
    global_rows = [
        {"case": "global", "label": label, "organ": organ, "dice": 1.0 if total == 0 else 2.0 * inter / total}
        for label, (organ, inter, total) in sorted(pool.items())
    ]
    print(f"{len(pairs) - len(failed)} case(s) evaluated, {len(failed)} skipped, "
          f"{len(lone_preds) + len(lone_refs)} unpaired file(s)")
    print(f"{'organ':>10}  {'mean dice':>10}  {'global dice':>11}  {'not predicted':>13}  {'not in reference':>16}")
    for g in global_rows:
        organ_rows = [r for r in rows if r.label == g["label"]]
        missing = [sum(r.status == s for r in organ_rows) for s in (NOT_PREDICTED, NOT_IN_REFERENCE)]
        print(f"{g['organ']:>10}  {sum(r.dice for r in organ_rows) / len(organ_rows):>10.3f}  {g['dice']:>11.3f}  "
              f"{missing[0]:>13}  {missing[1]:>16}")  # cases on one side only: their Dice 0 is in the mean
    if args.csv:
        path = write_csv([*rows, *global_rows], args.csv)
        print(f"wrote {path}")
    return 1 if failed else 0
