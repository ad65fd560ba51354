"""Checkpoints: atomic writes, plain data only, loaded with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts): the model weights, the
model and training configurations as dicts, the organ table, and (for resuming) the optimiser state, the random
number generator states and the run's history. Nothing in it executes code when loaded.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..organs import ORGANS

__all__ = ["save_checkpoint", "read_checkpoint", "load_checkpoint", "organ_table", "CheckpointError", "FORMAT_VERSION"]

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (corrupted, truncated, or for another model)."""


def organ_table() -> dict[int, dict]:
    """The organ table stored in checkpoints: value -> {"name", "color"}."""
    return {int(v): {"name": o.name, "color": list(o.color)} for v, o in ORGANS.items()}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    A failure at any point (full disk, an unpicklable value, a crash) leaves any previous file at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format_version": FORMAT_VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def read_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint as a dict with ``torch.load(weights_only=True)`` (no code from the file runs).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is truncated, corrupted, not a checkpoint, or holds objects other than plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; pass the path of a .pt file written by ct.train")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or foreign
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a PyTorch checkpoint "
            f"({path.stat().st_size} bytes, not a zip archive); use last.pt/best.pt from a training run or train again"
        )
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a PyTorch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); use last.pt/best.pt from a training run "
            "or train again"
        ) from exc
    except Exception as exc:  # UnpicklingError for objects that weights_only refuses
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, which could run code "
            f"({type(exc).__name__}); only checkpoints written by ct.train are accepted"
        ) from exc
    if not isinstance(data, dict) or "weights" not in data or "model_config" not in data:
        raise CheckpointError(
            f"{path} is not a napari-ctorgans checkpoint (no 'weights'/'model_config' entries); "
            "use last.pt or best.pt written by ct.train"
        )
    return data


def load_checkpoint(path: str | Path, *, device: Any = "cpu", num_classes: int | None = None):
    """Rebuild the model stored in a checkpoint.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file written by :func:`ct.train`.
    device : str or torch.device
        Where to put the model.
    num_classes : int, optional
        Check that the model predicts this many classes (background included).

    Returns
    -------
    (torch.nn.Module, dict)
        The model in eval mode, and the checkpoint's information: ``model_config``, ``train_config`` (dicts),
        ``organs``, ``iteration``, ``val_dice``, ``best_score``, ``run_id`` and ``path``.

    Raises
    ------
    FileNotFoundError, CheckpointError
        Missing, corrupted or truncated file, or one for another class count.

    Examples
    --------
    >>> model, info = ct.load_checkpoint("runs/demo/best.pt")  # doctest: +SKIP
    """
    from ..nn import ModelConfig, build_model

    data = read_checkpoint(path)
    mcfg = dict(data["model_config"])
    try:
        config = ModelConfig.from_dict(mcfg) if hasattr(ModelConfig, "from_dict") else ModelConfig(**mcfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: stored model configuration is not valid for this version: {exc}") from exc
    model_classes = _num_classes(mcfg)
    if num_classes is not None and model_classes is not None and int(num_classes) != model_classes:
        raise CheckpointError(
            f"{path} holds a model for {model_classes} classes, but {num_classes} were asked for; "
            f"use a checkpoint trained with num_classes={num_classes} or train a new model"
        )
    model = build_model(config)
    try:
        model.load_state_dict(data["weights"])
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: the weights do not fit the stored model configuration ({str(exc).splitlines()[0][:200]}); "
            "the file may come from another version or be damaged"
        ) from exc
    model.to(device).eval()
    info = {k: v for k, v in data.items() if k not in ("weights", "optimizer", "rng")}
    info["path"] = str(path)
    return model, info


def _num_classes(model_config: dict) -> int | None:
    for key in ("num_classes", "out_channels", "classes", "n_classes"):
        if key in model_config:
            return int(model_config[key])
    return None
