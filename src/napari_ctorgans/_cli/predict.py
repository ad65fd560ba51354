"""``ctorgans predict INPUT [--checkpoint C] -o OUT``: segment a CT (or a folder of CTs) with the built-in starter
model or a trained one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        usage="ctorgans predict INPUT [--checkpoint C] -o OUTPUT [options]\n"
        "       ctorgans predict INPUT [INPUT ...] [--checkpoint C] [-o FOLDER] [options]   (a cohort)\n"
        "       (without --checkpoint: the built-in starter model)",
        help="segment CT scans with the built-in starter model or a trained one",
        description="Predict organ labels with the built-in starter model (the default: a first draft of the five "
        "organs, no training; see docs/starter-model.md) or a checkpoint from 'ctorgans train'; the label map is written in the input's geometry. A folder of "
        "scans, several files or a .txt list is a cohort: one task per scan on a local Dask cluster (or "
        "--scheduler), outputs scan_pred.nii.gz next to the inputs or mirrored under -o.",
    )
    p.add_argument("input", nargs="+", help="CT file, DICOM series folder, or a folder of CT files; several files, "
                   "a .txt list of paths, or --scheduler/--workers run a cohort on Dask (see the cohort options)")
    p.add_argument("--checkpoint", "-c", default=None,
                   help="best.pt or last.pt from 'ctorgans train', or a .safetensors model (default: 'starter', the "
                   "built-in starter model that ships with the package)")
    p.add_argument("-o", "--output", default=None, help="label file (or folder when INPUT is a folder of files; "
                   "a cohort writes next to the inputs without it)")
    from ..contract import DEFAULT_OVERLAP

    p.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                   help="tile overlap in [0, 1) when the scan is tiled")
    p.add_argument("--mode", default="gaussian", choices=("gaussian", "constant"), help="tile blending")
    p.add_argument("--batch-size", type=int, default=None, help="tiles per forward pass (default 1 on CPU, 4 on CUDA)")
    p.add_argument("--tta", action="store_true", help="mirroring test-time augmentation (8x slower)")
    p.add_argument("--no-postprocess", action="store_true", help="skip largest-component and hole filling")
    p.add_argument("--labelers", default="auto", metavar="ORGANS",
                   help="organs taken from the automatic labellers instead of the network: 'auto' (default: lungs "
                   "and bone with the starter model and models fine-tuned from it, none with other checkpoints), "
                   "'none', or a list such as 'lungs,bone'")
    p.add_argument("--no-plausible", action="store_true",
                   help="keep organs where they cannot be (by default ct.plausible removes them and each removal "
                   "is printed, e.g. 'removed 415 mL of bladder outside the bony pelvis')")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    from ._args import add_label_format, add_resample_irregular, add_series

    add_series(p)
    add_resample_irregular(p)
    add_label_format(p)
    from .cohort import add_cohort_arguments  # cohort: several files / a list / --scheduler / --workers

    add_cohort_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import napari_ctorgans as ct
    from napari_ctorgans.infer.predict import Predictor

    from ..infer.hybrid import resolve_labelers
    from ..models import resolve_model
    from .cohort import refuse_series_for_cohort, run_cohort_command, wants_cohort

    resolve_labelers(args.labelers)  # a bad --labelers fails before any scan is read
    args.checkpoint = str(resolve_model(args.checkpoint))  # no --checkpoint, or "starter": the built-in model
    # [cohort] several inputs, a list of paths, a scheduler or a worker count: one Dask task per scan
    if args.scheduler or args.workers or len(args.input) > 1 or wants_cohort(args.input):
        refuse_series_for_cohort(args)
        return run_cohort_command(args, task="predict", inputs=args.input, options={
            "overlap": args.overlap, "mode": args.mode, "batch_size": args.batch_size, "tta": args.tta,
            "postprocess_labels": not args.no_postprocess, "device": args.device, "labelers": args.labelers,
            "plausible": not args.no_plausible})
    args.input = args.input[0]
    if args.output is None:
        raise ValueError("-o/--output is required for a single scan")
    from .cohort import refuse_output_over_input  # -o must not be the CT itself, even with --overwrite

    refuse_output_over_input(args.input, args.output)

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    device = args.device or ("cuda" if __import__("torch").cuda.is_available() else "cpu")
    predictor = Predictor.from_checkpoint(args.checkpoint, device=device)
    scan, out = Path(args.input), Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    from ._ct import read_ct

    vol = read_ct(scan, series=args.series, resample_irregular=args.resample_irregular)
    from ..io.formats import check_label_output, write_label_file

    fmt = check_label_output(out, vol, args.format)  # before the prediction, not after
    bar = tqdm(desc=scan.name[:30], unit="tile", file=sys.stderr) if tqdm and not args.no_progress else None

    def progress(done, total):
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    labels, report = ct.predict(vol, predictor, overlap=args.overlap, mode=args.mode, batch_size=args.batch_size,
                                tta=args.tta, postprocess_labels=not args.no_postprocess, device=device,
                                progress=progress, labelers=args.labelers, plausible=not args.no_plausible,
                                return_report=True)
    if bar is not None:
        bar.close()
    path = write_label_file(out, labels, vol, fmt, overwrite=args.overwrite)
    from ..quality import cut_off_notes
    from .info import organ_summary

    print(f"wrote {path} ({organ_summary(labels, vol.voxel_volume_ml)})")
    for line in report.lines(notes=cut_off_notes(labels)):  # confidence, cut off by the scan, removals
        print(f"  {line}")
    return 0
