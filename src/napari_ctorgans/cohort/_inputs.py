"""The scans of a cohort and their outputs: finding the inputs, naming the outputs, refusing clashes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

TASKS = ("label", "predict")
#: image suffixes picked up in a folder (DICOM series are found as folders of slices)
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
#: suffix added to an input's name to make its output name, by task
OUTPUT_SUFFIX = {"label": "_labels", "predict": "_pred"}
LIST_SUFFIXES = (".txt", ".lst", ".list")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    suffix = _suffix(path)
    return path.name[: len(path.name) - len(suffix)] if suffix in IMAGE_SUFFIXES else path.name


def _has_dicom(folder: Path) -> bool:
    from ..io._read import _is_dicom_file
    from ..io.dicom_seg import dicom_kind  # a DICOM-SEG or RTSTRUCT beside the scans is an output, not a series

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
    skipped: list[Path] = []  # named like outputs, with no scan of that name beside them: said at run time
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
        outputs = []
        for name in sorted(filenames):
            p = here / name
            if name.startswith(".") or _suffix(p) not in IMAGE_SUFFIXES:
                continue
            (outputs if _is_output_name(p) else found).append(p)
        skipped += _unexplained_outputs(outputs, filenames, dirnames)
    if skipped:
        shown = ", ".join(str(p) for p in skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        warnings.warn(
            f"left out {len(skipped)} file(s) whose names end in {' or '.join(OUTPUT_SUFFIX.values())}, as the "
            f"outputs of a cohort run do, though no scan of that name is beside them: {shown}. If they are scans, "
            "rename them (e.g. without _labels) or list them in a .txt file given as the input",
            UserWarning, stacklevel=3,
        )
    return found


def _unexplained_outputs(outputs: list[Path], filenames: list[str], dirnames: list[str]) -> list[Path]:
    """The files named like outputs that are neither beside their scan nor recorded by a cohort sidecar."""
    stems = {_stem(Path(n)) for n in filenames} | set(dirnames)
    out = []
    for p in outputs:
        base = next(_stem(p)[: -len(s)] for s in OUTPUT_SUFFIX.values() if _stem(p).endswith(s))
        if base not in stems and f"{p.name}.json" not in filenames:
            out.append(p)
    return out


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
