"""Is a fine-tune safe? Each corrected scan held out in turn: fine-tune on the others, compare on it.

A model fine-tuned on a scan always looks good on that scan. Whether fine-tuning helps a scan it has not seen is
measured by leaving each corrected scan out once: the old model is fine-tuned on the others (the same settings as
the real fine-tune) and both models are compared on the scan left out (:func:`ct.compare_models`), every organ.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["holdout_check"]


def holdout_check(old: Any, cases: Sequence[Any], config: Any = None, *,
                  progress: Callable[[int, int], Any] | None = None, **predict_options: Any):
    """Fine-tune ``old`` on all corrected scans but one, compare it with ``old`` on that one; each scan in turn.

    Parameters
    ----------
    old : None, "starter" or checkpoint path
        The model in use (None: the built-in starter model).
    cases : sequence of (Volume, labels) or (Volume, labels, corrected organs), at least 2
        The corrected scans, as :func:`ct.compare_models` takes them.
    config : TrainConfig, dict or preset name, optional
        The fine-tune's settings (iterations, crop size, ...); the model, working spacing and starting weights
        always come from ``old``. Default: 300 iterations of the ``cpu-quick`` preset.
    progress : callable(done, total), optional
        Called after each held-out scan.
    **predict_options
        Passed on to ``ct.predict`` for both models.

    Returns
    -------
    Comparison
        The rows of every held-out scan; ``summary`` says what got worse where (``safe`` is False then).

    Raises
    ------
    ValueError
        Fewer than 2 cases: with one corrected scan nothing is left to hold out (compare on earlier corrected
        scans with :func:`ct.compare_models` instead).
    """
    from ..infer.compare import Comparison, _sentence, compare_models
    from ..models import resolve_model
    from .checkpoint import read_checkpoint
    from .config import TrainConfig
    from .loop import train

    cases = list(cases)
    if len(cases) < 2:
        raise ValueError(f"holdout_check needs at least 2 corrected scans, got {len(cases)}: with one, nothing is "
                         "left to hold out; compare on scans the new model did not see with ct.compare_models")
    start = str(resolve_model(old))
    info = read_checkpoint(start)
    base = config if isinstance(config, TrainConfig) else TrainConfig.preset(
        config or "cpu-quick", **({"iterations": 300} if config is None else {}))
    spacing = float((info.get("train_config") or {}).get("spacing", base.spacing))
    total = Comparison()
    with tempfile.TemporaryDirectory(prefix="ctorgans-holdout-") as tmp:
        for k in range(len(cases)):
            out = Path(tmp) / f"without-{k + 1}"
            cfg = base.replace(model=dict(info["model_config"]), spacing=spacing, init_checkpoint=start,
                               output_dir=str(out))
            train_on = [tuple(c[:2]) if isinstance(c, (tuple, list)) else (c["volume"], c["labels"])
                        for i, c in enumerate(cases) if i != k]
            for _ in train(cfg, train_on, overwrite=True):
                pass
            held = cases[k]
            named = dict(held) if isinstance(held, dict) else {
                "volume": held[0], "labels": held[1], "corrected": held[2] if len(held) > 2 else None}
            named.setdefault("name", f"scan {chr(ord('A') + k)}")
            result = compare_models(start, str(out / "last.pt"), [named], **predict_options)
            for name in ("rows", "worse", "better"):
                getattr(total, name).extend(getattr(result, name))
            if progress is not None:
                progress(k + 1, len(cases))
    total.summary = _sentence(total)
    return total
