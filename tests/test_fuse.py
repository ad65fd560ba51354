"""Fused CPU inference (infer/fuse.py): the same outputs as the plain model, the model itself never changed."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
import napari_ctorgans.infer  # noqa: F401
from napari_ctorgans.infer.engine import prepare_model
from napari_ctorgans.infer.fuse import _FusedConvReLU, _FusedUp, fuse_for_cpu
from napari_ctorgans.nn.config import ModelConfig, build_model
from napari_ctorgans.nn.unet3d import UNet3D

CL = torch.channels_last_3d


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights and batch-norm statistics far from the defaults, so folding them is really exercised."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm3d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=gen) * 0.5)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) * 2 + 0.1)
                mod.weight.copy_(torch.randn(mod.num_features, generator=gen))
                mod.bias.copy_(torch.randn(mod.num_features, generator=gen) * 0.2)
    return model.eval()


@pytest.mark.parametrize("shape", [(20, 27, 33), (8, 8, 8), (41, 16, 24)])
def test_fused_unet_gives_the_plain_models_logits_and_labels(shape):
    model = _trained_like(UNet3D(base_width=8, levels=4)).to(memory_format=CL)
    before = copy.deepcopy(model.state_dict())
    fused = fuse_for_cpu(model)
    assert fused is not model
    assert sum(isinstance(m, _FusedUp) for m in fused.modules()) == 3
    assert sum(isinstance(m, _FusedConvReLU) for m in fused.modules()) == 8 + 3  # encoder 8, each decoder's conv2
    x = torch.rand((2, 1, *shape), generator=torch.Generator().manual_seed(2)).contiguous(memory_format=CL)
    with torch.inference_mode():
        ref, out = model(x), fused(x)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert (out.argmax(1) == ref.argmax(1)).float().mean() > 0.9999
    # the user's model is untouched: same modules, same weights
    assert not any(isinstance(m, (_FusedUp, _FusedConvReLU)) for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_models_that_cannot_be_fused_come_back_unchanged():
    inst = UNet3D(base_width=4, levels=3, norm="instance").eval()
    assert fuse_for_cpu(inst) is inst  # instance norm depends on the input: nothing to fold
    training = UNet3D(base_width=4, levels=3)
    assert fuse_for_cpu(training) is training  # batch statistics of a training model are not fixed
    assert training.training
    assert prepare_model(training, torch.device("cpu"), fuse=False) is training


def test_inception_fcn_blocks_are_fused_with_the_same_logits():
    model = _trained_like(build_model(ModelConfig(arch="inception_fcn", width=0.125, norm="batch")))
    model = model.to(memory_format=CL)
    fused = fuse_for_cpu(model, 8)
    assert any(isinstance(m, _FusedConvReLU) for m in fused.modules())
    x = torch.rand((1, 1, 32, 40, 24), generator=torch.Generator().manual_seed(3)).contiguous(memory_format=CL)
    with torch.inference_mode():
        ref, out = model(x), fused(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))


def test_predict_with_fusion_gives_the_labels_of_the_plain_path(monkeypatch):
    vol, _ = ct.make_phantom(seed=100)
    model = _trained_like(UNet3D(base_width=8, levels=4))
    fused_labels = ct.predict(vol, model, threads=2)
    P = sys.modules["napari_ctorgans.infer.predict"]
    plain = P.prepare_model
    monkeypatch.setattr(P, "prepare_model", lambda m, d, **_: plain(m, d, fuse=False))
    plain_labels = ct.predict(vol, model, threads=2)
    assert np.mean(fused_labels == plain_labels) > 0.9999
    assert not any(isinstance(m, (_FusedUp, _FusedConvReLU)) for m in model.modules())


def test_decoders_whose_upsampling_differs_are_composed_only_where_the_geometry_fits():
    """An upsampling without bias is composed (the face correction is then zero); a 4 x 4 x 4 one is not (its
    block runs unfused); the logits equal the model's either way."""
    model = _trained_like(UNet3D(base_width=8, levels=4))
    c0, c1 = model.up[0].up.in_channels, model.up[1].up.in_channels
    model.up[0].up = torch.nn.ConvTranspose3d(c0, c0, kernel_size=2, stride=2, bias=False)
    model.up[1].up = torch.nn.ConvTranspose3d(c1, c1, kernel_size=4, stride=2, padding=1)
    model = model.eval().to(memory_format=CL)
    fused = fuse_for_cpu(model)
    assert isinstance(fused.up[0], _FusedUp) and not isinstance(fused.up[1], _FusedUp)
    assert isinstance(fused.up[2], _FusedUp)
    x = torch.rand((1, 1, 19, 24, 17), generator=torch.Generator().manual_seed(4)).contiguous(memory_format=CL)
    with torch.inference_mode():
        ref, out = model(x), fused(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
