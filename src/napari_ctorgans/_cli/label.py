"""``ctorgans label INPUT -o OUTPUT``: automatic lung and bone labels written in the input's geometry."""

from __future__ import annotations

import argparse
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label",
        help="label lungs and bone of a CT automatically",
        description="Label lungs (3) and bone (5) of a CT with the unsupervised labelers; the label file is "
        "written in the input's geometry.",
    )
    p.add_argument("input", nargs="+", help="CT file (NIfTI, NRRD, MHA) or DICOM series folder; several files, a "
                   "folder of scans or a .txt list of paths label a cohort (see the cohort options)")
    p.add_argument("-o", "--output", default=None, help="label file to write, e.g. labels.nii.gz (a cohort: an "
                   "output folder; default next to each input)")
    p.add_argument("--organs", default="lungs,bone", help="comma-separated organs among lungs,bone (default both)")
    p.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda"), help="morphology backend")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    # the names of io.formats.LABEL_FORMATS, literal so that building the parser does not import SimpleITK
    p.add_argument("--format", default=None, choices=("nifti", "nrrd", "mha", "dicom-seg", "rtstruct"),
                   help="label file format (default: from the output suffix; dicom-seg and rtstruct need a CT "
                   "read from its DICOM series)")
    from .cohort import add_cohort_arguments  # cohort: folder / several files / --scheduler

    add_cohort_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import napari_ctorgans as ct

    from .cohort import run_cohort_command, wants_cohort

    organs = [o.strip() for o in args.organs.split(",") if o.strip()]
    if wants_cohort(args.input, args.scheduler):
        return run_cohort_command(args, task="label", inputs=args.input,
                                  options={"organs": organs, "backend": args.backend})
    args.input = args.input[0]
    if args.output is None:
        raise ValueError("-o/--output is required for a single scan, e.g. -o labels.nii.gz")
    from .cohort import refuse_output_over_input  # -o must not be the CT itself, even with --overwrite

    refuse_output_over_input(args.input, args.output)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    vol = ct.read_volume(args.input)
    from ..io.formats import check_label_output, write_label_file

    fmt = check_label_output(args.output, vol, args.format)  # before the work, not after
    organs = [o.strip() for o in args.organs.split(",") if o.strip()]
    bar = tqdm(total=len(organs) + 1, desc="label", unit="step", file=sys.stderr) if tqdm else None

    def progress(step, total, message):
        if bar is not None:
            bar.set_postfix_str(message)
            bar.update(step - bar.n)

    labels = ct.auto_label(vol, organs=organs, backend=args.backend, progress=progress)
    if bar is not None:
        bar.close()
    path = write_label_file(args.output, labels, vol, fmt, overwrite=args.overwrite)
    counts = {int(v): int((labels == v).sum()) for v in (3, 5) if (labels == v).any()}
    print(f"wrote {path} ({', '.join(f'{k}: {n} voxels' for k, n in counts.items()) or 'no organ found'})")
    return 0
