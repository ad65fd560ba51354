"""The fast prediction path: labels agree with the previous default on real CT, body box, contract, refusals."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from napari_ctorgans.contract import ModelContract, read_contract
from napari_ctorgans.infer.plan import body_box
from napari_ctorgans.infer.predict import Predictor
from napari_ctorgans.resampling import Grid

SRC = Path(ct.__file__).parent


class HUBands(torch.nn.Module):
    """A deterministic 'network': organs by HU bands (lungs -923 to -400 HU, liver 20 to 120 HU, bone above 250 HU).

    Voxel by voxel (a 1x1x1 convolution), so the comparison with the previous default measures the pipeline
    (body box, resampling in slabs, one pass, post-processing, back to the scan grid) and not the tile seams that
    a network with a wider receptive field shows at the scan's faces under the old 32^3 tiles.
    """

    config = None

    def __init__(self, window=(-950.0, 400.0)):
        super().__init__()
        self.smooth = torch.nn.Conv3d(1, 1, 1, bias=False)
        torch.nn.init.constant_(self.smooth.weight, 1.0)
        self.t = [(hu - window[0]) / (window[1] - window[0]) for hu in (-923.0, -400.0, 20.0, 120.0, 250.0)]

    def forward(self, x):
        s = self.smooth(x)[:, 0]
        logits = torch.zeros((x.shape[0], 6, *x.shape[2:]))
        logits[:, 0] = 0.5
        logits[:, 3] = 50.0 * torch.minimum(s - self.t[0], self.t[1] - s) + 0.5
        logits[:, 1] = 50.0 * torch.minimum(s - self.t[2], self.t[3] - s) + 0.5
        logits[:, 5] = 50.0 * (s - self.t[4]) + 0.5
        return logits


@pytest.fixture(scope="module")
def bands():
    return Predictor(HUBands(), spacing=3.0, window=(-950.0, 400.0), roi_size=(32, 32, 32))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("fast_model")
    cfg = ct.TrainConfig(iterations=2, crop_size=(24, 24, 24), spacing=6.0, batch_size=1, augment_at=-1,
                         bn_recalibration=2, output_dir=str(out), checkpoint_every=1)
    list(ct.train(cfg, [ct.make_phantom(seed=0, spacing=6.0)]))
    return out / "last.pt"


def _dice_per_organ(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    out = {}
    for v in sorted((set(np.unique(a)) | set(np.unique(b))) - {0}):
        x, y = a == v, b == v
        out[int(v)] = 2.0 * np.count_nonzero(x & y) / max(np.count_nonzero(x) + np.count_nonzero(y), 1)
    return out


class Everywhere(torch.nn.Module):
    """Class 1 in every voxel it sees: ``ct.predict`` with it shows the body box on the scan's grid."""

    config = None

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), torch.ones_like(x)] + [torch.zeros_like(x)] * 4, 1)


@pytest.mark.parametrize("fixture, post", [("abdomen_3mm", True), ("abdomen_dicom", False)])
def test_fast_path_agrees_with_the_previous_default_on_real_ct(request, bands, fixture, post):
    """Inside the body box the labels agree; outside it the old path labelled the couch (bone band) and its foam
    (lung band), which the body box removes (so the DICOM series, which shows the couch, is compared before the
    largest-component step, whose choice those outside pieces change)."""
    vol = request.getfixturevalue(fixture)
    old = ct.predict(vol, bands, roi_size=bands.roi_size, overlap=0.5, mode="gaussian", crop_to_body=False,
                     postprocess_labels=post, plausible=False)  # the network paths, without ct.plausible
    new = ct.predict(vol, bands, postprocess_labels=post, plausible=False)
    assert new.shape == vol.shape and new.dtype == np.uint8
    box = ct.predict(vol, Predictor(Everywhere(), spacing=3.0), postprocess_labels=False, plausible=False) == 1
    assert 0.1 < box.mean() < 1.0 or fixture == "abdomen_3mm"
    assert not new[~box].any()
    counts = {int(v): int(np.count_nonzero(old[box] == v)) for v in np.unique(old[box]) if v}
    assert {1, 3, 5} <= set(counts) and min(counts.values()) >= 200, counts  # non-trivial organs
    dice = _dice_per_organ(old[box], new[box])
    assert all(d >= 0.99 for d in dice.values()), dice


def test_with_a_real_network_the_fast_path_is_no_worse_than_the_previous_default(abdomen_3mm, abdomen_3mm_labels):
    """The built-in starter model (a real network, 48^3 training crop) on the real abdomen: whole-box inference
    labels the five organs at least as well as the old 48^3 tiles (overlap 0.5, Gaussian, whole scan) on average,
    against the reference, and the liver and bladder within 0.02 each: the organs it finds best of those the
    starter takes from the network (measured: liver 0.820 / 0.822, bladder 0.673 / 0.662, kidneys 0.259 / 0.223,
    and the network's own bone, which the starter takes from the labellers, 0.380 / 0.404). Between themselves the
    two differ where the tiles cut the network's context: docs/benchmarks.md. The network alone on both sides."""
    ref = np.asarray(abdomen_3mm_labels.array)
    new = ct.predict(abdomen_3mm, labelers=None)
    old = ct.predict(abdomen_3mm, roi_size=(48, 48, 48), overlap=0.5, mode="gaussian", crop_to_body=False,
                     labelers=None)
    scores = {organ: tuple(_dice_per_organ(p == organ, ref == organ).get(1, 0.0) for p in (new, old))
              for organ in range(1, 6)}
    for organ in (1, 2):  # liver, bladder
        d_new, d_old = scores[organ]
        assert d_old > 0.3 and d_new >= d_old - 0.02, (organ, d_new, d_old)
    assert np.mean([s[0] for s in scores.values()]) >= np.mean([s[1] for s in scores.values()]), scores


def test_a_scan_padded_with_air_gives_the_same_labels(bands, abdomen_3mm):
    vol = abdomen_3mm
    pad = ((0, 0), (30, 10), (25, 35))
    arr = np.pad(np.asarray(vol.array), pad, constant_values=-1024)
    origin = np.asarray(vol.origin) - vol.direction @ (np.array([p[0] for p in pad]) * np.asarray(vol.spacing))
    padded = ct.Volume(arr, spacing=vol.spacing, origin=tuple(origin), direction=vol.direction)
    src = Grid.of(padded)
    lo, hi = body_box(arr, src, src)
    margin = 5  # the box keeps 12 mm (4 voxels) around the body, which reaches the original scan's edges
    assert lo[1] >= 30 - margin and lo[2] >= 25 - margin
    assert (hi[1] - lo[1]) * (hi[2] - lo[2]) < 0.8 * arr.shape[1] * arr.shape[2]  # the padding is left out
    a = ct.predict(vol, bands, plausible=False)  # HU bands: "lungs" in the bowel gas, which ct.plausible removes
    b = ct.predict(padded, bands, plausible=False)
    inner = b[:, 30:30 + vol.shape[1], 25:25 + vol.shape[2]]
    assert np.count_nonzero(b) == np.count_nonzero(inner)  # nothing in the padding
    dice = _dice_per_organ(a, inner)
    assert set(dice) >= {1, 3, 5} and all(d >= 0.99 for d in dice.values()), dice


def test_contract_is_stored_once_and_read_by_one_reader(tiny_checkpoint):
    from napari_ctorgans.train.checkpoint import read_checkpoint
    from napari_ctorgans.train.loop import resolve_window

    data = read_checkpoint(tiny_checkpoint)
    assert "contract" in data and "window" not in data and "spacing" not in data and "organs" not in data
    contract = read_contract(data)
    assert contract == ModelContract(spacing=6.0, window=resolve_window(ct.TrainConfig()), size_multiple=8,
                                     organs={0: "background", 1: "liver", 2: "bladder", 3: "lungs", 4: "kidneys",
                                             5: "bone"})
    assert ModelContract.from_dict(contract.to_dict()) == contract
    assert Predictor.from_checkpoint(tiny_checkpoint).contract == contract
    # a checkpoint written before the contract existed: spacing and window at the top level and in train_config
    legacy = {k: v for k, v in data.items() if k != "contract"}
    legacy.update(window=list(contract.window), spacing=6.0, organs={v: {"name": n} for v, n in contract.organs.items()})
    assert read_contract(legacy) == contract
    with pytest.raises(ValueError, match=r"ckpt\.pt: the stored model contract is not valid .*window"):
        read_contract({**data, "path": "ckpt.pt", "contract": {**contract.to_dict(), "window": [400, -950]}})
    # prediction does not import training code
    for path in (SRC / "infer").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith(("train", "napari_ctorgans.train")), (path, node.module)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_a_gpu_is_a_clear_error(phantom):
    vol, _ = phantom
    with pytest.raises(ValueError, match=r"device='cuda' was asked for, but no CUDA GPU is available here; "
                                         r"pass device='cpu' or leave device unset"):
        ct.predict(vol, ct.build_model("cpu-small"), device="cuda")
    assert ct.predict(ct.Volume(np.full((8, 8, 8), -1000, np.int16), spacing=3.0), ct.build_model("cpu-small"),
                      device=None).shape == (8, 8, 8)  # unset: the CPU


@pytest.mark.parametrize("classes, match", [
    (10, r"predicts 10 classes \(values 0-9\), but its organ table has only \[0 background, .* 6 brain\]; "
         r"values \[7, 8, 9\]"),
    (300, r"predicts 300 classes, but label maps hold values 0-255"),
])
def test_a_model_whose_classes_do_not_fit_the_organ_table_is_refused(classes, match):
    model = ct.build_model(ct.ModelConfig(base_width=2, levels=2, num_classes=classes))
    vol = ct.Volume(np.full((12, 12, 12), -1000, np.int16), spacing=3.0)
    with pytest.raises(ValueError, match=match):
        ct.predict(vol, model)


@pytest.mark.parametrize("options, match", [
    (dict(overlap=0.999, roi_size=32), r"would run [\d,]+ tile passes, computing the volume [\d,]+ times over"),
    (dict(roi_size=1), r"would run [\d,]+ tile passes"),
])
def test_runaway_tiles_are_refused_up_front_with_the_numbers_and_a_fix(options, match):
    vol = ct.Volume(np.zeros((90, 120, 120), np.int16), spacing=3.0)
    with pytest.raises(ValueError, match=match + r".*leave roi_size and overlap unset"):
        ct.predict(vol, ct.build_model("cpu-small"), crop_to_body=False, **options)


def test_openvino_engine_gives_the_labels_of_torch(abdomen_3mm):
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    model = ct.build_model("cpu-small").eval()
    pred = Predictor(model, spacing=3.0, window=(-950.0, 400.0))
    a = ct.predict(abdomen_3mm, pred, postprocess_labels=False)
    b = ct.predict(abdomen_3mm, pred, postprocess_labels=False, engine="openvino")
    assert a.shape == b.shape and np.mean(a == b) >= 0.995
    with pytest.raises(ValueError, match="engine='openvino' runs one pass .* use engine='torch'"):
        ct.predict(abdomen_3mm, pred, engine="openvino", tta=True)

