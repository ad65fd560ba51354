"""The model contract: what a trained model needs at inference, stored once in every checkpoint.

Training writes it (``train/``), prediction reads it (``infer/``); neither imports the other. One reader,
:func:`read_contract`, turns a checkpoint's information into a :class:`ModelContract`, including checkpoints written
before the contract existed (their spacing and window were stored twice, at the top level and in the training
configuration).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .organs import ORGANS
from .volume import CT_SPACING_RANGE_MM

__all__ = ["ModelContract", "read_contract", "window_array", "CONTRACT_VERSION", "DEFAULT_OVERLAP"]

CONTRACT_VERSION = 1
#: the tile overlap of ``ct.predict`` when it tiles (MONAI's default); here, beside the other inference facts, so
#: that the widgets and the CLI read it without importing torch
DEFAULT_OVERLAP = 0.25


def _default_window() -> tuple[float, float]:
    from .augment import AugmentParams

    p = AugmentParams()
    return (float(np.mean(p.window_low)), float(np.mean(p.window_high)))


def _default_organs() -> dict[int, str]:
    return {int(v): o.name for v, o in ORGANS.items()}


@dataclass(frozen=True)
class ModelContract:
    """What a model expects and predicts.

    Attributes
    ----------
    spacing : float
        Working spacing in mm (isotropic): scans are resampled to it before the network sees them.
    window : (low, high)
        HU window mapped linearly to [0, 1] (clipped) as the network input.
    size_multiple : int
        Inputs whose sides are a multiple of this pass the network without internal padding.
    organs : dict int -> str
        Label value -> organ name for every class the model predicts (0 is background).
    """

    spacing: float = 3.0
    window: tuple[float, float] = field(default_factory=_default_window)
    size_multiple: int = 8
    organs: Mapping[int, str] = field(default_factory=_default_organs)

    def __post_init__(self) -> None:
        spacing = float(self.spacing)
        if not (math.isfinite(spacing) and spacing > 0):
            raise ValueError(f"model contract: spacing must be a positive working spacing in mm, got {self.spacing!r}")
        lo, hi = CT_SPACING_RANGE_MM  # a checkpoint's 1e-6 mm would resample a scan to trillions of voxels
        if not lo <= spacing <= hi:
            raise ValueError(f"model contract: the working spacing {spacing:g} mm is not a CT voxel size (it must lie "
                             f"between {lo:g} and {hi:g} mm); the checkpoint is damaged or the spacing given is not "
                             "in mm: give e.g. spacing=3.0")
        lo, hi = (float(w) for w in self.window)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"model contract: window must be (low, high) HU with high > low, got {self.window!r}")
        mult = int(self.size_multiple)
        if mult < 1 or mult != self.size_multiple:
            raise ValueError(f"model contract: size_multiple must be a positive integer, got {self.size_multiple!r}")
        organs = {int(k): str(v) for k, v in dict(self.organs).items()}
        if 0 not in organs:
            organs[0] = "background"
        object.__setattr__(self, "spacing", spacing)
        object.__setattr__(self, "window", (lo, hi))
        object.__setattr__(self, "size_multiple", mult)
        object.__setattr__(self, "organs", dict(sorted(organs.items())))

    def to_dict(self) -> dict:
        """Plain data for a checkpoint."""
        return {"version": CONTRACT_VERSION, "spacing": self.spacing, "window": list(self.window),
                "size_multiple": self.size_multiple, "organs": dict(self.organs)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "ModelContract":
        """Rebuild from :meth:`to_dict`; unknown keys raise a ValueError naming them."""
        known = {"version", "spacing", "window", "size_multiple", "organs"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"model contract: unknown fields {unknown}; known: {sorted(known)}")
        return cls(**{k: v for k, v in data.items() if k != "version"})

    def check_classes(self, num_classes: int, *, source: str = "the model") -> None:
        """Refuse a class count that the organ table (and a uint8 label map) cannot hold.

        Raises
        ------
        ValueError
            With the class count, the organ table and what to do.
        """
        n = int(num_classes)
        if n > 256:
            raise ValueError(f"{source} predicts {n} classes, but label maps hold values 0-255 (uint8); "
                             "use a model with at most 256 classes")
        unknown = [v for v in range(n) if v not in self.organs]
        if n < 2 or unknown:
            table = ", ".join(f"{v} {name}" for v, name in self.organs.items())
            raise ValueError(f"{source} predicts {n} classes (values 0-{n - 1}), but its organ table has only "
                             f"[{table}]; values {unknown or [1]} would be labels without an organ. Use a checkpoint "
                             "trained with num_classes matching the organ table (6: background + 5 CT-ORG organs)")

    def window_array(self, array: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Network input of HU values: :func:`window_array` with this contract's window."""
        return window_array(array, self.window, out=out)


def window_array(array: np.ndarray, window, out: np.ndarray | None = None) -> np.ndarray:
    """Map HU to [0, 1] through ``window = (low, high)`` (clipped), in float32, without float64 copies."""
    lo, hi = float(window[0]), float(window[1])
    out = np.empty(np.shape(array), np.float32) if out is None else out
    np.subtract(array, np.float32(lo), out=out, dtype=np.float32, casting="unsafe")
    np.multiply(out, np.float32(1.0 / (hi - lo)), out=out)
    return np.clip(out, 0.0, 1.0, out=out)


def _model_size_multiple(model_config: Mapping | None) -> int:
    if not model_config:
        return 8
    if model_config.get("arch", "unet3d") == "inception_fcn":
        return 8
    return 2 ** (int(model_config.get("levels", 4)) - 1)


def read_contract(info: Mapping[str, Any]) -> ModelContract:
    """The contract of a checkpoint (the dict of :func:`ct.read_checkpoint` or the info of ``ct.load_checkpoint``).

    Checkpoints without a ``contract`` entry (written before it existed) give theirs from the top-level
    ``spacing``/``window``, the training configuration and the model configuration.

    Raises
    ------
    ValueError
        A stored contract that is not valid, named with the checkpoint's path when known.
    """
    where = info.get("path") or "checkpoint"
    try:
        if "contract" in info:
            return ModelContract.from_dict(dict(info["contract"]))
        tc = info.get("train_config") or {}
        organs = info.get("organs")
        names = {int(k): (v["name"] if isinstance(v, Mapping) else str(v)) for k, v in organs.items()} if organs else None
        return ModelContract(
            spacing=float(info.get("spacing", tc.get("spacing", 3.0))),
            window=tuple(info.get("window") or tc.get("window") or _default_window()),
            size_multiple=_model_size_multiple(info.get("model_config")),
            **({"organs": names} if names else {}),
        )
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"{where}: the stored model contract is not valid ({exc}); train the model again "
                         "or use another checkpoint") from exc
