"""Training configuration: one small dataclass of plain values, plus named presets."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainConfig", "TRAIN_PRESETS", "LR_SCHEDULES"]

LR_SCHEDULES = ("constant", "cosine", "step", "poly")


def _triple(value: Any, name: str) -> tuple[int, int, int]:
    if isinstance(value, str):
        raise TypeError(f"{name} must be an int or 3 ints (z, y, x), got the string {value!r}; e.g. [64, 64, 64]")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        vals = (int(value),) * 3
    else:
        try:
            vals = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{name} must be an int or 3 ints (z, y, x), got {value!r}") from None
    if len(vals) != 3 or min(vals) < 1:
        raise ValueError(f"{name} must be 3 positive sizes (z, y, x) in voxels, got {value!r}; e.g. (64, 64, 64)")
    return vals  # type: ignore[return-value]


def _organ_values(value: Any, name: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"TrainConfig field {name!r} must be null or a list of organ values, got {value!r}; "
                        "e.g. [1, 2, 4]")
    return tuple(_check_type(name, v, "int") for v in value)


_KIND_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
               "dict": "a dict (a JSON object)"}


def _check_type(name: str, value: Any, annotation: str) -> Any:
    """``value`` checked against a field's annotation ("int", "float | None", ...); returns it normalised.

    Raises a TypeError naming the field, the value and its type, instead of a comparison failing later.
    """
    parts = [p.strip() for p in str(annotation).split("|")]
    optional = "None" in parts
    kind = next((p for p in parts if p != "None"), "Any")
    if value is None and optional:
        return None
    if kind not in _KIND_NAMES:
        return value
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool)
        or isinstance(value, float) and value.is_integer(),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "bool": isinstance(value, bool),
        "dict": isinstance(value, dict),
    }[kind]
    if not ok:
        hint = " (a JSON string: write the number without quotes)" if isinstance(value, str) and kind in (
            "int", "float") else ""
        raise TypeError(f"TrainConfig field {name!r} must be {_KIND_NAMES[kind]}{' or null' if optional else ''}, "
                        f"got {value!r} ({type(value).__name__}){hint}")
    if kind == "float":
        if not math.isfinite(value):
            raise ValueError(f"TrainConfig field {name!r} must be a finite number, got {value!r}")
        return float(value)
    return int(value) if kind == "int" else value


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data; stored in every checkpoint as plain JSON.

    Attributes
    ----------
    model : str or dict
        A preset name from ``ct.MODEL_PRESETS`` or a ``ModelConfig`` as a dict.
    iterations : int
        Number of optimiser steps (total, including those before a resume).
    batch_size : int
        Crops per step; each crop comes from a randomly chosen case, so a batch mixes several volumes.
    crop_size : 3 ints
        Crop (and validation tile) size in voxels at the working spacing.
    spacing : float
        Working spacing in mm (isotropic); cases are resampled to it once and cached.
    learning_rate : float
        Adam's initial learning rate.
    lr_schedule : {"constant", "cosine", "step", "poly"}
        How the learning rate decays over ``iterations`` (down to ``learning_rate * lr_min_factor``).
    warmup : int
        Iterations of linear warm-up at the start.
    weight_decay : float
        Adam's L2 weight decay.
    loss : str
        A loss from ``ct.losses`` ("iou", "dice", "cross_entropy", ...); ``loss_options`` go to it. The IOU and
        Dice scores are computed over the whole mini-batch (``batch=True``; ``loss_options={"batch": False}`` scores
        each crop on its own, where a class absent from a crop has a constant loss and its false positives there go
        unpunished).
    class_weighting : {"uniform", "simple", "square", "sqrt"}
        Class weights from ``ct.losses.class_weights`` over the training labels.
    augment : dict or None
        ``ct.AugmentParams`` as a dict (None: the defaults).
    augment_at : int or None
        Iteration at which augmentation switches on; None: automatically, once the training loss stops falling
        (mean over the last ``plateau_window`` iterations improves by less than ``plateau_tolerance`` relative to
        the previous window). ``augment_at=0`` augments from the start; a negative value never augments.
    validate_every : int
        Validation (all tiles of every validation case) every this many iterations and at the end.
    early_stopping : int or None
        Stop after this many validations without improvement of the mean validation Dice.
    foreground_prob : float
        Probability that a crop is centred on a random labelled voxel rather than anywhere.
    centre_organs : list of int, optional
        Organ values the organ-centred crops are centred on, in turn (None: every organ a case labels). A case
        that labels none of them is centred on its own organs.
    amp : bool
        Mixed precision when training on a GPU (ignored on the CPU).
    device : str
        "auto", "cpu" or "cuda".
    seed : int
        Seeds weights, crops and augmentation: the same seed and data give the same run.
    output_dir : str or None
        Where ``last.pt``, ``best.pt`` and ``config.json`` go (None: no checkpoints).
    checkpoint_every : int
        Write ``last.pt`` every this many iterations (and at the end, on early stop and when the run is stopped).
    init_checkpoint : str or None
        Start from these weights (fine-tuning) with a fresh optimiser.
    sync_batchnorm : bool
        Under ``torchrun``, convert batch-norm layers to synchronised batch norm (statistics over all processes).
    bn_recalibration : int
        Before each validation and at the end, batch-norm statistics are recomputed from this many un-augmented
        training crops with the weights fixed ("precise batch norm"; 0 keeps the running averages). The running
        averages lag behind the changing weights and come from augmented crops; on phantoms, recomputing them
        raised the bladder's Dice from 0.73 to 0.92 (docs/training.md).
    """

    model: Any = "cpu-small"
    iterations: int = 1000
    batch_size: int = 2
    crop_size: tuple[int, int, int] = (64, 64, 64)
    spacing: float = 3.0
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    lr_min_factor: float = 0.05
    warmup: int = 0
    weight_decay: float = 0.0
    loss: str = "iou"
    loss_options: dict = field(default_factory=dict)
    class_weighting: str = "uniform"
    num_classes: int = 6
    augment: dict | None = None
    augment_at: int | None = None
    plateau_window: int = 100
    plateau_tolerance: float = 0.01
    validate_every: int = 100
    val_overlap: float = 0.25
    val_mode: str = "gaussian"
    early_stopping: int | None = None
    foreground_prob: float = 0.5
    centre_organs: tuple[int, ...] | None = None
    amp: bool = True
    device: str = "auto"
    seed: int = 0
    output_dir: str | None = None
    checkpoint_every: int = 50
    init_checkpoint: str | None = None
    sync_batchnorm: bool = False  # under torchrun: synchronise batch-norm statistics across processes
    bn_recalibration: int = 200

    def __post_init__(self) -> None:
        self._coerce_objects()
        for f in dataclasses.fields(self):
            if f.name != "crop_size":
                setattr(self, f.name, _check_type(f.name, getattr(self, f.name), f.type))
        self.crop_size = _triple(self.crop_size, "crop_size")
        self.centre_organs = _organ_values(self.centre_organs, "centre_organs")
        _check_ranges(self)
        _check_components(self)

    def _coerce_objects(self) -> None:
        """Objects the API accepts for plain fields: paths, ``AugmentParams``, ``ModelConfig``."""
        for name in ("output_dir", "init_checkpoint"):
            if isinstance(getattr(self, name), Path):
                setattr(self, name, str(getattr(self, name)))
        if self.augment is not None and not isinstance(self.augment, dict):
            to_dict = getattr(self.augment, "to_dict", None)
            if to_dict is None:
                raise TypeError(f"augment must be a dict or ct.AugmentParams, got {type(self.augment).__name__}")
            self.augment = to_dict()
        if not isinstance(self.model, (str, dict)):
            if dataclasses.is_dataclass(self.model):
                self.model = _plain(dataclasses.asdict(self.model))
            else:
                raise TypeError(f"model must be a preset name or a ModelConfig/dict, got {type(self.model).__name__}")

    # -- plain data -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Plain JSON-compatible dict (lists instead of tuples)."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild from :meth:`to_dict`; unknown keys raise a ValueError naming them.

        A ``window`` entry (written beside the fields in a run's ``config.json``: the HU window the augmentation
        ranges give) is accepted when it agrees with them, so a run's own ``config.json`` can be used again.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a TrainConfig must be a dict (a JSON object) of fields, got {type(data).__name__}")
        data = dict(data)
        window = data.pop("window", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; known fields: {sorted(names)}")
        config = cls(**data)
        if window is not None:
            from .loop import resolve_window

            derived = resolve_window(config)
            try:
                agrees = len(window) == 2 and all(abs(float(a) - b) <= 1e-6 for a, b in zip(window, derived))
            except (TypeError, ValueError):
                agrees = False
            if not agrees:
                raise ValueError(
                    f"'window' {window!r} does not agree with the window {list(derived)} of the augmentation "
                    "ranges: the window is derived from augment's window_low/window_high; change those and "
                    "remove 'window'"
                )
        return config

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as JSON text (written to ``path`` when given)."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "TrainConfig":
        """Read JSON text or a JSON file; errors name the file, the line and the field."""
        p = Path(text_or_path) if not str(text_or_path).lstrip().startswith("{") else None
        where = str(p) if p is not None else "TrainConfig JSON"
        text = p.read_text() if p is not None else str(text_or_path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; fix the "
                             "file (a JSON object of TrainConfig fields, as TrainConfig.to_json writes)") from None
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None

    @classmethod
    def preset(cls, name: str, **changes: Any) -> "TrainConfig":
        """A named preset from :data:`TRAIN_PRESETS` with some fields changed."""
        if name not in TRAIN_PRESETS:
            raise ValueError(f"unknown training preset {name!r}; choose one of {sorted(TRAIN_PRESETS)}")
        return cls.from_dict({**TRAIN_PRESETS[name], **changes})

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def _check_ranges(c: TrainConfig) -> None:
    """Values of the right type but outside their range; each message names the field and a usual value."""
    for name in ("iterations", "batch_size", "validate_every", "checkpoint_every", "plateau_window", "num_classes"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be a positive integer, got {getattr(c, name)!r}")
    rules = [  # (holds, field, requirement, hint)
        (c.num_classes <= 255, "num_classes", "at most 255", "labels are 8-bit and 255 marks unlabelled voxels"),
        (c.learning_rate > 0, "learning_rate", "positive", "1e-3 is a good start for Adam"),
        (c.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}", ""),
        (0.0 <= c.lr_min_factor <= 1.0, "lr_min_factor", "in [0, 1]", "the final fraction of learning_rate"),
        (c.warmup >= 0, "warmup", "a number of iterations >= 0", ""),
        (c.weight_decay >= 0, "weight_decay", ">= 0", ""),
        (c.plateau_tolerance >= 0, "plateau_tolerance", ">= 0", "a relative improvement, e.g. 0.01"),
        (0.0 <= c.val_overlap < 1.0, "val_overlap", "in [0, 1)",
         "the fraction by which validation tiles overlap; 0.25 is usual"),
        (c.val_mode in ("constant", "gaussian"), "val_mode", "'constant' or 'gaussian'", ""),
        (c.early_stopping is None or c.early_stopping >= 1, "early_stopping", "a number of validations >= 1",
         "use None (JSON null) to switch early stopping off"),
        (0.0 <= c.foreground_prob <= 1.0, "foreground_prob", "in [0, 1]", ""),
        (c.centre_organs is None or (len(c.centre_organs) > 0 and all(
            0 < v < c.num_classes for v in c.centre_organs)),
         "centre_organs", f"None or a list of organ values in 1..{c.num_classes - 1}", "e.g. [1, 2, 4]"),
        (c.device in ("auto", "cpu", "cuda") or c.device.startswith("cuda:"), "device", "'auto', 'cpu' or 'cuda'",
         ""),
        (c.spacing > 0, "spacing", "a positive working spacing in mm", "3 is usual"),
        (c.seed >= 0, "seed", "an integer >= 0", ""),
        (c.bn_recalibration >= 0, "bn_recalibration", "a number of crops >= 0", "0 switches it off"),
    ]
    for ok, name, requirement, hint in rules:
        if not ok:
            raise ValueError(f"{name} must be {requirement}, got {getattr(c, name)!r}{'; ' + hint if hint else ''}")


def _check_components(c: TrainConfig) -> None:
    """The model, loss and augmentation the names and dicts describe exist (checked now, not at iteration 1)."""
    from ..augment import AugmentParams
    from ..nn import MODEL_PRESETS, ModelConfig
    from ..nn.losses import LOSSES, WEIGHTING_SCHEMES, get_loss, loss_name

    if c.class_weighting not in WEIGHTING_SCHEMES:
        raise ValueError(f"class_weighting must be one of {', '.join(map(repr, WEIGHTING_SCHEMES))}, got "
                         f"{c.class_weighting!r}")
    if isinstance(c.model, str) and c.model not in MODEL_PRESETS:
        raise ValueError(f"TrainConfig field 'model': unknown model preset {c.model!r}; choose one of "
                         f"{sorted(MODEL_PRESETS)} or give a ModelConfig dict")
    if loss_name(c.loss) not in LOSSES:
        raise ValueError(f"TrainConfig field 'loss': unknown loss {c.loss!r}; choose one of {list(LOSSES)}")
    checks = [("model", lambda: isinstance(c.model, str) or ModelConfig.from_dict(dict(c.model))),
              ("augment", lambda: c.augment is None or AugmentParams.from_dict(c.augment)),
              ("loss_options", lambda: get_loss(c.loss, **{k: v for k, v in c.loss_options.items()
                                                             if loss_name(c.loss) != "cross_entropy"
                                                             or k != "cross_entropy_weight"}))]
    for name, check in checks:
        try:
            check()
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"TrainConfig field {name!r}: {exc}") from None


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


#: cpu-quick's augmentation; the starter model's (both stages) scales a little more (0.9-1.1)
_CPU_QUICK_AUGMENT = {
    "rotation_deg": [[-10.0, 10.0]] * 3, "scale": [[0.95, 1.05]] * 3, "shear": [-0.02, 0.02],
    "affine": [0.0, 0.0], "displacement": [[-2.0, 2.0]] * 3, "reflect_prob": [0.0, 0.0, 0.0],
    "occlusion_max": 8.0, "noise_sigma": [0.0, 10.0], "window_low": [-950.0, -950.0],
    "window_high": [400.0, 400.0], "elastic_spacing": 24.0, "elastic_magnitude": 1.0,
}
_STARTER = dict(
    model="cpu-small", iterations=4000, batch_size=2, crop_size=(48, 48, 48), learning_rate=5e-3,
    lr_schedule="cosine", loss="cross_entropy", class_weighting="sqrt", validate_every=100000,
    augment_at=0, plateau_window=40, checkpoint_every=250, foreground_prob=0.5, centre_organs=(1, 2, 4),
    augment={**_CPU_QUICK_AUGMENT, "scale": [[0.9, 1.1]] * 3},
)
# the second and third stages of the starter: the IOU loss plus cross-entropy at a lower rate, 90 % organ-centred crops
_STARTER_REFINE = {**_STARTER, "iterations": 1000, "learning_rate": 1e-3, "loss": "iou",
                   "loss_options": {"cross_entropy_weight": 0.5}, "foreground_prob": 0.9}

#: named settings (as dicts of TrainConfig fields)
TRAIN_PRESETS: dict[str, dict] = {
    # ten minutes on a 2-core CPU (docs/training.md, "What ten minutes of CPU training reach"): the small U-Net,
    # many small organ-centred crops, the IOU loss plus a little cross-entropy (no small organ dies early), mild
    # augmentation from the start, and a fixed window of (-950, 400) HU that keeps lung parenchyma apart from air
    "cpu-quick": dict(
        model="cpu-small", iterations=1600, batch_size=4, crop_size=(32, 32, 32), learning_rate=5e-3,
        lr_schedule="cosine", loss="iou", loss_options={"cross_entropy_weight": 0.5}, validate_every=200,
        augment_at=0, plateau_window=40, checkpoint_every=100, foreground_prob=0.9,
        augment=_CPU_QUICK_AUGMENT,
    ),
    # the built-in starter model (docs/starter-model.md): larger crops than cpu-quick, trained on the
    # domain-randomised phantoms and the weakly labelled thorax of train.starter.starter_cases(); deterministic.
    # Cross-entropy with square-root class weights and half the crops centred on an organ: unweighted losses left
    # kidneys and bladder unlearnt, inverse-frequency ("simple") weights flooded the background with them. The
    # organ-centred crops take liver, bladder and kidneys in turn: lungs and bone come from the labellers
    "starter": _STARTER,
    # the starter model's second stage, from the first's weights (--init runs/starter/last.pt): the IOU loss plus
    # cross-entropy of cpu-quick, still square-root weighted, at a lower rate and with 90 % organ-centred crops,
    # removes the false positives the first stage leaves (unweighted, it also removed the bladder and kidneys)
    "starter-refine": _STARTER_REFINE,
    # the starter model's third stage, from the second's weights (--init runs/starter-refine/last.pt): the second
    # stage's settings on phantoms of both anatomy versions (train.starter.STARTER_STAGES), which keeps the bladder
    # the version-3 phantoms teach and restores the liver that training on them alone loses on real CT
    "starter-adapt": _STARTER_REFINE,
    # the paper's setting (Rister et al.): IOU loss, large crops, curriculum switched on when the loss plateaus
    "paper": dict(
        model="paper-unet", iterations=20000, batch_size=3, crop_size=(120, 120, 160), learning_rate=1e-3,
        lr_schedule="step", loss="iou", validate_every=500, augment_at=None, plateau_window=100,
        early_stopping=10, checkpoint_every=250,
    ),
}
