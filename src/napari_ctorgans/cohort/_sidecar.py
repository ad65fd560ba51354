"""Completion sidecars: the JSON beside each output that says which input made it and whether it is complete."""

from __future__ import annotations

import json
import os
from pathlib import Path

SIDECAR = ".json"


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
        from ..io.formats import written_size

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
    """A sidecar, verified and atomically replacing the previous one (a failed write leaves it unchanged)."""
    from ..io import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(meta, indent=1) + "\n").encode("utf-8"), overwrite=True)
