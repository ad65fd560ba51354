"""Model configuration, presets and the model factory."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from torch import nn

from ..organs import DEFAULT_CLASSES

ARCHS = ("unet3d", "inception_fcn")
NORMS = ("batch", "instance", "group", "none")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in every checkpoint).

    Attributes
    ----------
    arch : {"unet3d", "inception_fcn"}
        3D U-Net (003) or the paper's inception FCN (Rister et al. Table I).
    in_channels : int
        Input channels (1: CT windowed to [0, 1]).
    num_classes : int
        Output classes including background (6: background + 5 CT-ORG organs).
    base_width : int
        U-Net: channels of the first convolution (32 in the 3D U-Net paper).
    levels : int
        U-Net: resolution levels including the bottom (4 in 003). Inputs are padded to a multiple of
        ``2^(levels-1)`` internally (8 for the inception FCN), so any size works.
    width : float
        Inception FCN: multiplier of every channel count of Table I (1.0 = paper).
    norm : {"batch", "instance", "group", "none"}
        Normalisation after each convolution.
    double_in_level : bool
        U-Net: the second convolution of a level doubles the channels, as in the 3D U-Net paper.
    inception_stage1, inception_stage2 : tuple of str
        Inception FCN: GoogLeNet names of the inception modules before/after the second pooling; the defaults give
        Table I's widths 256, 480, 512, 512, 528, 832 | 832, 1024.
    """

    arch: str = "unet3d"
    in_channels: int = 1
    num_classes: int = DEFAULT_CLASSES
    base_width: int = 32
    levels: int = 4
    width: float = 1.0
    norm: str = "batch"
    double_in_level: bool = True
    inception_stage1: tuple = ("3a", "3b", "4a", "4b", "4d", "4e")
    inception_stage2: tuple = ("5a", "5b")

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {self.norm!r}")
        for name in ("in_channels", "num_classes", "base_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.levels, int) or not 1 <= self.levels <= 7:
            raise ValueError(f"levels must be an integer in [1, 7], got {self.levels!r}")
        if not (float(self.width) > 0):
            raise ValueError(f"width must be a positive multiplier, got {self.width!r}")
        from .inception_fcn import GOOGLENET_SPLITS

        self.inception_stage1 = tuple(str(v) for v in self.inception_stage1)
        self.inception_stage2 = tuple(str(v) for v in self.inception_stage2)
        for name in ("inception_stage1", "inception_stage2"):
            bad = [v for v in getattr(self, name) if v not in GOOGLENET_SPLITS]
            if bad or not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty tuple of {sorted(GOOGLENET_SPLITS)}, got {bad}")

    @property
    def size_multiple(self) -> int:
        """Inputs are padded internally to a multiple of this (crops of this multiple avoid the padding)."""
        return 8 if self.arch == "inception_fcn" else 2 ** (self.levels - 1)

    def to_dict(self) -> dict:
        """Plain data (JSON-safe) for checkpoints."""
        d = asdict(self)
        d["inception_stage1"] = list(self.inception_stage1)
        d["inception_stage2"] = list(self.inception_stage2)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild from :meth:`to_dict` output; unknown keys raise."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)


MODEL_PRESETS: dict[str, ModelConfig] = {
    # Rister et al. Table I: ~ the paper's network at full width, batch norm.
    "paper-inception": ModelConfig(arch="inception_fcn", width=1.0, norm="batch"),
    # 003 / 3D U-Net: 4 levels, 32 -> 512 channels, ~19M parameters.
    "paper-unet": ModelConfig(arch="unet3d", base_width=32, levels=4, norm="batch"),
    # trains on a 2-core CPU: 4 levels of 8, 16, 32, 64 channels (~0.4M parameters), batch norm: instance norm
    # normalises each crop's features on their own and so hides the absolute HU level (lung vs outside air, liver
    # vs muscle), which the small network then learns far more slowly.
    "cpu-small": ModelConfig(arch="unet3d", base_width=8, levels=4, norm="batch", double_in_level=False),
}


def build_model(config: ModelConfig | str | dict) -> nn.Module:
    """Build a model from a :class:`ModelConfig`, a preset name of ``MODEL_PRESETS`` or a config dict.

    Parameters
    ----------
    config : ModelConfig, str or dict

    Returns
    -------
    torch.nn.Module
        Takes ``(N, in_channels, D, H, W)`` float input, returns logits ``(N, num_classes, D, H, W)``.
        ``model.config`` holds the (copied) configuration.

    Examples
    --------
    >>> import torch
    >>> from napari_ctorgans.nn import build_model
    >>> model = build_model("cpu-small")
    >>> model(torch.zeros(1, 1, 19, 24, 17)).shape
    torch.Size([1, 6, 19, 24, 17])
    """
    if isinstance(config, str):
        if config not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {config!r}; choose one of {sorted(MODEL_PRESETS)}")
        config = MODEL_PRESETS[config]
    elif isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    elif not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig, a preset name or a dict, got {type(config).__name__}")
    config = replace(config)
    if config.arch == "unet3d":
        from .unet3d import UNet3D

        model: nn.Module = UNet3D(
            config.in_channels, config.num_classes, config.base_width, config.levels, config.norm,
            config.double_in_level,
        )
    else:
        from .inception_fcn import InceptionFCN

        model = InceptionFCN(
            config.in_channels, config.num_classes, float(config.width), config.norm,
            config.inception_stage1, config.inception_stage2,
        )
    model.config = config  # type: ignore[assignment]
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
