"""The 3D GoogLeNet-style FCN of Rister et al. (Table I): decimation by 8, inception modules, no skips, x8 upsampling.

Layers (widths at ``width=1.0``): conv 7 stride 2 (64), conv 1 (64), conv 4 (192), max-pool 2, six inception modules
(256, 480, 512, 512, 528, 832), max-pool 2, two inception modules (832, 1024), then the "interpolation" layer: a 1x1x1
classifier to the class count and a learned 8x8x8 transposed convolution with stride 8 (filter 8, outputs = classes,
stride 1/8 in Table I). Every convolution has a bias, normalisation and ReLU. An inception module concatenates four
paths: 1x1x1; 1x1x1 then 3x3x3; 1x1x1 then 5x5x5; 3x3x3 max-pool then 1x1x1. The split of each module's outputs over
the paths follows GoogLeNet (3a, 3b, 4a, 4b, 4d, 4e, 5a, 5b), scaled by ``width``.

Any input size works: the input is zero-padded to a multiple of 8 (at least 16 with instance norm) and the output
cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .unet3d import ConvNormReLU, pad_to_multiple

# (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) from GoogLeNet, totals = 1x1 + 3x3 + 5x5 + pool proj
# GoogLeNet module name -> path widths; the outputs are 256, 480, 512, 512, 512, 528, 832, 832, 1024
GOOGLENET_SPLITS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
# Table I: 256, 480, 512, 512, 528, 832 | pool | 832, 1024
PAPER_STAGE1 = ("3a", "3b", "4a", "4b", "4d", "4e")
PAPER_STAGE2 = ("5a", "5b")


def _scale(c: int, width: float) -> int:
    return max(4, int(round(c * width)))


class Inception3D(nn.Module):
    """Four parallel paths (1, 1-3, 1-5 convolutions and pool-1), concatenated along channels."""

    def __init__(self, cin: int, split: tuple, width: float, norm: str) -> None:
        super().__init__()
        c1, r3, c3, r5, c5, cp = (_scale(c, width) for c in split)
        self.b1 = ConvNormReLU(cin, c1, 1, norm)
        self.b3 = nn.Sequential(ConvNormReLU(cin, r3, 1, norm), ConvNormReLU(r3, c3, 3, norm))
        self.b5 = nn.Sequential(ConvNormReLU(cin, r5, 1, norm), ConvNormReLU(r5, c5, 5, norm))
        self.bp = ConvNormReLU(cin, cp, 1, norm)
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.max_pool3d(x, 3, stride=1, padding=1)
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(pooled)], dim=1)


class _Conv4(nn.Module):
    """4x4x4 convolution with 'same' output size (asymmetric zero padding 1 before, 2 after)."""

    def __init__(self, cin: int, cout: int, norm: str) -> None:
        super().__init__()
        self.block = ConvNormReLU(cin, cout, 4, norm)
        self.block[0].padding = (0, 0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.pad(x, [1, 2, 1, 2, 1, 2]))


class InceptionFCN(nn.Module):
    """Rister et al.'s FCN; logits ``(N, classes, D, H, W)`` for input ``(N, in_channels, D, H, W)``.

    Parameters
    ----------
    in_channels, num_classes : int
    width : float
        Multiplier on every channel count (1.0 = Table I).
    norm : {"batch", "instance", "group", "none"}
    stage1, stage2 : tuple of str
        Inception modules before and after the second pooling (GoogLeNet names, keys of ``GOOGLENET_SPLITS``); shorter tuples make
        a shallower network.
    """

    #: the bias added last to every class's logits (train.calibrate folds per-class offsets into it)
    OUTPUT_BIAS = "upsample.bias"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 6,
        width: float = 1.0,
        norm: str = "batch",
        stage1: tuple = PAPER_STAGE1,
        stage2: tuple = PAPER_STAGE2,
    ) -> None:
        super().__init__()
        self.min_size = 16 if norm == "instance" else 1
        c64, c192 = _scale(64, width), _scale(192, width)
        self.stem = nn.Sequential(
            ConvNormReLU(in_channels, c64, 7, norm, stride=2),
            ConvNormReLU(c64, c64, 1, norm),
            _Conv4(c64, c192, norm),
        )
        cin = c192
        mods1 = []
        for key in stage1:
            m = Inception3D(cin, GOOGLENET_SPLITS[key], width, norm)
            mods1.append(m)
            cin = m.out_channels
        self.stage1 = nn.Sequential(*mods1)
        mods2 = []
        for key in stage2:
            m = Inception3D(cin, GOOGLENET_SPLITS[key], width, norm)
            mods2.append(m)
            cin = m.out_channels
        self.stage2 = nn.Sequential(*mods2)
        self.classifier = nn.Conv3d(cin, num_classes, kernel_size=1)
        self.upsample = nn.ConvTranspose3d(num_classes, num_classes, kernel_size=8, stride=8)
        _init_trilinear(self.upsample)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[-3], x.shape[-2], x.shape[-1]
        x = pad_to_multiple(x, 8, self.min_size)
        x = self.stem(x)
        x = F.max_pool3d(x, 2)
        x = self.stage1(x)
        x = F.max_pool3d(x, 2)
        x = self.stage2(x)
        x = self.upsample(self.classifier(x))
        return x[:, :, :d, :h, :w]


def _init_trilinear(layer: nn.ConvTranspose3d) -> None:
    """Start the x8 up-sampling as nearest-neighbour replication per class (identity across classes)."""
    with torch.no_grad():
        layer.weight.zero_()
        for c in range(min(layer.in_channels, layer.out_channels)):
            layer.weight[c, c] = 1.0
        if layer.bias is not None:
            layer.bias.zero_()
