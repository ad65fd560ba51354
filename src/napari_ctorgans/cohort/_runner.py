"""Running a cohort on a Dask cluster: :func:`run_cohort` and the scheduling of its tasks."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ._inputs import TASKS, check_outputs, find_inputs, output_paths
from ._sidecar import _foreign, is_complete, sidecar_path
from ._summary import CohortRow, CohortSummary
from ._task import _organ_values, process_scan


def _local_cluster(n_workers: int | None, memory_limit):
    from .._dask_cluster import secure_local_cluster  # TLS with temporary credentials, no HTTP port

    return secure_local_cluster(n_workers, memory_limit)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return None
    return tqdm(total=total, unit="scan", desc="cohort")


def _check_arguments(task, checkpoint, retries, n_workers, scheduler, require, format) -> tuple:
    """Validate :func:`run_cohort`'s arguments before any work; returns the resolved checkpoint and organs."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "predict":
        from ..models import resolve_model

        checkpoint = resolve_model(checkpoint)  # None or "starter": the built-in starter model
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist; give the path of a trained model "
                                    "(.pt or .safetensors), or leave it unset for the built-in starter model")
        checkpoint = str(Path(checkpoint).resolve())
    elif checkpoint is not None:
        raise ValueError("checkpoint is only used with task='predict'; drop it or set task='predict'")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
    if n_workers is not None and (not isinstance(n_workers, int) or n_workers < 1):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if scheduler is not None and not isinstance(scheduler, str):
        raise TypeError(f"scheduler must be an address string such as 'tcp://host:8786', got {scheduler!r}")

    if isinstance(require, str):
        require = [r.strip() for r in require.split(",") if r.strip()]
    require = tuple(require)
    _organ_values(require)  # validate the names here, not on the workers
    from ..io.formats import LABEL_FORMATS

    if format not in LABEL_FORMATS:
        raise ValueError(f"format must be one of {', '.join(LABEL_FORMATS)}, got {format!r}")
    return checkpoint, require


def _plan(scans, outputs, overwrite: bool) -> tuple[list, list[int]]:
    """The rows known before the work (complete outputs skipped, foreign files kept) and the scans to process."""
    rows: list[CohortRow | None] = [None] * len(scans)
    todo = []
    for i, (scan, out) in enumerate(zip(scans, outputs)):
        if not overwrite and is_complete(out, scan):
            rows[i] = CohortRow(str(scan), str(out), "skipped", "output exists and is complete")
        elif not overwrite and _foreign(out):
            rows[i] = CohortRow(str(scan), str(out), "failed",
                                f"FileExistsError: {out} exists and was not written by a cohort run (no "
                                f"{sidecar_path(out).name}); it was left as it is: move it away, or pass "
                                "overwrite=True (CLI: --overwrite) to replace it")
        else:
            todo.append(i)
    return rows, todo


def run_cohort(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    task: str = "label",
    output_dir: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    memory_limit: str | float | None = "auto",
    retries: int = 2,
    overwrite: bool = False,
    progress: bool = True,
    summary_csv: str | os.PathLike | None | bool = None,
    options: dict | None = None,
    require: Sequence[str] = (),
    format: str = "nifti",
) -> CohortSummary:
    """Label (``task="label"``) or predict (``task="predict"``) every scan of a cohort on a Dask cluster.

    Parameters
    ----------
    inputs : folder, file, text file listing paths, or a list of these
        See :func:`find_inputs`.
    task : {"label", "predict"}
        ``"label"`` runs :func:`napari_ctorgans.auto_label`; ``"predict"`` runs :func:`napari_ctorgans.predict`
        with ``checkpoint``.
    output_dir : folder, optional
        Where outputs go, mirroring the inputs' sub-folders; default: next to each input
        (``scan.nii.gz`` -> ``scan_labels.nii.gz`` or ``scan_pred.nii.gz``).
    checkpoint : path, optional
        Model checkpoint (.pt or .safetensors) for ``task="predict"``; default (or ``"starter"``): the built-in
        starter model (docs/starter-model.md).
    scheduler : str, optional
        Address of a running ``dask.distributed`` scheduler (e.g. ``"tcp://10.0.0.5:8786"``); its workers must
        have this package installed and see the same file paths. Default: a local cluster of ``n_workers``
        single-threaded processes (default: one per core), closed at the end.
    n_workers : int, optional
        Size of the local cluster (ignored with ``scheduler``).
    memory_limit : str or float, optional
        Memory per local worker (``"4GB"``; ``"auto"`` splits the machine's memory); a worker that goes over is
        restarted and its scan retried, then reported as failed.
    retries : int
        How many times a scan is retried after a worker failure (lost worker, out of memory, I/O error).
    overwrite : bool
        Redo scans whose outputs are already complete (default: skip them), and replace files in the outputs'
        places that no cohort run wrote (default: leave them and report their scans as failed). An output that
        would replace an input is refused in any case.
    progress : bool
        Show a progress bar over the cohort.
    summary_csv : path, False or None
        Where the summary is written as CSV; default ``<output folder>/ctorgans_<task>_summary.csv``; False:
        not written.
    options : dict, optional
        Keyword options for ``auto_label`` or ``predict``.
    require : sequence of organ names
        Organs that every output must contain (e.g. ``("lungs",)``): a scan where one is not found is reported as
        failed (``"no lungs found"``) and no output is written.
    format : str
        Output format, one of :data:`napari_ctorgans.io.formats.LABEL_FORMATS` (``"nifti"``, ``"nrrd"``,
        ``"mha"``, ``"dicom-seg"``, ``"rtstruct"``); the output names take its suffix (``scan_labels.dcm``,
        ``scan_labels.rtstruct.dcm``). DICOM-SEG and RTSTRUCT need scans that are DICOM series; other scans are
        reported as failed with the reason.

    Returns
    -------
    CohortSummary
        One :class:`CohortRow` per scan, in input order (``print(summary)`` shows the table).

    Raises
    ------
    ValueError
        Unknown ``task``, ``predict`` without a ``checkpoint``, a negative ``retries``, no scans, or outputs that
        clash (:func:`check_outputs`); nothing is written then.
    FileNotFoundError
        ``checkpoint`` does not exist.

    Examples
    --------
    >>> from napari_ctorgans.cohort import run_cohort
    >>> summary = run_cohort("scans/", task="label", output_dir="labels/")  # doctest: +SKIP
    >>> print(summary)  # doctest: +SKIP
    """
    checkpoint, require = _check_arguments(task, checkpoint, retries, n_workers, scheduler, require, format)
    from ..io.formats import LABEL_FORMATS

    scans, root = find_inputs(inputs)
    outputs = output_paths(scans, root, task=task, output_dir=output_dir, ext=LABEL_FORMATS[format])
    check_outputs(scans, outputs)
    rows, todo = _plan(scans, outputs, overwrite)
    if todo:
        _run_tasks(scans, outputs, todo, rows, task=task, checkpoint=checkpoint, scheduler=scheduler,
                   n_workers=n_workers, memory_limit=memory_limit, retries=retries,
                   progress=progress, options=options, require=require, format=format)
    summary = CohortSummary(rows)  # type: ignore[arg-type]
    if summary_csv is not False:
        target = Path(summary_csv) if summary_csv else Path(output_dir or root) / f"ctorgans_{task}_summary.csv"
        summary.to_csv(target)
        summary.csv_path = target
    return summary


def _run_tasks(scans, outputs, todo, rows, *, task, checkpoint, scheduler, n_workers, memory_limit, retries,
               progress, options, require, format="nifti") -> None:
    import dask
    from distributed import Client, as_completed

    # a worker that dies (out of memory) takes its task with it: allow as many failures as retries
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        cluster = None if scheduler else _local_cluster(n_workers, memory_limit)
        client = Client(scheduler if scheduler else cluster)
        bar = _progress_bar(len(todo), progress)
        try:
            futures = {}
            for i in todo:
                fut = client.submit(process_scan, str(scans[i]), str(outputs[i]), task=task, checkpoint=checkpoint,
                                    options=options, require=require, format=format, retries=retries,
                                    pure=False,
                                    key=f"ctorgans-{task}-{i}-{os.urandom(4).hex()}")
                futures[fut] = i
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    rows[i] = CohortRow(**fut.result())
                except Exception as exc:  # noqa: BLE001 - a worker crash or a machine error after all retries
                    name = type(exc).__name__
                    hint = " (the worker died, e.g. out of memory: lower n_workers or raise memory_limit)" \
                        if name == "KilledWorker" else ""
                    rows[i] = CohortRow(str(scans[i]), str(outputs[i]), "failed", f"{name}: {exc}{hint}")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{Path(scans[i]).name}: {rows[i].status}")
        finally:
            if bar is not None:
                bar.close()
            client.close()
            if cluster is not None:
                cluster.close()
