"""``ctorgans label INPUT -o OUTPUT``: automatic lung and bone labels written in the input's geometry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "label",
        usage="ctorgans label INPUT -o OUTPUT [options]\n"
        "       ctorgans label INPUT [INPUT ...] [-o FOLDER] [options]   (a cohort)",
        help="label lungs and bone of a CT automatically",
        description="Label lungs (3) and bone (5) of a CT with the unsupervised labelers; the label file is "
        "written in the input's geometry.",
    )
    p.add_argument("input", nargs="+", help="CT file (NIfTI, NRRD, MHA) or DICOM series folder; several files, a "
                   "folder of scans or a .txt list of paths label a cohort (see the cohort options)")
    p.add_argument("-o", "--output", default=None, help="label file to write, e.g. labels.nii.gz: required for one "
                   "scan (a cohort: an output folder; default next to each input)")
    p.add_argument("--organs", default="lungs,bone", help="comma-separated organs among lungs,bone (default both)")
    p.add_argument("--backend", default="auto", choices=("auto", "cpu", "cuda"), help="morphology backend")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    from ._args import add_label_format, add_resample_irregular, add_series

    add_series(p)
    add_resample_irregular(p)
    add_label_format(p)
    from .cohort import add_cohort_arguments  # cohort: folder / several files / --scheduler

    add_cohort_arguments(p)
    p.set_defaults(func=run)


def check_organs(text: str) -> list[str]:
    """The ``--organs`` list, refused with a fix for organs this command does not label."""
    from ..labelers import ORGAN_LABELERS
    from ..organs import ORGANS

    organs = [o.strip().lower() for o in text.split(",") if o.strip()]
    known = {o.name for o in ORGANS.values() if o.value}
    unknown = [o for o in organs if o not in known]
    if unknown:
        raise ValueError(f"--organs: unknown organ(s) {', '.join(unknown)}; ctorgans label labels "
                         f"{' and '.join(ORGAN_LABELERS)} (e.g. --organs {','.join(ORGAN_LABELERS)})")
    other = [o for o in organs if o not in ORGAN_LABELERS]
    if other:
        raise ValueError(
            f"--organs: ctorgans label labels only {' and '.join(ORGAN_LABELERS)} automatically, not "
            f"{', '.join(other)}. For {', '.join(other)}: grow {'it' if len(other) == 1 else 'them'} from seed "
            "points in napari (Plugins > CT Organs > Auto label, 'Grow organ'), or segment with a trained model: "
            "ctorgans predict INPUT -o OUTPUT (the built-in starter model, a first draft to check; or --checkpoint "
            "best.pt, a model from ctorgans train)")
    if not organs:
        raise ValueError(f"--organs is empty; give some of {','.join(ORGAN_LABELERS)}")
    return organs


def run(args: argparse.Namespace) -> int:
    import napari_ctorgans as ct

    from .cohort import refuse_series_for_cohort, run_cohort_command, wants_cohort

    organs = check_organs(args.organs)
    if wants_cohort(args.input, args.scheduler):
        refuse_series_for_cohort(args)
        return run_cohort_command(args, task="label", inputs=args.input,
                                  options={"organs": organs, "backend": args.backend})
    args.input = args.input[0]
    if args.output is None:
        raise ValueError("-o/--output is required for a single scan, e.g. -o labels.nii.gz")
    from .cohort import refuse_output_over_input  # -o must not be the CT itself, even with --overwrite

    refuse_output_over_input(args.input, args.output)
    from ..io.formats import check_label_output, label_format, write_label_file

    label_format(args.output, args.format)  # a bad suffix or format, and an existing output: before the work
    if Path(args.output).exists() and not args.overwrite:
        raise FileExistsError(f"{args.output} already exists; pass --overwrite to replace it, or choose another -o")
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    from ._ct import read_ct

    vol = read_ct(args.input, series=args.series, resample_irregular=args.resample_irregular)
    fmt = check_label_output(args.output, vol, args.format)  # before the work, not after
    bar = (tqdm(total=len(organs) + 1, desc="label", unit="step", file=sys.stderr)
           if tqdm and not args.no_progress else None)

    def progress(step, total, message):
        if bar is not None:
            bar.set_postfix_str(message)
            bar.update(step - bar.n)

    import warnings

    from ..plausibility import ImplausibleOrganWarning

    with warnings.catch_warnings(record=True) as caught:  # ct.plausible's removals: printed below
        warnings.simplefilter("always", ImplausibleOrganWarning)
        labels = ct.auto_label(vol, organs=organs, backend=args.backend, progress=progress)
    if bar is not None:
        bar.close()
    path = write_label_file(args.output, labels, vol, fmt, overwrite=args.overwrite)
    from .info import organ_summary

    print(f"wrote {path} ({organ_summary(labels, vol.voxel_volume_ml)})")
    for w in caught:
        if issubclass(w.category, ImplausibleOrganWarning):
            print(f"  {w.message}")
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return 0
