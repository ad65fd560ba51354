"""Before a fine-tuned model replaces the old one: both on the same labelled scans, organ by organ, in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..organs import ORGANS
from ..volume import Volume

__all__ = ["compare_models", "Comparison", "WORSE_BY"]

#: a Dice drop of at least this much on one organ of one scan counts as "got worse"
WORSE_BY = 0.05


@dataclass
class Comparison:
    """What :func:`compare_models` found: ``rows`` (one per scan and organ: ``scan``, ``organ``, ``old``, ``new``,
    ``delta`` (new - old Dice), ``corrected`` (whether the user corrected that organ on that scan)), ``worse``
    and ``better`` (the rows that moved by at least ``WORSE_BY``), and ``summary``, a sentence for the user."""

    rows: list[dict] = field(default_factory=list)
    worse: list[dict] = field(default_factory=list)
    better: list[dict] = field(default_factory=list)
    summary: str = ""

    @property
    def safe(self) -> bool:
        """True when no organ of any scan got worse."""
        return not self.worse


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    from ..metrics import dice

    return float(dice(a, b))


def _case(item: Any, k: int) -> tuple[str, Volume, np.ndarray, set[int] | None]:
    if isinstance(item, dict):
        name, vol, labels, corrected = item.get("name"), item.get("volume"), item.get("labels"), item.get("corrected")
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        vol, labels, corrected, name = item[0], item[1], item[2] if len(item) == 3 else None, None
    else:
        raise TypeError(f"case {k + 1}: give (volume, labels), (volume, labels, corrected organs) or a dict with "
                        f"'volume' and 'labels', got {type(item).__name__}")
    if not isinstance(vol, Volume):
        raise TypeError(f"case {k + 1}: the volume must be a ct.Volume, got {type(vol).__name__}")
    lab = np.asarray(labels.array if isinstance(labels, Volume) else labels)
    if lab.shape != vol.shape:
        raise ValueError(f"case {k + 1}: labels of shape {lab.shape} do not match the CT's {vol.shape}; give the "
                         "label map on the CT's grid")
    name = name or f"scan {chr(ord('A') + k) if k < 26 else k + 1}"
    values = None if corrected is None else {_organ_value(o) for o in corrected}
    return str(name), vol, lab, values


def _organ_value(organ: Any) -> int:
    if isinstance(organ, (int, np.integer)) and int(organ) in ORGANS:
        return int(organ)
    for v, o in ORGANS.items():
        if o.name == organ:
            return v
    raise ValueError(f"corrected organ {organ!r} is not one of {[o.name for v, o in ORGANS.items() if v]}")


def compare_models(old: Any, new: Any, cases: Sequence[Any], *, worse_by: float = WORSE_BY,
                   **predict_options: Any) -> Comparison:
    """Predict each labelled scan with both models and compare their Dice organ by organ.

    Parameters
    ----------
    old, new : None, "starter", path or Predictor
        The models, as ``ct.predict`` takes them.
    cases : sequence
        ``(volume, labels)``, ``(volume, labels, corrected)`` or ``{"name", "volume", "labels", "corrected"}``:
        a CT, its (corrected) label map on the same grid and, optionally, the organs the user corrected (names or
        values); the other organs are the draft's and are marked ``corrected=False`` in the rows. Scans without a
        name are called "scan A", "scan B", ...
    worse_by : float
        A Dice drop (or gain) of at least this much is reported.
    **predict_options
        Passed on to ``ct.predict`` for both models.

    Returns
    -------
    Comparison

    Examples
    --------
    >>> result = ct.compare_models("starter", "runs/x-finetune-1/best.pt", [(volume, corrected)])  # doctest: +SKIP
    >>> print(result.summary)  # doctest: +SKIP
    liver got worse on scan A (0.76 -> 0.00), an organ you did not correct; replace the model only if that is expected
    """
    from .predict import Predictor, predict

    if not cases:
        raise ValueError("compare_models needs at least one labelled scan in cases")
    models = [Predictor.coerce(m, device=predict_options.get("device") or "cpu") for m in (old, new)]
    result = Comparison()
    for k, item in enumerate(cases):
        name, vol, ref, corrected = _case(item, k)
        old_lab, new_lab = (predict(vol, m, **predict_options) for m in models)
        for value in sorted(int(v) for v in np.unique(ref) if v in ORGANS and v != 0):
            a, b = _dice(old_lab == value, ref == value), _dice(new_lab == value, ref == value)
            row = {"scan": name, "organ": ORGANS[value].name, "old": a, "new": b, "delta": b - a,
                   "corrected": corrected is None or value in corrected}
            result.rows.append(row)
            if b - a <= -worse_by:
                result.worse.append(row)
            elif b - a >= worse_by:
                result.better.append(row)
    result.summary = _sentence(result)
    return result


def _sentence(result: Comparison) -> str:
    def part(rows: list[dict], verb: str) -> str:
        return "; ".join(f"{r['organ']} {verb} on {r['scan']} ({r['old']:.2f} -> {r['new']:.2f})"
                         + ("" if r["corrected"] else ", an organ you did not correct") for r in rows)

    if result.worse:
        text = part(result.worse, "got worse")
        if result.better:
            text += "; " + part(result.better, "got better")
        return text + "; replace the model only if that is expected"
    if result.better:
        return part(result.better, "got better") + "; nothing got worse"
    return "no organ changed by more than the threshold on these scans"
