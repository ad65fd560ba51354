"""3D U-Net (Çiçek et al. 2016, as used for multi-organ CT in 003).

Analysis path: at level ``i`` two 3x3x3 convolutions (each + norm + ReLU) to ``base*2^i`` then ``base*2^(i+1)``
channels (the 3D U-Net's doubling inside a level; ``double_in_level=False`` keeps both at ``base*2^i``), then 2x2x2
max-pooling. Synthesis path: 2x2x2 transposed convolution (keeping the channel count), concatenation with the skip of
the same level, two 3x3x3 convolutions; a final 1x1x1 convolution gives the class logits. With ``base=32`` and 4
levels it has about 19M parameters, the 003 figure.

Any input size works: the input is zero-padded to a multiple of ``2^(levels-1)`` (and, with instance norm, to at
least twice that, so the coarsest level has more than one voxel) and the output is cropped back.
"""

from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn


def make_norm(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """A normalisation layer by name: "batch", "instance", "group" or "none"."""
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    if kind == "group":
        g = min(groups, channels)
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'batch', 'instance', 'group' or 'none', got {kind!r}")


class ConvNormReLU(nn.Sequential):
    """Convolution (with bias) + normalisation + ReLU, 'same' padding for odd kernels."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, norm: str = "batch", stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=True),
            make_norm(norm, cout),
            nn.ReLU(inplace=True),
        )


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, norm: str) -> None:
        super().__init__()
        self.up = nn.ConvTranspose3d(cin, cin, kernel_size=2, stride=2)
        self.conv1 = ConvNormReLU(cin + cskip, cout, 3, norm)
        self.conv2 = ConvNormReLU(cout, cout, 3, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> torch.Tensor:
    """Zero-pad the last three axes at their end to a multiple of ``multiple`` and at least ``min_size``."""
    d, h, w = x.shape[-3], x.shape[-2], x.shape[-1]
    pd = max((multiple - d % multiple) % multiple, min_size - d)
    ph = max((multiple - h % multiple) % multiple, min_size - h)
    pw = max((multiple - w % multiple) % multiple, min_size - w)
    if pd == 0 and ph == 0 and pw == 0:
        return x
    return F.pad(x, [0, pw, 0, ph, 0, pd])


class UNet3D(nn.Module):
    """3D U-Net returning logits ``(N, classes, D, H, W)`` for input ``(N, in_channels, D, H, W)``.

    Parameters
    ----------
    in_channels, num_classes : int
    base_width : int
        Channels of the first convolution (32 in the 3D U-Net paper).
    levels : int
        Resolution levels including the bottom one (4 in 003).
    norm : {"batch", "instance", "group", "none"}
    double_in_level : bool
        The 3D U-Net's channel doubling by the second convolution of each level.
    """

    #: the bias added last to every class's logits (train.calibrate folds per-class offsets into it)
    OUTPUT_BIAS = "head.bias"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 6,
        base_width: int = 32,
        levels: int = 4,
        norm: str = "batch",
        double_in_level: bool = True,
    ) -> None:
        super().__init__()
        self.multiple = 2 ** (levels - 1)
        # instance norm needs more than one voxel at the coarsest level
        self.min_size = 2 * self.multiple if norm == "instance" else 1
        widths = []
        for i in range(levels):
            w1 = base_width * 2**i
            w2 = base_width * 2 ** (i + 1) if double_in_level else w1
            widths.append((w1, w2))
        self.down = nn.ModuleList()
        cin = in_channels
        for w1, w2 in widths:
            self.down.append(nn.Sequential(ConvNormReLU(cin, w1, 3, norm), ConvNormReLU(w1, w2, 3, norm)))
            cin = w2
        self.up = nn.ModuleList()
        for i in range(levels - 2, -1, -1):
            cskip = widths[i][1]
            self.up.append(_Up(cin, cskip, cskip, norm))
            cin = cskip
        self.head = nn.Conv3d(cin, num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[-3], x.shape[-2], x.shape[-1]
        x = pad_to_multiple(x, self.multiple, self.min_size)
        skips: List[torch.Tensor] = []
        n_down = len(self.down)
        for i, block in enumerate(self.down):
            x = block(x)
            if i < n_down - 1:
                skips.append(x)
                x = F.max_pool3d(x, 2)
        for i, block in enumerate(self.up):
            x = block(x, skips[n_down - 2 - i])
        x = self.head(x)
        return x[:, :, :d, :h, :w]
