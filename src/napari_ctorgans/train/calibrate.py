"""Per-class offsets of a network's output, fitted on unseen phantoms and folded into its weights.

A class-weighted loss (the starter's square-root weights) moves a network's decisions towards the small classes:
its organs come out too large. Logit adjustment (Menon et al., *Long-tail learning via logit adjustment*, 2021)
moves them back by adding one offset per class to the logits before the argmax. Here the offsets are fitted by
coordinate search to the Dice of the organs after the same post-processing as :func:`napari_ctorgans.predict`, on
domain-randomised phantoms that no stage trains on (seeds :data:`CALIBRATION_SEEDS`), and added to the bias of the
network's output layer, so every engine, tile plan and TTA of prediction uses them with no change.

Tried on the starter model and not shipped (docs/starter-model.md, *What was tried*): on unseen phantoms it lifts
every organ it calibrates, on the real abdomen it gains liver and bladder and loses kidneys.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

__all__ = ["CALIBRATION_SEEDS", "CALIBRATION_ANATOMY", "class_log_probs", "fit_class_offsets",
           "calibrate_checkpoint"]

#: phantom seeds the offsets are fitted on: the starter trains on 0-47 and its recipes are chosen on 60-65
CALIBRATION_SEEDS = tuple(range(70, 82))
#: anatomy versions of those phantoms (synth.ANATOMY_VERSIONS): those of the starter's last stage
CALIBRATION_ANATOMY = (2, 3)
#: how far an offset may go (log-probability units)
LOWEST_OFFSET = -8.0


def class_log_probs(model, cases: Iterable[tuple]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(log-probabilities (C, Z, Y, X) float32, reference labels)`` of the network alone on each ``(volume,
    labels)`` case, on the model's working grid (the cases must be on it: phantoms at the model's spacing).
    ``model``: anything :func:`napari_ctorgans.predict` takes (a :class:`Predictor` is built only once)."""
    import napari_ctorgans as ct

    out = []
    for vol, ref in cases:
        _, probs = ct.predict(vol, model, labelers=None, return_probabilities=True)
        if probs.shape[1:] != np.shape(ref):
            raise ValueError(f"case {vol!r} is not on the model's grid ({probs.shape[1:]} against {np.shape(ref)})")
        out.append((np.log(np.maximum(probs, 1e-6, out=probs), out=probs), np.asarray(ref)))
    return out


def _dice_by_organ(scores, offsets: np.ndarray, organs: Sequence[int]) -> dict[int, float]:
    """Mean Dice per organ over the cases that hold it, of the post-processed argmax of ``scores + offsets``."""
    from ..infer.predict import postprocess
    from ..metrics import dice

    per = {k: [] for k in organs}
    for logp, ref in scores:
        labels = postprocess((logp + offsets[:, None, None, None]).argmax(0).astype(np.uint8))
        for k in organs:
            if (ref == k).any():
                per[k].append(dice(labels == k, ref == k))
    return {k: float(np.mean(v)) for k, v in per.items() if v}


def fit_class_offsets(scores, organs: Sequence[int], *, steps: Sequence[float] = (0.5, 0.25),
                      rounds: int = 2) -> tuple[np.ndarray, dict[int, float], dict[int, float]]:
    """Offsets (one per class, 0 for those not in ``organs``) that maximise the mean Dice over ``organs``.

    Coordinate search: for each step size, up to ``rounds`` passes over the organs, each trying the offsets within
    six steps (the first size) or two steps (later sizes) of its current value, down to :data:`LOWEST_OFFSET`.

    Returns
    -------
    (offsets float32 (C,), Dice per organ with zero offsets, Dice per organ with the offsets)
    """
    if not scores:
        raise ValueError("no cases to fit the offsets on: give at least one phantom seed and anatomy version")
    classes = scores[0][0].shape[0]
    if not all(0 < k < classes for k in organs):
        raise ValueError(f"organs must be classes 1..{classes - 1} of the model, got {list(organs)}")
    b = np.zeros(classes, dtype=np.float32)
    before = after = _dice_by_organ(scores, b, organs)
    best = float(np.mean(list(before.values())))
    for i, step in enumerate(steps):
        reach = 6 if i == 0 else 2
        for _ in range(rounds):
            changed = False
            for k in organs:
                for value in b[k] + step * np.arange(-reach, 3):
                    if value < LOWEST_OFFSET or value == b[k]:
                        continue
                    trial = b.copy()
                    trial[k] = value
                    per = _dice_by_organ(scores, trial, organs)
                    score = float(np.mean(list(per.values())))
                    if score > best + 1e-4:
                        best, b, after, changed = score, trial, per, True
            if not changed:
                break
    return b, before, after


def calibrate_checkpoint(checkpoint: str | Path, output: str | Path, *, organs: Sequence[int] = (1, 2, 4),
                         seeds: Sequence[int] = CALIBRATION_SEEDS, anatomy: Sequence[int] = CALIBRATION_ANATOMY,
                         overwrite: bool = False) -> tuple[Path, dict]:
    """Fit offsets for ``organs`` on unseen phantoms and write the checkpoint with them in its output bias.

    Parameters
    ----------
    checkpoint : path
        A trained checkpoint (``runs/starter-adapt/last.pt`` of ``scripts/train_starter.sh``).
    output : path
        The calibrated checkpoint (``.pt`` or ``.safetensors``); refused if it exists unless ``overwrite``.
    organs, seeds, anatomy
        The classes given offsets, and the phantoms (``make_random_phantom(seed=s, anatomy=v)``) fitted on.

    Returns
    -------
    (Path, dict)
        The file written, and the record stored in it as ``class_offsets``: the offsets, the phantoms, and the
        mean Dice per organ on them before and after.
    """
    from ..infer.predict import Predictor
    from ..synth import make_random_phantom
    from .checkpoint import load_checkpoint, read_checkpoint, save_checkpoint

    output = Path(output)
    if output.exists() and not overwrite:
        raise FileExistsError(f"{output} exists; pass overwrite=True to replace it, or choose another output")
    data = read_checkpoint(checkpoint)
    if data.get("class_offsets"):
        raise ValueError(f"{checkpoint} is calibrated already (class_offsets in it); calibrate the uncalibrated one")
    model, info = load_checkpoint(checkpoint)  # also checks it
    key = getattr(type(model), "OUTPUT_BIAS", None)
    if key is None or key not in data["weights"]:
        raise ValueError(f"{checkpoint}: its network ({type(model).__name__}) names no output bias to calibrate")
    predictor = Predictor.from_checkpoint_info(model, info)  # built once, for every phantom
    spacing = predictor.contract.spacing
    cases = (make_random_phantom(seed=int(s), spacing=spacing, anatomy=int(v)) for v in anatomy for s in seeds)
    offsets, before, after = fit_class_offsets(class_log_probs(predictor, cases), organs)
    bias = data["weights"][key]
    data["weights"][key] = bias + bias.new_tensor(offsets)
    record = {"offsets": [float(v) for v in offsets], "organs": [int(k) for k in organs],
              "phantom_seeds": [int(s) for s in seeds], "anatomy": [int(v) for v in anatomy],
              "dice_before": {str(k): round(v, 4) for k, v in before.items()},
              "dice_after": {str(k): round(v, 4) for k, v in after.items()}}
    data["class_offsets"] = record
    return save_checkpoint(output, data), record
