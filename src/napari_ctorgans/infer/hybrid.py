"""Organs taken from the automatic labellers instead of the network (the built-in starter model's lungs and bone).

The labellers (:func:`napari_ctorgans.auto_label`) find lungs and bone from Hounsfield units and morphology, the way
CT-ORG made its training labels for these two organs; they need no training and carry no domain gap. A network
trained on phantoms sees real lungs and bone only through the labels the same labellers made on real thoraces, so
for these organs the labellers are the reference it imitates. :func:`predict` therefore takes them from the
labellers for the starter model (``labelers="auto"``) and leaves a user's own trained model alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..labelers import ORGAN_LABELERS
from ..organs import ORGANS

__all__ = ["resolve_labelers", "merge_labelled"]


def resolve_labelers(labelers: Any, model: Any = None) -> tuple[str, ...]:
    """The organs :func:`predict` takes from the labellers.

    Parameters
    ----------
    labelers : "auto", None, bool, str or sequence of str
        ``"auto"``: lungs and bone for the built-in starter model and the models fine-tuned from it
        (:func:`starter_lineage`), none for any other model; None, False or ``"none"``: none; True: every organ
        with a labeller (:data:`~napari_ctorgans.labelers.ORGAN_LABELERS`); a name, a comma-separated list or a
        sequence of names.
    model : path or dict, optional
        The model's file, or its checkpoint information (``Predictor.info``: its ``path`` and ``train_config``).

    Returns
    -------
    tuple of str, in the order of ``ORGAN_LABELERS``
    """
    key = labelers.strip().lower() if isinstance(labelers, str) else None
    if key == "auto":
        return tuple(ORGAN_LABELERS) if starter_lineage(model) else ()
    if key == "none":
        return ()
    if labelers is None or labelers is False:
        return ()
    if labelers is True:
        return tuple(ORGAN_LABELERS)
    names = [s.strip() for s in labelers.split(",")] if isinstance(labelers, str) else list(labelers)
    bad = [n for n in names if n not in ORGAN_LABELERS]
    if bad or not names:
        raise ValueError(f"predict option 'labelers': {(bad or [labelers])[0]!r} is not an organ with an automatic "
                         f"labeller; give \"auto\", \"none\", True or organs among {list(ORGAN_LABELERS)}")
    return tuple(o for o in ORGAN_LABELERS if o in names)


def starter_lineage(model: Any, *, depth: int = 8) -> bool:
    """Whether ``model`` (a checkpoint path or its information dict) is the built-in starter model or was
    fine-tuned from it, following ``train_config.init_checkpoint`` back through up to ``depth`` checkpoints that
    still exist. A file that cannot be read counts as no lineage."""
    import napari_ctorgans as ct  # the checkpoint reader of the public API (prediction imports no training code)

    from ..models import STARTER_FILE, is_starter

    info = model if isinstance(model, dict) else None
    for _ in range(depth + 1):
        path = info.get("path") if info is not None else model
        if path is not None and (is_starter(path) or _same_file(path, STARTER_FILE)):
            return True
        if info is None:
            if path is None or not Path(path).is_file():
                return False
            try:
                info = ct.load_checkpoint(path)[1]
            except (OSError, ValueError, RuntimeError):
                return False
        model = (info.get("train_config") or {}).get("init_checkpoint")
        if model is None:
            return False
        info = None
    return False


def _same_file(a: Any, b: Any) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, TypeError, ValueError):
        return False


def merge_labelled(labels: np.ndarray, labelled: np.ndarray, organs) -> np.ndarray:
    """``labels`` (in place) with each organ of ``organs`` replaced by the labellers' (``labelled``, same shape):
    the network's voxels of that organ become background, the labellers' voxels take its value."""
    values = [v for v, o in ORGANS.items() if o.name in organs]
    for v in values:
        labels[labels == v] = 0
    for v in values:
        labels[labelled == v] = v
    return labels
