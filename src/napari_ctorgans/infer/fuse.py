"""Fused CPU inference: batch norm folded into each convolution, the ReLU and the skip concatenation fused into it.

In eval mode a ``Conv3d -> BatchNorm3d -> ReLU`` block is one affine map and a clamp. The plain torch path runs it
as three passes over the activations (and the U-Net's decoder adds a fourth, ``torch.cat`` of the upsampled and the
skip features). On a CPU the small networks are limited by those memory passes, not by arithmetic. This module
builds an inference copy of a model in which each such block is a single oneDNN convolution with the ReLU as a
post-op, and each decoder's first convolution over ``cat([up, skip])`` is split into two convolutions whose sum
is fused the same way (no concatenated tensor). The part over the upsampled features is linear in the decoder's
input, so the upsampling and that convolution run as one transposed convolution with the composed kernel (28 %
fewer multiply-adds for the cpu-small U-Net). Measured in docs/benchmarks.md ("Prediction end to end").

The copy is checked against the original model on a small input before it is used; where the oneDNN operator is
missing or disagrees (another torch build), :func:`fuse_for_cpu` returns the original model.
"""

from __future__ import annotations

import copy
import itertools
import logging

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..nn.unet3d import ConvNormReLU, _Up

__all__ = ["fuse_for_cpu"]

log = logging.getLogger(__name__)
_CL = torch.channels_last_3d


def _conv_op(x, w, b, conv: nn.Conv3d, attr: str, other: torch.Tensor | None = None):
    """oneDNN convolution of ``x`` with ``conv``'s geometry, then ``+ other`` when given, then ``attr`` (relu/none)."""
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    if other is None:
        return torch.ops.mkldnn._convolution_pointwise(x, w, b, *geometry, attr, [], "")
    return torch.ops.mkldnn._convolution_pointwise(x, other, w, b, *geometry, "add", None, attr, [], "")


def _folded(block: ConvNormReLU) -> nn.Conv3d | None:
    """The block's convolution with its batch norm folded in, or None when its norm cannot be folded."""
    conv, norm = block[0], block[1]
    if not isinstance(conv, nn.Conv3d) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    if isinstance(norm, nn.Identity):
        return copy.deepcopy(conv)
    if isinstance(norm, nn.BatchNorm3d) and norm.track_running_stats and norm.running_mean is not None:
        return fuse_conv_bn_eval(conv.eval(), norm.eval())
    return None  # instance or group norm depend on the input


class _FusedConvReLU(nn.Module):
    """relu(conv(x)) with batch norm folded into the weights: one oneDNN call."""

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("w", conv.weight.detach().contiguous(memory_format=_CL))
        self.register_buffer("b", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_op(x, self.w, self.b, self.conv, "relu")


def _composed_weight(wt: torch.Tensor, wa: torch.Tensor) -> torch.Tensor:
    """The kernel of ``conv3x3(up2x2(x))`` as one transposed convolution (kernel 4, stride 2, padding 1).

    ``wt`` (Cin, Cmid, 2, 2, 2) is the upsampling's weight, ``wa`` (Cout, Cmid, 3, 3, 3) the convolution's weight on
    the upsampled channels. Output voxel ``p = 2i + a`` reads the upsampled voxel ``p + d`` (d in -1..1), which came
    from input voxel ``i`` through tap ``a``; the composed tap is ``k = a - d + 1`` on each axis.
    """
    s = torch.zeros((2, 3, 4), dtype=wt.dtype)  # s[a, d, k] = 1 where k = a - d + 2 (d: the tap index, offset + 1)
    for a, d in itertools.product(range(2), range(3)):
        s[a, d, a - d + 2] = 1
    pairs = torch.einsum("imabc,omdef->ioabcdef", wt, wa)
    return torch.einsum("ioabcdef,adk,bel,cfn->iokln", pairs, s, s, s)


def _border_index(n: int) -> torch.Tensor:
    """Where each of ``n`` positions reads a 3-wide border table: first, interior (repeated), last."""
    return torch.tensor([0] + [1] * (n - 2) + [2]) if n >= 3 else torch.arange(n)


def _add_border_bias(u: torch.Tensor, e: torch.Tensor) -> None:
    """Add, in place, a bias ``e`` (C, <=3, <=3, <=3) that is zero in the interior to the faces of ``u``."""
    d, h, w = u.shape[2:]
    iz, iy, ix = _border_index(d), _border_index(h), _border_index(w)
    for z in sorted({0, d - 1}):
        u[:, :, z] += e[:, iz[z]][:, iy][:, :, ix]
    if d > 2:
        for y in sorted({0, h - 1}):
            u[:, :, 1:-1, y] += e[:, 1, iy[y]][:, ix].unsqueeze(1)
        if h > 2:
            for x in sorted({0, w - 1}):
                u[:, :, 1:-1, 1:-1, x] += e[:, 1, 1, ix[x]].view(-1, 1, 1)


class _FusedUp(nn.Module):
    """The decoder block: relu(conv_a(up(x)) + conv_b(skip)) then the second block, without ``torch.cat``.

    ``conv_a(up(x))`` is linear in ``x``, so it runs as one transposed convolution with the composed kernel
    (:func:`_composed_weight`): 8 x Cin x Cout multiply-adds per output voxel instead of Cin x Cmid + 27 x Cmid x
    Cout, and no upsampled tensor. The upsampling's bias, seen through the 3 x 3 convolution, is a constant inside
    the volume (folded into ``conv_b``'s bias) and differs on the faces, where the convolution's zero padding hides
    some of it (added there).
    """

    def __init__(self, up: _Up, conv1: nn.Conv3d, conv2: nn.Module) -> None:
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        n_up = up.up.out_channels
        w = conv1.weight.detach()
        wt = up.up.weight.detach()
        bt = up.up.bias.detach() if up.up.bias is not None else torch.zeros(n_up)
        self.register_buffer("wc", _composed_weight(wt, w[:, :n_up]).contiguous(memory_format=_CL))
        self.register_buffer("wb", w[:, n_up:].contiguous(memory_format=_CL))
        taps = torch.einsum("omzyx,m->ozyx", w[:, :n_up], bt)  # the bias after each 3x3 tap
        self.register_buffer("taps", taps.unsqueeze(1).contiguous())
        self.register_buffer("b", conv1.bias.detach() + taps.sum((1, 2, 3)))

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.ops.mkldnn._convolution_transpose_pointwise(x, self.wc, None, [1, 1, 1], [0, 0, 0], [2, 2, 2],
                                                             [1, 1, 1], 1, "none", [], "")
        small = [min(2 * n, 3) for n in x.shape[2:]]
        table = torch.nn.functional.conv3d(torch.ones((1, 1, *small), dtype=u.dtype), self.taps, padding=1)[0]
        _add_border_bias(u, table - self.taps.sum((1, 2, 3, 4)).view(-1, 1, 1, 1))
        return u

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv2(_conv_op(skip, self.wb, self.b, self.conv1, "relu", other=self._up(x)))


def _composable(up: nn.Module, conv: nn.Conv3d) -> bool:
    """The geometry :func:`_composed_weight` assumes: a 2 x 2 x 2 stride-2 upsampling, then a 3 x 3 x 3 'same'
    convolution."""
    return (isinstance(up, nn.ConvTranspose3d) and up.kernel_size == (2, 2, 2) and up.stride == (2, 2, 2)
            and up.padding == (0, 0, 0) and up.output_padding == (0, 0, 0) and up.dilation == (1, 1, 1)
            and up.groups == 1 and conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1)
            and conv.stride == (1, 1, 1) and conv.dilation == (1, 1, 1) and conv.groups == 1)


def _fuse_block(block: nn.Module) -> nn.Module | None:
    conv = _folded(block) if isinstance(block, ConvNormReLU) and len(block) == 3 else None
    return _FusedConvReLU(conv) if conv is not None else None


def _replace(module: nn.Module) -> int:
    """Swap fusable children of ``module`` in place (depth first); the number swapped."""
    n = 0
    for name, child in list(module.named_children()):
        new = None
        if isinstance(child, _Up):
            conv1, conv2 = _folded(child.conv1), _fuse_block(child.conv2)
            if conv1 is not None and conv2 is not None and _composable(child.up, conv1):
                new = _FusedUp(child, conv1, conv2)
        else:
            new = _fuse_block(child)
        if new is not None:
            setattr(module, name, new)
            n += 1
        else:
            n += _replace(child)
    return n


def _agrees(fused: nn.Module, model: nn.Module, multiple: int) -> bool:
    # one size multiple plus a few voxels: every block runs, the deepest on 1-2 voxels (the faces' code), and the
    # plain model's convolutions stay cheap (a 19 x 16 x 21 input cost 50 ms of every prediction)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 1, multiple + 1, multiple, multiple + 3), generator=gen).contiguous(memory_format=_CL)
    with torch.inference_mode():
        ref, out = model(x), fused(x)
    return ref.shape == out.shape and bool(torch.allclose(out, ref, rtol=1e-3, atol=1e-3 * float(ref.abs().max())))


def fuse_for_cpu(model: nn.Module, multiple: int = 8) -> nn.Module:
    """An inference copy of ``model`` (eval mode, CPU, ``channels_last_3d``) with its blocks fused, or ``model``.

    ``model`` itself is never changed. Models without fusable blocks (instance or group norm, other layers), a
    torch build without the oneDNN operator, or a copy whose output differs from the model's on a small input give
    ``model`` back unchanged.
    """
    if not torch.backends.mkldnn.is_available() or model.training:
        return model
    try:
        fused = copy.deepcopy(model)
        if _replace(fused) == 0:
            return model
        fused = fused.to(memory_format=_CL).eval()
        if _agrees(fused, model, multiple):
            return fused
        log.warning("fused CPU inference disagrees with the model on this torch build; using the plain path")
    except (RuntimeError, AttributeError, NotImplementedError) as exc:
        log.info("fused CPU inference unavailable (%s); using the plain path", exc)
    return model
