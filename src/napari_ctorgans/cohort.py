"""Cohort processing on Dask: label or predict hundreds of scans, one task per scan.

The engine is ``dask.distributed``: by default a :class:`~distributed.LocalCluster` sized to the machine (one
single-threaded worker process per core); given the address of an existing scheduler (``tcp://host:8786``) the
scans run on that cluster instead. Every scan is a task; a scan that fails is reported in the summary and does not
stop the others. Outputs are written atomically (:func:`napari_ctorgans.io.write_labels`) followed by a small JSON
sidecar, so a re-run skips the scans whose outputs are complete and redoes the others.

Nothing a user has is replaced by mistake: before any work starts, outputs that two scans would share (``scan.nii.gz``
beside ``scan.nrrd``, ``abd1.nii.gz`` beside a DICOM folder ``abd1/``) and outputs that would replace an input or
land inside a DICOM series folder are refused with the list of clashes (:func:`check_outputs`). The sidecar records
the input's path, size and modification time; an output whose sidecar names another input, or an input that
changed since, is redone; a file in an output's place that no cohort run wrote (no sidecar) is left alone and its
scan reported as failed, unless ``overwrite``. The local cluster speaks TLS with temporary credentials and serves
no HTTP port (:mod:`napari_ctorgans._dask_cluster`).

Errors are handled in two ways:

* problems of the scan itself (unreadable or corrupted file, not a CT, no lungs found, a checkpoint that does not
  fit): the task returns a ``failed`` row at once; running it again would fail the same way.
* problems of the machine (a worker killed for using too much memory, a lost node, ``MemoryError``, I/O errors):
  the task is retried up to ``retries`` times, possibly on another worker, then reported as ``failed``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "TASKS",
    "CohortRow",
    "CohortSummary",
    "find_inputs",
    "output_name",
    "output_paths",
    "check_outputs",
    "input_record",
    "is_complete",
    "process_scan",
    "run_cohort",
]

TASKS = ("label", "predict")
#: image suffixes picked up in a folder (DICOM series are found as folders of slices)
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: suffix added to an input's name to make its output name, by task
OUTPUT_SUFFIX = {"label": "_labels", "predict": "_pred"}
LIST_SUFFIXES = (".txt", ".lst", ".list")
SIDECAR = ".json"
_STATUSES = ("ok", "skipped", "failed")
# errors that come from the scan (or checkpoint) itself: retrying cannot help
_DATA_ERRORS = (ValueError, TypeError, FileNotFoundError, NotADirectoryError, KeyError, IndexError)


# ------------------------------------------------------------------------------------------------- summary
@dataclass
class CohortRow:
    """Outcome of one scan."""

    input: str
    output: str
    status: str  # "ok", "skipped" or "failed"
    error: str = ""
    seconds: float = 0.0


class CohortSummary(list):
    """The rows of a cohort run (a list of :class:`CohortRow`); prints as a table and saves as CSV."""

    csv_path: Path | None = None

    def counts(self) -> dict[str, int]:
        """Number of scans per status."""
        return {s: sum(1 for r in self if r.status == s) for s in _STATUSES}

    @property
    def failed(self) -> list[CohortRow]:
        return [r for r in self if r.status == "failed"]

    def table(self, *, width: int = 60) -> str:
        """A plain-text table: one line per scan, then the totals."""

        def cut(text: str, n: int, tail: bool) -> str:
            if len(text) <= n:
                return text
            return "..." + text[-(n - 3):] if tail else text[: n - 3] + "..."

        width = min(width, max([len("input")] + [len(r.input) for r in self]))
        lines = [f"{'input':<{width}}  {'status':<7}  {'seconds':>8}  error"]
        for r in self:
            error = r.error.splitlines()[0] if r.error else ""
            lines.append(f"{cut(r.input, width, True):<{width}}  {r.status:<7}  {r.seconds:8.1f}  "
                         f"{cut(error, 120, False)}")
        c = self.counts()
        lines.append(f"{len(self)} scans: {c['ok']} ok, {c['skipped']} skipped, {c['failed']} failed")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The rows as CSV text; also written to ``path`` when given."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(CohortRow)])
        writer.writeheader()
        for r in self:
            writer.writerow({**asdict(r), "seconds": f"{r.seconds:.3f}"})
        text = buf.getvalue()
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(text, newline="")
            os.replace(tmp, path)
        return text

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> CohortSummary:
        """Read a summary written by :meth:`to_csv`."""
        with open(path, newline="") as fh:
            rows = [CohortRow(r["input"], r["output"], r["status"], r["error"], float(r["seconds"]))
                    for r in csv.DictReader(fh)]
        return cls(rows)


# -------------------------------------------------------------------------------------------------- inputs
def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    suffix = _suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix in IMAGE_SUFFIXES else path.name


def _has_dicom(folder: Path) -> bool:
    from .io._read import _is_dicom_file

    from .io.dicom_seg import dicom_kind  # a DICOM-SEG or RTSTRUCT beside the scans is an output, not a series

    for entry in folder.iterdir():
        dicom = entry.is_file() and (entry.suffix.lower() == ".dcm" or _is_dicom_file(entry))
        if dicom and dicom_kind(entry) is None:
            return True
    return False


def _is_output_name(path: Path) -> bool:
    stem = _stem(path)
    return any(stem.endswith(s) for s in OUTPUT_SUFFIX.values())


def _scan_folder(folder: Path) -> list[Path]:
    # links to folders are followed (a linked DICOM series is a scan), each real folder once: a link back up the
    # tree (``loop -> ..``) or a second link to the same folder is not walked again
    found: list[Path] = []
    visited: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        here = Path(dirpath)
        st = os.stat(here)
        if (st.st_dev, st.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if here != folder and _has_dicom(here):
            found.append(here)  # a DICOM series folder: one scan; do not descend further
            dirnames[:] = []
            continue
        for name in sorted(filenames):
            p = here / name
            if name.startswith(".") or _suffix(p) not in IMAGE_SUFFIXES or _is_output_name(p):
                continue
            found.append(p)
    return found


def _read_list(path: Path) -> list[Path]:
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        out.append(p if p.is_absolute() else path.parent / p)
    return out


def find_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], Path]:
    """Expand a cohort description into a list of scans and their common root folder.

    Parameters
    ----------
    inputs : path or sequence of paths
        A folder (NIfTI/NRRD/MHA files anywhere below it, and DICOM series as sub-folders of slices; files whose
        names end in ``_labels`` or ``_pred`` are outputs and are left out), a text file (``.txt``) listing one
        path per line (relative paths are relative to the list; ``#`` starts a comment), a single scan, or a
        list of any of these.

    Returns
    -------
    (list of Path, Path)
        The scans, in a stable order without duplicates, and the folder their relative output paths start from.

    Raises
    ------
    TypeError
        ``inputs`` is not a path or a sequence of paths.
    ValueError
        No scan was found.
    """
    if isinstance(inputs, (str, os.PathLike)):
        items = [inputs]
    elif isinstance(inputs, Iterable):
        items = list(inputs)
    else:
        raise TypeError(f"inputs must be a folder, a file or a list of paths, got {type(inputs).__name__}")
    scans: list[Path] = []
    roots: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"inputs must hold paths, got {item!r} ({type(item).__name__})")
        p = Path(item).expanduser()
        if p.is_dir() and not _has_dicom(p):
            scans.extend(_scan_folder(p))
            roots.append(p)
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            listed = _read_list(p)
            scans.extend(listed)
            roots.extend(x.parent for x in listed)
        else:
            scans.append(p)  # a scan (missing files are reported as failed, not raised here)
            roots.append(p.parent)
    seen: set[str] = set()
    unique = []
    for s in scans:
        key = os.path.abspath(s)
        if key not in seen:
            seen.add(key)
            unique.append(s)
    if not unique:
        raise ValueError(f"inputs={inputs!r} holds no scan: expected NIfTI/NRRD/MHA files or DICOM series folders "
                         f"(suffixes {', '.join(IMAGE_SUFFIXES)})")
    try:
        root = Path(os.path.commonpath([os.path.abspath(r) for r in roots]))
    except ValueError:  # different drives
        root = Path(os.path.abspath(roots[0]))
    return unique, root


def output_name(scan: str | os.PathLike, task: str = "label", *, suffix: str | None = None,
                ext: str = ".nii.gz") -> str:
    """File name of a scan's output: its name without the image suffix, the task's suffix, then ``ext``.

    ``scan.nii.gz`` and ``scan.nrrd`` both give ``scan_labels.nii.gz`` (``_pred`` for prediction), and so does a
    DICOM folder ``scan/``: :func:`check_outputs` refuses such clashes before a cohort starts.
    """
    suffix = OUTPUT_SUFFIX[task] if suffix is None else suffix
    return f"{_stem(Path(scan))}{suffix}{ext}"


def output_paths(scans: Sequence[Path], root: Path, *, task: str = "label", output_dir=None,
                 suffix: str | None = None, ext: str = ".nii.gz") -> list[Path]:
    """Output file of each scan (named by :func:`output_name`): next to it (``output_dir=None``) or mirroring its
    place under ``root``; a DICOM folder ``series/`` gives ``series_labels.nii.gz`` beside the folder.
    """
    out = []
    for scan in scans:
        name = output_name(scan, task, suffix=suffix, ext=ext)
        if output_dir is None:
            out.append(scan.parent / name)
        else:
            try:
                rel = Path(os.path.relpath(os.path.abspath(scan.parent), os.path.abspath(root)))
            except ValueError:
                rel = Path()
            if rel.parts and rel.parts[0] == "..":  # outside the root (a list of scattered files)
                rel = Path()
            out.append(Path(output_dir) / rel / name)
    return out


def _path_key(path: str | os.PathLike) -> str:
    # links resolved; case folded, so that names differing only in case clash as they do on macOS and Windows
    return os.path.normcase(os.path.realpath(path)).casefold()


def check_outputs(scans: Sequence[str | os.PathLike], outputs: Sequence[str | os.PathLike]) -> None:
    """Refuse outputs that two scans share, or that would replace an input or be written inside a DICOM folder.

    Called before any work starts, so nothing is written when a clash is found.

    Raises
    ------
    ValueError
        Listing every clash (output and the scans behind it) and the fix.
    """
    inputs = {_path_key(s): Path(s) for s in scans}
    series = {k: p for k, p in inputs.items() if os.path.isdir(p)}
    shared: dict[str, tuple[str | os.PathLike, list[Path]]] = {}
    over: list[str] = []
    for scan, out in zip(scans, outputs):
        key = _path_key(out)
        shared.setdefault(key, (out, []))[1].append(Path(scan))
        if key in inputs:
            over.append(f"  {out} is the input {inputs[key]} itself")
        else:
            inside = next((series[k] for k in map(_path_key, Path(out).parents) if k in series), None)
            if inside is not None:
                over.append(f"  {out} lies inside the DICOM series folder {inside}")
    clashes = [f"  {out} from " + " and ".join(map(str, group)) for out, group in shared.values() if len(group) > 1]
    problems = []
    if clashes:
        problems.append(f"{len(clashes)} output(s) would be shared by several scans (same name once the image "
                        "suffix is dropped):\n" + "\n".join(clashes) + "\nrename one scan of each group, or "
                        "label them in separate runs with different output folders")
    if over:
        problems.append(f"{len(over)} output(s) would replace or write into an input (the CT would be lost):\n"
                        + "\n".join(over) + "\nchoose another output (-o) name or folder, outside the inputs")
    if problems:
        raise ValueError("\n".join(problems) + "\nnothing was written")


def sidecar_path(output: str | os.PathLike) -> Path:
    """The JSON beside an output: ``"writing"`` before the label file is written, then the final record
    (``"ok"``, the input's :func:`input_record`, shape, voxel counts); no sidecar: no cohort run wrote the file."""
    output = Path(output)
    return output.with_name(output.name + SIDECAR)


def input_record(scan: str | os.PathLike) -> dict:
    """What identifies a scan in its output's sidecar: its path (and the real path behind links), size and
    modification time; for a DICOM folder the number of files, their total size and the newest time."""
    real = os.path.realpath(scan)
    record = {"path": os.path.abspath(scan), "realpath": real}
    if os.path.isdir(real):
        stats = [e.stat() for e in os.scandir(real) if e.is_file()]
        record.update(files=len(stats), size=sum(st.st_size for st in stats),
                      mtime_ns=max((st.st_mtime_ns for st in stats), default=0))
    else:
        st = os.stat(real)
        record.update(size=st.st_size, mtime_ns=st.st_mtime_ns)
    return record


def _same_input(recorded, scan: str | os.PathLike) -> bool:
    try:
        now = input_record(scan)
    except OSError:
        return False
    keys = ("realpath", "size", "mtime_ns", "files")
    return isinstance(recorded, dict) and all(recorded.get(k) == now.get(k) for k in keys)


def is_complete(output: str | os.PathLike, scan: str | os.PathLike | None = None) -> bool:
    """Whether an output exists, is readable, has the shape its sidecar records and, given ``scan``, was made from
    that scan as it is now (same real path, size and modification time)."""
    output = Path(output)
    side = sidecar_path(output)
    if not (output.is_file() and side.is_file()):
        return False
    try:
        meta = json.loads(side.read_text())
        from .io.formats import written_size

        size_xyz = written_size(output)
    except (OSError, ValueError, RuntimeError):
        return False
    if not isinstance(meta, dict) or meta.get("status") != "ok" or list(size_xyz) != list(meta.get("size_xyz", [])):
        return False
    return scan is None or _same_input(meta.get("source"), scan)


def _foreign(output: Path) -> bool:
    """A file in an output's place that no cohort run wrote (no sidecar): a user's own labels, say."""
    return output.exists() and not sidecar_path(output).exists()


def _write_json(path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------------- the task
_PREDICTORS: dict[tuple, Any] = {}


def _predictor(checkpoint: str):
    """One loaded model per worker process and checkpoint file (reloaded when the file changes)."""
    from .infer.predict import Predictor

    p = Path(checkpoint)
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if key not in _PREDICTORS:
        _PREDICTORS.clear()
        _PREDICTORS[key] = Predictor.from_checkpoint(p)
    return _PREDICTORS[key]


def _compute(volume, task: str, checkpoint: str | None, options: dict):
    import numpy as np

    if task == "label":
        from .labelers import auto_label

        return auto_label(volume, **options)
    from .infer.predict import predict

    return np.asarray(predict(volume, _predictor(checkpoint), **options))


def _organ_values(names: Sequence[str]) -> list[tuple[str, int]]:
    from .organs import ORGANS

    by_name = {o.name: o.value for o in ORGANS.values()}
    out = []
    for name in names:
        if name not in by_name:
            raise ValueError(f"require must name organs among {sorted(by_name)}, got {name!r}")
        out.append((name, by_name[name]))
    return out


def process_scan(scan: str | os.PathLike, output: str | os.PathLike, *, task: str = "label",
                 checkpoint: str | None = None, options: dict | None = None, require: Sequence[str] = (),
                 format: str = "nifti") -> dict:
    """Label or predict one scan and write its output and sidecar; the unit of work of :func:`run_cohort`.

    Returns a :class:`CohortRow` as a dict. Errors of the scan itself are returned as a ``failed`` row;
    machine errors (``MemoryError``, ``OSError``, ...) are raised so that the scheduler retries the task.
    An existing ``output`` is replaced (:func:`run_cohort` decides beforehand which may be).
    """
    import numpy as np

    from .io import read_volume
    from .io.formats import check_label_output, write_label_file, written_size

    t0 = time.perf_counter()
    scan, output = Path(scan), Path(output)
    row = {"input": str(scan), "output": str(output), "status": "ok", "error": "", "seconds": 0.0}
    try:
        try:
            source = input_record(scan)  # before reading: a scan changed during the run is redone next time
        except OSError:
            source = None  # missing or unreadable: read_volume says so, naming the file and the fix
        volume = read_volume(scan)
        check_label_output(output, volume, format)  # DICOM-SEG/RTSTRUCT need the scan's series: before the work
        labels = _compute(volume, task, checkpoint, dict(options or {}))
        if labels.shape != volume.shape:
            raise ValueError(f"{task} returned shape {labels.shape} for a scan of shape {volume.shape}")
        missing = [name for name, value in _organ_values(require) if not np.any(labels == value)]
        if missing:
            raise ValueError(f"no {' and no '.join(missing)} found in this scan (required: "
                             f"{', '.join(require)}); check that it covers them, or drop --require")
        # a "writing" sidecar (atomic), the label file (atomic), then the final sidecar (atomic): an interrupted
        # run leaves a sidecar that says the output is ours and incomplete
        side = sidecar_path(output)
        _write_json(side, {"status": "writing", "input": str(scan), "source": source})
        write_label_file(output, labels, volume, format, overwrite=True)
        counts = np.bincount(np.asarray(labels).ravel().astype(np.int64))
        meta = {
            "status": "ok", "input": str(scan), "source": source, "task": task, "checkpoint": checkpoint,
            "shape": list(volume.shape), "size_xyz": None, "spacing": list(volume.spacing),
            "voxels": {str(v): int(n) for v, n in enumerate(counts) if n and v},
            "seconds": round(time.perf_counter() - t0, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        meta["size_xyz"] = written_size(output)
        _write_json(side, meta)
    except _DATA_ERRORS as exc:
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    row["seconds"] = time.perf_counter() - t0
    return row


# ------------------------------------------------------------------------------------------------- runner
def _local_cluster(n_workers: int | None, memory_limit):
    from ._dask_cluster import secure_local_cluster  # TLS with temporary credentials, no HTTP port

    return secure_local_cluster(n_workers, memory_limit)


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with napari
        return None
    return tqdm(total=total, unit="scan", desc="cohort")


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
    checkpoint : path
        Model checkpoint, required for ``task="predict"``.
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
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if task == "predict":
        if checkpoint is None:
            raise ValueError("task='predict' needs checkpoint=<path to a .pt file> (CLI: --checkpoint)")
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist; give the path of a trained model (.pt)")
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
    from .io.formats import LABEL_FORMATS

    if format not in LABEL_FORMATS:
        raise ValueError(f"format must be one of {', '.join(LABEL_FORMATS)}, got {format!r}")
    scans, root = find_inputs(inputs)
    outputs = output_paths(scans, root, task=task, output_dir=output_dir, ext=LABEL_FORMATS[format])
    check_outputs(scans, outputs)
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
