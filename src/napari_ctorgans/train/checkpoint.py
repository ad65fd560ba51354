"""Checkpoints: atomic writes, plain data only, loaded with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain Python values (numbers, strings, lists, dicts): the model weights, the
model and training configurations as dicts, the organ table, and (for resuming) the optimiser state, the random
number generator states and the run's history. Nothing in it executes code when loaded.

Before anything is built from a file it is checked: the zip archive's CRCs (``torch.load`` does not check them, and a
flipped byte would silently change a weight), sizes that fit the file, finite weights, and a model configuration
whose parameters (counted on the meta device, without memory) have exactly the stored weights' shapes.

Weights can also be stored as ``.safetensors`` (no pickle at all): the tensors, and every other entry of the
checkpoint as JSON in the file's metadata, with a SHA-256 of the weights that is checked on reading. Optimiser and
random states (for resuming) stay in ``.pt`` files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..organs import ORGANS

__all__ = ["save_checkpoint", "read_checkpoint", "load_checkpoint", "organ_table", "CheckpointError", "FORMAT_VERSION",
           "SAFETENSORS_SUFFIX"]

FORMAT_VERSION = 1
SAFETENSORS_SUFFIX = ".safetensors"
#: entries kept out of ``.safetensors`` files: resuming state (tensors nested in dicts) lives in ``.pt`` files only
_RESUME_ONLY = ("optimizer", "rng", "state")
_FIX = "use last.pt/best.pt from a training run, or train again"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (corrupted, truncated, or for another model)."""


def organ_table() -> dict[int, dict]:
    """The organ table stored in checkpoints: value -> {"name", "color"}."""
    return {int(v): {"name": o.name, "color": list(o.color)} for v, o in ORGANS.items()}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically: a temporary file in the same folder, fsync, then ``os.replace``.

    A failure at any point (full disk, an unpicklable value, a crash) leaves any previous file at ``path`` intact
    and no temporary file. A path ending in ``.safetensors`` gets the weights as safetensors and the other plain
    entries as JSON metadata (the optimiser and random states are left out: such a file cannot be resumed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == SAFETENSORS_SUFFIX:  # weights and plain entries only, no pickle
        return _save_safetensors(path, {"format_version": FORMAT_VERSION, **payload})
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    fh = None
    try:
        with os.fdopen(fd, "wb") as raw:
            fh = _KeepWriteError(raw)  # torch's zip writer turns a failed write (full disk) into a vague RuntimeError
            torch.save({"format_version": FORMAT_VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, RuntimeError) and fh is not None and fh.error is not None:
            raise _write_failed(path, fh.error) from exc
        raise
    return path


class _KeepWriteError:
    """A binary file that remembers the OSError of a failed write."""

    def __init__(self, fh) -> None:
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()

    def fileno(self) -> int:
        return self.fh.fileno()


def _write_failed(path: Path, error: OSError) -> OSError:
    return type(error)(error.errno, f"cannot write checkpoint {path}: {error.strerror or error} (a full disk or a "
                       f"file-size limit); free some space or write elsewhere; any previous {path.name} is intact")


def read_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint as a dict; no code from the file runs, and damage is refused.

    ``.pt`` files are read with ``torch.load(weights_only=True)`` after the zip archive's CRCs and sizes are
    checked; ``.safetensors`` files with the safetensors library, their metadata as JSON. The weights must be
    finite.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    CheckpointError
        When the file is truncated, corrupted (a CRC or hash mismatch), not a checkpoint, holds objects other than
        plain data, or holds NaN or infinite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}; pass the path of a .pt file written by ct.train")
    if path.suffix == SAFETENSORS_SUFFIX:
        data = _read_safetensors(path)
    else:
        data = _read_torch(path, map_location)
    if not isinstance(data, dict) or "weights" not in data or "model_config" not in data:
        raise CheckpointError(
            f"{path} is not a napari-ctorgans checkpoint (no 'weights'/'model_config' entries); "
            "use last.pt or best.pt written by ct.train"
        )
    _check_weights(path, data["weights"])
    return data


def _read_torch(path: Path, map_location: Any) -> Any:
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged or foreign
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a PyTorch checkpoint "
            f"({path.stat().st_size} bytes, not a zip archive); {_FIX}"
        )
    _check_zip(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: the file is truncated, corrupted or not a PyTorch checkpoint "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); {_FIX}"
        ) from exc
    except Exception as exc:  # UnpicklingError for objects that weights_only refuses
        raise CheckpointError(
            f"refusing to load {path}: it holds objects other than tensors and plain data, which could run code "
            f"({type(exc).__name__}); only checkpoints written by ct.train are accepted"
        ) from exc


def _check_zip(path: Path) -> None:
    """Every member's CRC, and sizes the file can hold (``torch.load`` checks neither)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            declared = sum(m.file_size for m in members)
            if declared > 2 * size + 2**20:  # torch.save stores members uncompressed
                raise CheckpointError(
                    f"refusing to load {path}: its members claim {declared:,} bytes uncompressed in a {size:,}-byte "
                    f"file (a zip bomb or a damaged archive); {_FIX}"
                )
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: the zip archive is damaged ({exc}); {_FIX}") from exc
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} is corrupted: the CRC of its member {bad!r} does not match its data (changed bytes, "
            f"e.g. a disk or copy error); {_FIX}"
        )


def _check_weights(path: Path, weights: Any) -> None:
    """Weights are a dict of names to finite tensors."""
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        raise CheckpointError(f"{path}: 'weights' must map parameter names to tensors; {_FIX}")
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in weights.items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())}
    if bad:
        listed = ", ".join(f"{k!r} ({n} values)" for k, n in list(bad.items())[:3])
        raise CheckpointError(
            f"refusing to load {path}: its weights hold NaN or infinite values in {len(bad)} tensors ({listed}): the "
            "training diverged or the file is damaged; use best.pt or an earlier checkpoint, or train again with a "
            "lower learning_rate"
        )


def _weights_digest(weights: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _save_safetensors(path: Path, payload: dict[str, Any]) -> Path:
    """Weights as safetensors, the other entries (but the resuming state) as JSON metadata; atomic."""
    from safetensors.torch import save

    weights = {k: v.detach().cpu().contiguous().clone() for k, v in payload["weights"].items()}
    meta = {k: json.dumps(_json_safe(v)) for k, v in payload.items() if k != "weights" and k not in _RESUME_ONLY}
    meta["weights_sha256"] = json.dumps(_weights_digest(weights))
    data = save(weights, metadata=meta)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise _write_failed(path, exc) from exc
        raise
    return path


_INT_KEYS = "__int_keys__"


def _json_safe(obj: Any) -> Any:
    """Plain data for JSON, keeping dicts with integer keys (organ tables: label value -> organ) as such."""
    if isinstance(obj, dict):
        if obj and all(isinstance(k, int) and not isinstance(k, bool) for k in obj):
            return {_INT_KEYS: [[k, _json_safe(v)] for k, v in obj.items()]}
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _from_json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_INT_KEYS}:
            return {int(k): _from_json_safe(v) for k, v in obj[_INT_KEYS]}
        return {k: _from_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json_safe(v) for v in obj]
    return obj


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:  # the library checks that the header's shapes and offsets fit the file exactly
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = fh.metadata() or {}
            weights = {k: fh.get_tensor(k) for k in fh.keys()}
        data = {k: _from_json_safe(json.loads(v)) for k, v in meta.items()}
    except (SafetensorError, OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"cannot read checkpoint {path}: the safetensors file is truncated or corrupted "
                              f"({type(exc).__name__}: {str(exc)[:200]}); {_FIX}") from exc
    digest = data.pop("weights_sha256", None)
    if digest is None:
        warnings.warn(f"{path} holds no weights_sha256: the integrity of its weights cannot be checked", stacklevel=3)
    elif digest != _weights_digest(weights):
        raise CheckpointError(f"checkpoint {path} is corrupted: its weights do not match the SHA-256 stored with "
                              f"them (changed bytes, e.g. a disk or copy error); {_FIX}")
    data["weights"] = weights
    return data


def load_checkpoint(path: str | Path, *, device: Any = "cpu", num_classes: int | None = None):
    """Rebuild the model stored in a checkpoint.

    Parameters
    ----------
    path : str or Path
        A ``.pt`` file written by :func:`ct.train`, or a ``.safetensors`` file written by :func:`save_checkpoint`.
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
        Missing, corrupted or truncated file, NaN or infinite weights, a model configuration that does not match
        the stored weights (checked before the model is built), or one for another class count.

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
    _check_shapes(path, config, data["weights"])  # before anything is allocated for the model
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


def _check_shapes(path: Path, config: Any, weights: dict[str, torch.Tensor]) -> None:
    """The model the stored configuration describes, built on the meta device (no memory), has exactly the stored
    weights' names and shapes; a configuration edited to describe a far larger model is refused here."""
    from ..nn import build_model

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(config).state_dict().items()}
    stored = {k: tuple(v.shape) for k, v in weights.items()}
    if expected == stored:
        return
    n_expected, n_stored = (sum(math.prod(s) for s in d.values()) for d in (expected, stored))
    wrong = [k for k in expected if k in stored and expected[k] != stored[k]]
    detail = (f"{len(set(expected) - set(stored))} missing and {len(set(stored) - set(expected))} unexpected "
              f"tensors, {len(wrong)} of other shape" + (f" (e.g. {wrong[0]!r}: stored {stored[wrong[0]]}, "
                                                          f"configuration {expected[wrong[0]]})" if wrong else ""))
    raise CheckpointError(
        f"refusing to load {path}: its model configuration describes {n_expected:,} parameters but the file holds "
        f"{n_stored:,} weights ({detail}); the configuration was edited or the file is damaged or from another "
        f"version; {_FIX}"
    )


def _num_classes(model_config: dict) -> int | None:
    for key in ("num_classes", "out_channels", "classes", "n_classes"):
        if key in model_config:
            return int(model_config[key])
    return None
