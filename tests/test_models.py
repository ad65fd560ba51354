"""Models: shapes for any input size, parameter counts, presets, config round trip, TorchScript, a short fit."""

from __future__ import annotations

import pytest
import torch

import napari_ctorgans as ct
from napari_ctorgans.nn import MODEL_PRESETS, ModelConfig, build_model, count_parameters
from napari_ctorgans.nn.losses import get_loss

TINY_INCEPTION = ModelConfig(arch="inception_fcn", width=0.0625, norm="instance", num_classes=3)
TINY_UNET = ModelConfig(arch="unet3d", base_width=4, levels=3, norm="group", num_classes=3)


def test_public_names():
    assert ct.build_model is build_model
    assert ct.ModelConfig is ModelConfig
    assert set(MODEL_PRESETS) >= {"paper-inception", "paper-unet", "cpu-small"}
    assert ct.losses.iou_loss is not None


@pytest.mark.parametrize("config", [TINY_UNET, TINY_INCEPTION, "cpu-small"])
@pytest.mark.parametrize("shape", [(16, 16, 16), (19, 24, 17), (9, 13, 11), (1, 5, 3)])
def test_output_has_input_spatial_size(config, shape):
    model = build_model(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *shape))
    n_classes = model.config.num_classes
    assert out.shape == (2, n_classes, *shape)
    assert torch.isfinite(out).all()


def test_padding_does_not_leak_into_the_valid_region_for_aligned_sizes():
    # for a size that is a multiple of 2^(levels-1) no padding happens: cropping a padded result would differ
    model = build_model(TINY_UNET).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(x), model(x.clone()))
    assert model.config.size_multiple == 4


def test_paper_parameter_counts():
    # 003 reports ~19M trainable parameters for its 3D U-Net
    unet_model = build_model("paper-unet").eval()
    unet = count_parameters(unet_model)
    assert 18.5e6 < unet < 19.5e6
    inception_model = build_model("paper-inception").eval()
    inception = count_parameters(inception_model)
    assert 10e6 < inception < 20e6
    # the paper-sized models run too (tiny input, odd size)
    with torch.no_grad():
        for model in (unet_model, inception_model):
            assert model(torch.randn(1, 1, 12, 16, 9)).shape == (1, 6, 12, 16, 9)
    small = count_parameters(build_model("cpu-small"))
    assert small < 1e6


def test_config_round_trip_and_validation():
    cfg = MODEL_PRESETS["paper-inception"]
    again = ModelConfig.from_dict(cfg.to_dict())
    assert again == cfg
    model = build_model(cfg.to_dict() | {"width": 0.0625})
    assert model.config.width == 0.0625
    with pytest.raises(ValueError, match="arch must be one of"):
        ModelConfig(arch="resnet")
    with pytest.raises(ValueError, match="norm must be one of"):
        ModelConfig(norm="layer")
    with pytest.raises(ValueError, match="levels must be an integer"):
        ModelConfig(levels=0)
    with pytest.raises(ValueError, match="unknown ModelConfig fields"):
        ModelConfig.from_dict({"arch": "unet3d", "depth": 3})
    with pytest.raises(ValueError, match="unknown model preset"):
        build_model("paper-resnet")
    with pytest.raises(TypeError, match="config must be a ModelConfig"):
        build_model(3)
    with pytest.raises(ValueError, match="inception_stage1 must be"):
        ModelConfig(arch="inception_fcn", inception_stage1=("9z",))


def test_torch_export_with_dynamic_sizes():
    from torch.export import Dim, export

    model = build_model(TINY_UNET).eval()
    k = [Dim(f"k{i}", min=2, max=64) for i in range(3)]
    # crops that are multiples of config.size_multiple export with dynamic sizes (no padding branch)
    dyn = {"x": {2: 4 * k[0], 3: 4 * k[1], 4: 4 * k[2]}}
    program = export(model, (torch.randn(1, 1, 16, 16, 16),), dynamic_shapes=dyn)
    x = torch.randn(1, 1, 24, 12, 20)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("config", [TINY_UNET, TINY_INCEPTION, "cpu-small"])
def test_torchscript_and_state_dict(config, tmp_path):
    model = build_model(config).eval()
    scripted = torch.jit.script(model)
    path = tmp_path / "model.pt"
    scripted.save(str(path))
    loaded = torch.jit.load(str(path))
    for shape in [(16, 16, 16), (11, 18, 9)]:
        x = torch.randn(1, 1, *shape)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), model(x))
    # weights load into a freshly built model from the stored config
    fresh = build_model(ModelConfig.from_dict(model.config.to_dict())).eval()
    fresh.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 12, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x))


@pytest.mark.slow
def test_cpu_small_learns_the_phantom(phantom):
    """A few dozen Adam steps of the CPU preset on a phantom crop clearly lower the IOU loss."""
    torch.manual_seed(0)
    volume, labels = phantom
    image = torch.from_numpy(((volume.array.astype("float32") + 1000) / 1400).clip(0, 1))
    lab = torch.from_numpy(labels.astype("int64"))
    z0, y0, x0 = (max(0, (s - 24) // 2) for s in image.shape)
    x = image[z0 : z0 + 24, y0 : y0 + 24, x0 : x0 + 24][None, None]
    t = lab[z0 : z0 + 24, y0 : y0 + 24, x0 : x0 + 24][None]
    assert len(torch.unique(t)) >= 3
    model = build_model("cpu-small")
    loss_fn = get_loss("dice")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert min(history[-5:]) < history[0] - 0.1
