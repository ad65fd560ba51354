"""Shared cohort options for ``ctorgans label`` and ``ctorgans predict``: a folder, several files or a list of
paths, optionally on an existing Dask scheduler (``--scheduler tcp://host:8786``).

Not a sub-command itself: ``label`` and ``predict`` call :func:`add_cohort_arguments` on their parser and, in
``run``, hand over to :func:`run_cohort_command` when :func:`wants_cohort` says the input is a cohort.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["add_cohort_arguments", "wants_cohort", "run_cohort_command", "refuse_output_over_input",
           "refuse_series_for_cohort", "refuse_file_output_for_cohort"]


def add_cohort_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Add the cohort options (scheduler, workers, retries, summary, ...) to a sub-command's parser."""
    group = parser.add_argument_group(
        "cohort (a folder, several files or a .txt list of paths)",
        "Each scan is one task on a Dask cluster; outputs go next to the inputs, or mirror them under -o FOLDER. "
        "Complete outputs are skipped on a re-run; failed scans are listed in a summary table and CSV "
        "(exit status 1 when any failed).",
    )
    group.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="address of a running dask.distributed scheduler, e.g. tcp://10.0.0.5:8786 "
                            "(default: a local cluster sized to this machine)")
    group.add_argument("--workers", type=int, default=None, metavar="N",
                       help="local cluster size: N single-threaded worker processes (default: one per core)")
    group.add_argument("--memory-limit", default="auto", metavar="SIZE",
                       help="memory per local worker, e.g. 4GB (default: the machine's memory split evenly); "
                            "a worker over it is restarted and its scan retried")
    group.add_argument("--retries", type=int, default=2, metavar="N",
                       help="retries of a scan after a worker failure (default: 2)")
    group.add_argument("--summary", default=None, metavar="CSV",
                       help="where to write the summary CSV (default: ctorgans_<task>_summary.csv in the output "
                            "folder)")
    group.add_argument("--require", default="", metavar="ORGANS",
                       help="comma-separated organs every output must contain, e.g. lungs: scans where one is "
                            "missing are reported as failed")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    return group


def _as_list(inputs) -> list[str]:
    if inputs is None:
        return []
    if isinstance(inputs, (str, os.PathLike)):
        return [str(inputs)]
    return [str(i) for i in inputs]


def wants_cohort(inputs: str | Sequence[str], scheduler: str | None = None) -> bool:
    """Whether the input names a cohort: several paths, a folder of scans, a ``.txt`` list, or a scheduler."""
    from ..cohort import LIST_SUFFIXES, _has_dicom

    items = _as_list(inputs)
    if scheduler or len(items) > 1:
        return True
    if not items:
        return False
    p = Path(items[0]).expanduser()
    if p.is_file():
        return p.suffix.lower() in LIST_SUFFIXES
    return p.is_dir() and not _has_dicom(p)  # a folder of DICOM slices is one scan


def refuse_output_over_input(input, output) -> None:
    """Refuse a single-scan ``-o`` that is the input itself (or lies inside its DICOM folder), even with
    ``--overwrite``: writing it would replace the CT. Called by ``label`` and ``predict`` before any work.

    Raises
    ------
    ValueError
        Naming the output, the input and the fix.
    """
    from ..cohort import check_outputs

    check_outputs([Path(input)], [Path(output)])


def refuse_series_for_cohort(args: argparse.Namespace) -> None:
    """``--series`` names one series of one DICOM folder: refused for a cohort, before any work."""
    if getattr(args, "series", None):
        raise ValueError(f"--series {args.series} picks one series of one DICOM folder: run the command on that folder "
                         "alone (one INPUT and -o FILE), then the rest of the cohort without --series")


def refuse_file_output_for_cohort(inputs, output) -> None:
    """A cohort writes a folder: refuse a ``-o`` named like a file (``-o o2.nii.gz``) before anything is written.

    A ``.txt`` (``.lst``, ``.list``) input is a list of scans, so ``ctorgans label scans.txt -o out.nii.gz`` is a
    cohort whose ``-o`` looks like one label file: the message says how the input was read and how to write one file.
    """
    from ..cohort import LIST_SUFFIXES
    from ..io.formats import _BY_SUFFIX, _suffix

    if output is None or Path(output).is_dir():
        return
    suffix = _suffix(Path(output))
    if suffix not in (*_BY_SUFFIX, ".csv", ".json") and not Path(output).is_file():
        return
    items = _as_list(inputs)
    lists = [i for i in items if Path(i).suffix.lower() in LIST_SUFFIXES]
    how = (f"{lists[0]} is read as a list of scans, one path per line, so this is a cohort" if lists else
           f"the {len(items)} inputs make a cohort" if len(items) > 1 else f"{items[0]} is a folder of scans, a cohort")
    raise ValueError(f"-o {output} names a file, but {how}, which writes one label file per scan into a folder: give "
                     "-o an output folder (or leave it out to write next to the scans); for one scan give its CT "
                     "file or DICOM folder as INPUT. Nothing was written.")


def run_cohort_command(args: argparse.Namespace, *, task: str, inputs=None, output=None, checkpoint=None,
                       options: dict | None = None) -> int:
    """Run a cohort from parsed arguments; print the summary table; return the exit status (1 if any failed).

    ``inputs``, ``output`` and ``checkpoint`` default to ``args.input``/``args.inputs``, ``args.output`` and
    ``args.checkpoint``, so sub-commands whose options are named differently can pass them explicitly.
    """
    from ..cohort import run_cohort

    if getattr(args, "resample_irregular", False):
        raise ValueError("--resample-irregular reads one scan at a time: run the command on that DICOM series alone "
                         "(one INPUT and -o FILE), then the rest of the cohort without it")
    if inputs is None:
        inputs = getattr(args, "inputs", None) or getattr(args, "input", None)
    if output is None:
        output = getattr(args, "output", None)
    if checkpoint is None and task == "predict":
        checkpoint = getattr(args, "checkpoint", None)
    refuse_file_output_for_cohort(inputs, output)
    summary = run_cohort(
        _as_list(inputs),
        task=task,
        output_dir=output,
        checkpoint=checkpoint,
        scheduler=getattr(args, "scheduler", None),
        n_workers=getattr(args, "workers", None),
        memory_limit=getattr(args, "memory_limit", "auto"),
        retries=getattr(args, "retries", 2),
        overwrite=bool(getattr(args, "overwrite", False)),
        progress=not getattr(args, "no_progress", False),
        summary_csv=getattr(args, "summary", None),
        options=options,
        require=getattr(args, "require", "") or (),
        format=getattr(args, "format", None) or "nifti",
    )
    print(summary.table())
    if summary.csv_path is not None:
        print(f"summary written to {summary.csv_path}")
    failed = summary.failed
    if failed:
        print(f"{len(failed)} scan(s) failed; fix them and run the same command again: complete outputs are "
              "skipped", file=sys.stderr)
    return 1 if failed else 0
