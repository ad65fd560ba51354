"""Augmentation parameters: a dataclass of ranges, with JSON load/save.

Every random quantity is drawn uniformly from a ``(min, max)`` range (per axis where that applies), once per
example, following Rister et al. (2020) section IV and the B-spline elastic deformation of Roth et al. (2018).
Axes are in array order (z, y, x) = (plane, row, column). Distances are in voxels of the *input* volume.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

Range = tuple[float, float]
Ranges3 = tuple[Range, Range, Range]

#: value of image voxels sampled outside the input volume (HU of air), before noise and window
OUT_VALUE_HU = -1024.0
#: value of label voxels sampled outside the input volume (background)
OUT_LABEL = 0


#: The ranges a CT augmentation can use: beyond them every output voxel samples the same (outside) value and the
#: patch comes out blank, or the anatomy is no longer anatomy. name -> (lowest, highest, what goes wrong beyond).
LIMITS: dict[str, tuple[float, float, str]] = {
    "scale": (0.25, 4.0, "a larger zoom fills the patch with one voxel, a smaller one shrinks the scan to a dot"),
    "shear": (-1.0, 1.0, "a larger shear (45 degrees and more) smears the patch into streaks or samples outside"),
    "affine": (-1.0, 1.0, "a larger perturbation samples outside the scan and returns a blank patch"),
    "displacement": (-1024.0, 1024.0, "the patch would be sampled outside any scan and come out blank"),
    "noise_sigma": (0.0, 1000.0, "noise above 1000 HU drowns every organ"),
    "elastic_magnitude": (0.0, 64.0, "a larger elastic displacement folds the anatomy over itself"),
}


def _limit(name: str) -> dict:
    lo, hi, why = LIMITS[name]
    return {"lo": lo, "hi": hi, "why": why}


def _as_range(value: Any, name: str, *, lo: float = -math.inf, hi: float = math.inf, why: str = "") -> Range:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (min, max) pair of numbers, got {value!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if a > b:
        raise ValueError(f"{name} is an inverted range: min {a} > max {b}; pass ({b}, {a}) instead")
    if a < lo or b > hi:
        raise ValueError(f"{name} must lie within [{lo}, {hi}], got ({a:g}, {b:g})" + (f": {why}" if why else ""))
    return (a, b)


def _as_ranges3(value: Any, name: str, **bounds: Any) -> Ranges3:
    """One (min, max) pair for all three axes, or three pairs (z, y, x)."""
    try:
        items = list(value)
    except TypeError:
        raise TypeError(f"{name} must be a (min, max) pair or three pairs (z, y, x), got {value!r}") from None
    if len(items) == 2 and all(isinstance(v, (int, float)) for v in items):
        r = _as_range(items, name, **bounds)
        return (r, r, r)
    if len(items) != 3:
        raise ValueError(f"{name} must be a (min, max) pair or three pairs (z, y, x), got {value!r}")
    return tuple(_as_range(v, f"{name}[{i}]", **bounds) for i, v in enumerate(items))  # type: ignore[return-value]


@dataclass
class AugmentParams:
    """Ranges of the random augmentation, drawn once per example.

    Attributes
    ----------
    rotation_deg : three (min, max) pairs
        Rotation angle in degrees about each array axis (z, y, x); 003 used +-20.
    scale : three (min, max) pairs
        Zoom factor per axis (> 1 enlarges the anatomy in the output).
    shear : (min, max)
        Shear coefficient drawn independently for each of the 6 off-diagonal matrix entries.
    reflect_prob : three floats in [0, 1]
        Probability of a reflection about each axis (z, y, x).
    affine : (min, max)
        Generic affine perturbation: each of the 9 matrix entries gets an extra uniform term.
    displacement : three (min, max) pairs
        Displacement of the volume centre in voxels (z, y, x); 003 used +-20.
    occlusion_max : float
        Maximum height delta_max (in output voxels along z) of the occluded slab; 0 disables occlusion.
    noise_sigma : (min, max)
        Standard deviation (HU) of the additive Gaussian noise, drawn once per example.
    window_low, window_high : (min, max)
        Ranges of the window limits a < b in HU; output intensity is ``clip((I - a) / (b - a), 0, 1)``.
    elastic_spacing : float
        B-spline control grid spacing in output voxels (003: 24).
    elastic_magnitude : float
        Maximum control point displacement per axis in input voxels (003: 4); 0 disables the elastic term.

    Values beyond :data:`LIMITS` (e.g. a scale of 1e6 or a shear of 1e9, which return a blank patch) are refused
    with a ValueError naming the field, its range and what goes wrong beyond it.
    """

    rotation_deg: Ranges3 = ((-15.0, 15.0), (-15.0, 15.0), (-15.0, 15.0))
    scale: Ranges3 = ((0.9, 1.1), (0.9, 1.1), (0.9, 1.1))
    shear: Range = (-0.05, 0.05)
    reflect_prob: tuple[float, float, float] = (0.0, 0.0, 0.5)
    affine: Range = (-0.02, 0.02)
    displacement: Ranges3 = ((-20.0, 20.0), (-20.0, 20.0), (-20.0, 20.0))
    occlusion_max: float = 32.0
    noise_sigma: Range = (0.0, 40.0)
    window_low: Range = (-1000.0, -150.0)
    window_high: Range = (230.0, 1500.0)
    elastic_spacing: float = 24.0
    elastic_magnitude: float = 4.0

    def __post_init__(self) -> None:
        self.rotation_deg = _as_ranges3(self.rotation_deg, "rotation_deg", lo=-180.0, hi=180.0)
        self.scale = _as_ranges3(self.scale, "scale")
        if min(r[0] for r in self.scale) <= 0:
            raise ValueError(f"scale factors must be positive, got {self.scale!r}; e.g. scale=(0.9, 1.1)")
        self.scale = _as_ranges3(self.scale, "scale", **_limit("scale"))
        self.shear = _as_range(self.shear, "shear", **_limit("shear"))
        self.affine = _as_range(self.affine, "affine", **_limit("affine"))
        self.displacement = _as_ranges3(self.displacement, "displacement", **_limit("displacement"))
        try:
            probs = tuple(float(p) for p in self.reflect_prob)
        except TypeError:
            raise TypeError(f"reflect_prob must be 3 probabilities (z, y, x), got {self.reflect_prob!r}") from None
        if len(probs) != 3 or not all(0.0 <= p <= 1.0 for p in probs):
            raise ValueError(
                f"reflect_prob must be 3 probabilities in [0, 1] (z, y, x), got {self.reflect_prob!r}; "
                "e.g. reflect_prob=(0, 0, 0.5)"
            )
        self.reflect_prob = probs  # type: ignore[assignment]
        self.occlusion_max = _nonneg(self.occlusion_max, "occlusion_max")
        self.noise_sigma = _as_range(self.noise_sigma, "noise_sigma", **_limit("noise_sigma"))
        self.window_low = _as_range(self.window_low, "window_low")
        self.window_high = _as_range(self.window_high, "window_high")
        if self.window_low[1] >= self.window_high[0]:
            raise ValueError(
                f"window_low {self.window_low} must lie below window_high {self.window_high} "
                "(max of window_low < min of window_high) so that a < b for every draw"
            )
        self.elastic_magnitude = _nonneg(self.elastic_magnitude, "elastic_magnitude")
        top, why = LIMITS["elastic_magnitude"][1:]
        if self.elastic_magnitude > top:
            raise ValueError(f"elastic_magnitude must be at most {top:g} voxels, got {self.elastic_magnitude:g}: {why}")
        self.elastic_spacing = _nonneg(self.elastic_spacing, "elastic_spacing")
        if self.elastic_spacing < 2:
            raise ValueError(f"elastic_spacing must be >= 2 voxels, got {self.elastic_spacing}; 003 used 24")

    @classmethod
    def none(cls, *, window: Range = (-1024.0, 3071.0)) -> AugmentParams:
        """The identity: no warp, occlusion, noise or elastic term, and the fixed window ``window`` (HU)."""
        a, b = _as_range(window, "window")
        return cls(
            rotation_deg=(0.0, 0.0),
            scale=(1.0, 1.0),
            shear=(0.0, 0.0),
            reflect_prob=(0.0, 0.0, 0.0),
            affine=(0.0, 0.0),
            displacement=(0.0, 0.0),
            occlusion_max=0.0,
            noise_sigma=(0.0, 0.0),
            window_low=(a, a),
            window_high=(b, b),
            elastic_magnitude=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of lists and floats (JSON-ready)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentParams:
        """Build from a dict as written by :meth:`to_dict`; unknown keys raise ValueError."""
        if not isinstance(data, dict):
            raise TypeError(f"augmentation parameters must be a dict, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown augmentation parameter(s) {unknown}; valid names are {sorted(names)}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the parameters as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> AugmentParams:
        """Read parameters from a JSON file written by :meth:`save` (missing keys take the defaults)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"augmentation parameter file {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def _nonneg(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v
