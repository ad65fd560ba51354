"""A training run's folder: one run at a time, replaced whole, resumed only with the same settings.

The run's own files are ``last.pt``, ``best.pt`` and ``config.json`` (other files in the folder are left alone).

* A lock file (``.train.lock``, ``flock``) keeps a second process from writing into the folder at the same time.
* Temporary files of interrupted atomic writes (``.last.pt.*.tmp`` after a kill) are removed when a run starts.
* ``overwrite=True`` replaces the whole run: once the new run starts, the old run's files are moved aside into
  ``.replaced-run/``; they are deleted when the new run has written its first checkpoint, and moved back if it
  writes none. A run killed in between is put right on the next start.
* ``resume=True`` refuses a configuration that differs from the run's own (:class:`RunConfigMismatch`, naming the
  fields); ``iterations`` may grow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "RunConfigMismatch", "config_changes", "RUN_FILES", "RESUME_EXEMPT"]

RUN_FILES = ("last.pt", "best.pt", "config.json")
ASIDE = ".replaced-run"
LOCK = ".train.lock"
#: fields that may differ on resume: where the files go and how often they are written, the device
RESUME_EXEMPT = ("output_dir", "checkpoint_every", "device")


class RunConfigMismatch(ValueError):
    """``resume=True`` with settings that differ from the run's own; ``.fields`` names them, ``.changes`` holds
    ``{field: (run's value, new value)}``."""

    def __init__(self, message: str, changes: dict[str, tuple[Any, Any]]) -> None:
        super().__init__(message)
        self.changes = dict(changes)
        self.fields = tuple(changes)


def config_changes(stored: dict, config: Any, stored_model: dict | None = None, *, stored_world_size: int = 1,
                   world_size: int = 1) -> dict[str, tuple[Any, Any]]:
    """Fields of ``config`` (a TrainConfig) that differ from a run's stored ``train_config``.

    ``iterations`` counts only when it shrinks; the fields in :data:`RESUME_EXEMPT` never count. ``batch_size`` is
    per process: the global batch ``batch_size * world_size`` must stay (a run of 2 x 2 crops resumes as 1 x 4). The
    model is compared as the built configuration (``stored_model``, the checkpoint's ``model_config``) when given,
    so a preset name and the same configuration as a dict agree.
    """
    from .config import _plain
    from .loop import _model_config

    new = config.to_dict()
    changes: dict[str, tuple[Any, Any]] = {}
    for name, value in new.items():
        if name in RESUME_EXEMPT or name not in stored or (name == "model" and stored_model is not None):
            continue
        old = _plain(stored[name])
        if name == "iterations":
            if value < old:
                changes[name] = (old, value)
        elif name == "batch_size":
            if old * stored_world_size != value * world_size:
                changes[name] = (old if stored_world_size == 1 else f"{old} x {stored_world_size} processes",
                                 value if world_size == 1 else f"{value} x {world_size} processes")
        elif old != value:
            changes[name] = (old, value)
    if stored_model is not None and dict(stored_model) != _model_config(config).to_dict():
        changes["model"] = (stored.get("model", stored_model), new["model"])
    return changes


def _writer() -> bool:
    """Rank 0 (or a single process) owns the folder; torchrun's other ranks only read."""
    return os.environ.get("RANK", "0") in ("", "0")


class RunDir:
    """The folder of one training run (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.last, self.best, self.config_json = (self.folder / n for n in RUN_FILES)
        self.writer = _writer()
        self._lock_fh = None
        self._aside: Path | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    def open(self, *, resume: bool, overwrite: bool) -> "RunDir":
        """Check the folder against ``resume``/``overwrite``, take the lock, tidy up after a kill."""
        if resume and overwrite:
            raise ValueError("pass resume=True (continue the run) or overwrite=True (replace it), not both")
        if self.writer:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock()
        try:
            if self.writer:
                self._recover()
                self.clean_stale_temp()
            existing = [p.name for p in (self.last, self.best) if p.exists()]
            if existing and not resume and not overwrite:
                raise FileExistsError(
                    f"output_dir {self.folder} already holds checkpoints of another run ({', '.join(existing)}); "
                    "pass resume=True to continue that run, overwrite=True to replace it, or choose another output_dir"
                )
            if resume and not self.last.exists():
                raise FileNotFoundError(f"cannot resume: {self.last} does not exist; start without resume=True")
        except BaseException:
            self.close()
            raise
        self.overwrite = overwrite and bool(existing)
        return self

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            return
        fh = open(self.folder / LOCK, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise FileExistsError(
                f"output_dir {self.folder} is in use by another training run (process {holder}); wait for it to "
                "finish or stop it, or choose another output_dir"
            ) from None
        except OSError:  # a file system without locks: go on without
            fh.close()
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._lock_fh = fh

    def _recover(self) -> None:
        """A run killed between moving the old run aside and its own first checkpoint: put the old run back."""
        aside = self.folder / ASIDE
        if not aside.is_dir():
            return
        if not (self.last.exists() or self.best.exists()):
            for p in aside.iterdir():
                os.replace(p, self.folder / p.name)
        shutil.rmtree(aside, ignore_errors=True)

    def clean_stale_temp(self) -> list[Path]:
        """Remove temporary files left by interrupted atomic writes of this run's files; returns them."""
        stale = [p for name in RUN_FILES for p in self.folder.glob(f".{name}.*.tmp") if p.is_file()]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale

    # -- while running -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """The new run has started: move the old run's files aside (``overwrite=True``)."""
        if not (self.writer and getattr(self, "overwrite", False)):
            return
        aside = self.folder / ASIDE
        shutil.rmtree(aside, ignore_errors=True)
        aside.mkdir()
        for name in RUN_FILES:
            if (self.folder / name).exists():
                os.replace(self.folder / name, aside / name)
        self._aside = aside
        self.overwrite = False

    def saved(self) -> None:
        """The new run wrote a checkpoint: the old run is gone for good."""
        if self._aside is not None:
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None

    def write_config(self, text: str) -> None:
        """Write ``config.json`` atomically."""
        if not self.writer:
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{self.config_json.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, self.config_json)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        """The run ended: restore the old run when the new one wrote no checkpoint; release the lock."""
        if self._aside is not None:  # still aside: the new run wrote no checkpoint
            for p in self._aside.iterdir():
                os.replace(p, self.folder / p.name)
            shutil.rmtree(self._aside, ignore_errors=True)
            self._aside = None
        if self._lock_fh is not None:
            self._lock_fh.close()  # releases the flock
            self._lock_fh = None

    # -- resuming ----------------------------------------------------------------------------------------------
    def check_resume(self, config: Any) -> dict:
        """Read ``last.pt`` and refuse a configuration that differs from the run's; returns the checkpoint."""
        from .checkpoint import read_checkpoint

        from ..distributed import env_world_size

        ck = read_checkpoint(self.last)
        stored_world = int((ck.get("state") or {}).get("world_size", 1))
        changes = config_changes(dict(ck.get("train_config") or {}), config, ck.get("model_config"),
                                 stored_world_size=stored_world, world_size=env_world_size())
        if changes:
            listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
            grow = " (iterations may only grow)" if "iterations" in changes else ""
            raise RunConfigMismatch(
                f"cannot resume the run in {self.folder}: the settings differ from the run's own in {listed}{grow}; "
                f"resume with the run's settings (they are in {self.config_json}: ctorgans train --config "
                f"{self.config_json} --resume), replace the run with overwrite=True (--overwrite), or choose "
                "another output_dir",
                changes,
            )
        return ck
