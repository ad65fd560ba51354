"""The models that ship inside the package: the built-in ``starter`` model.

The starter model predicts the five CT-ORG organs with no training: a first draft to correct and fine-tune, weak on
real CT today (docs/starter-model.md: its data, recipe, measured
accuracy and limits). Its weights are ``starter.safetensors`` next to this module: safetensors weights with the
model configuration and model contract as JSON metadata, no pickle (:func:`napari_ctorgans.save_checkpoint`).

Wherever a model can be given (``ct.predict``, ``ct.Predictor.coerce``/``from_checkpoint``, ``ctorgans predict``,
the Predict and Train widgets), ``None`` or ``"starter"`` means this model; :func:`resolve_model` is the one place
that turns those into the file.

Examples
--------
>>> import napari_ctorgans as ct
>>> labels = ct.predict(ct.read_volume("scan.nii.gz"))  # doctest: +SKIP  (the starter model)
>>> from napari_ctorgans.models import starter_path
>>> starter_path().name
'starter.safetensors'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STARTER", "STARTER_LABEL", "STARTER_FILE", "starter_path", "resolve_model", "is_starter",
           "export_starter"]

#: the name that stands for the built-in model wherever a checkpoint path is accepted
STARTER = "starter"
#: how the user interface shows the built-in model
STARTER_LABEL = "starter (built in)"
#: the packaged weights file (absent in a source checkout that was not given the weights)
STARTER_FILE = Path(__file__).resolve().parent / "starter.safetensors"

_TRAIN_COMMAND = ("bash scripts/train_starter.sh (or: ctorgans train --preset starter --output-dir runs/starter, then "
                  "ctorgans train --preset starter-refine --init runs/starter/last.pt "
                  "--output-dir runs/starter-refine, then ctorgans train --preset starter-adapt "
                  "--init runs/starter-refine/last.pt --output-dir runs/starter-adapt)")


def _export_command(checkpoint: str = "runs/starter-adapt/last.pt") -> str:
    return f"python -c \"from napari_ctorgans.models import export_starter; export_starter('{checkpoint}')\""


def starter_path() -> Path:
    """The file of the built-in starter model.

    Returns
    -------
    Path
        ``napari_ctorgans/models/starter.safetensors`` of the installed package.

    Raises
    ------
    FileNotFoundError
        When the file is missing (a source checkout without the weights); the message names the path and how to
        make the file.
    """
    path = STARTER_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"the built-in starter model is missing: {path} does not exist (a source checkout without the weights?); "
            f"install napari-ctorgans from its wheel, or make the file: `{_TRAIN_COMMAND}` then "
            f"`{_export_command()}`; or pass the path of a checkpoint of your own"
        )
    return path


def is_starter(obj: Any) -> bool:
    """True when ``obj`` names the built-in model: None, ``"starter"`` or the UI's label ``"starter (built in)"``."""
    return obj is None or (isinstance(obj, str) and obj.strip() in (STARTER, STARTER_LABEL))


def resolve_model(obj: Any) -> Any:
    """The model a caller means: None or ``"starter"`` -> :func:`starter_path`; anything else unchanged.

    Parameters
    ----------
    obj : None, str, Path, torch.nn.Module, (model, info) or Predictor
        None, ``"starter"`` (or the UI's label :data:`STARTER_LABEL`) for the built-in model, else a checkpoint
        path or a model, returned as given.

    Returns
    -------
    Path or the object given

    Raises
    ------
    FileNotFoundError
        The starter model was asked for and its file is missing (see :func:`starter_path`).
    """
    return starter_path() if is_starter(obj) else obj


def export_starter(checkpoint: str | Path, *, overwrite: bool = False) -> Path:
    """Write a trained checkpoint as the package's starter model (safetensors, no optimiser or random state).

    Parameters
    ----------
    checkpoint : path
        ``last.pt`` of a run (``runs/starter-adapt/last.pt`` of ``scripts/train_starter.sh``).
    overwrite : bool
        Replace an existing starter file (refused by default; the write is atomic either way).

    Returns
    -------
    Path
        :data:`STARTER_FILE`.

    Raises
    ------
    FileExistsError
        The starter file exists and ``overwrite`` is False.
    FileNotFoundError, napari_ctorgans.CheckpointError
        ``checkpoint`` is missing or cannot be used.
    """
    from ..train.checkpoint import read_checkpoint, save_checkpoint

    data = read_checkpoint(checkpoint)  # checked (CRCs, finite weights) before anything is written
    if STARTER_FILE.exists() and not overwrite:
        raise FileExistsError(f"{STARTER_FILE} exists; pass overwrite=True to replace it with {checkpoint}")
    path = save_checkpoint(STARTER_FILE, data)
    path.chmod(0o644)  # readable like the package's other files (the atomic write creates it owner-only)
    return path
