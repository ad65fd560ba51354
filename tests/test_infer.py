"""Sliding-window inference (against MONAI), post-processing (against scipy.ndimage) and whole-volume prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import napari_ctorgans as ct
from napari_ctorgans.infer import SlidingWindowInferer, importance_map, sliding_window
from napari_ctorgans.infer.predict import Predictor, postprocess

monai_inferers = pytest.importorskip("monai.inferers")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = ct.build_model("cpu-small").eval()
    # non-trivial weights so that tiles differ: perturb the final layer
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net


def monai_probs(x, net, roi, overlap, mode, sw_batch=1):
    with torch.inference_mode():
        return monai_inferers.sliding_window_inference(
            x, roi, sw_batch, lambda t: torch.softmax(net(t), 1), overlap=overlap, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "gaussian"])
@pytest.mark.parametrize(
    "shape, roi, overlap, batch",
    [
        ((1, 1, 40, 37, 29), (16, 16, 16), 0.25, 1),
        ((2, 1, 33, 20, 26), (16, 24, 16), 0.5, 3),  # a tile larger than one axis: padded and cropped back
        ((1, 1, 24, 24, 24), (24, 24, 24), 0.25, 2),  # exactly one tile
    ],
)
def test_sliding_window_matches_monai(model, mode, shape, roi, overlap, batch):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    ours = sliding_window(x, model, roi_size=roi, overlap=overlap, mode=mode, batch_size=batch)
    ref = monai_probs(x, model, roi, overlap, mode, batch)
    assert ours.shape == ref.shape == (shape[0], 6, *shape[2:])
    assert float((ours - ref).abs().max()) < 1e-5
    np.testing.assert_allclose(ours.sum(1).numpy(), 1.0, atol=1e-5)


def test_numpy_input_inferer_and_progress(model):
    vol = np.random.default_rng(0).random((20, 30, 26), dtype=np.float32)
    calls = []
    probs = sliding_window(vol, model, roi_size=16, overlap=0.25, progress=lambda d, t: calls.append((d, t)))
    ref = monai_probs(torch.from_numpy(vol)[None, None], model, (16, 16, 16), 0.25, "constant")
    assert float((probs - ref).abs().max()) < 1e-5
    assert calls[-1][0] == calls[-1][1] == len(calls) and calls[-1][1] == 2 * 3 * 2
    inferer = SlidingWindowInferer(roi_size=16, overlap=0.25, mode="gaussian", batch_size=4)
    assert torch.allclose(inferer(vol, model), sliding_window(vol, model, roi_size=16, mode="gaussian"), atol=1e-6)


def test_mirroring_tta_is_the_mean_over_flips(model):
    x = torch.rand((1, 1, 20, 18, 22), generator=torch.Generator().manual_seed(2))
    got = sliding_window(x, model, roi_size=16, tta=(0, 2))
    manual = torch.zeros_like(got)
    for dims in ([], [2], [4], [2, 4]):
        xi = torch.flip(x, dims) if dims else x
        p = sliding_window(xi, model, roi_size=16)
        manual += torch.flip(p, dims) if dims else p
    assert float((got - manual / 4).abs().max()) < 1e-5
    assert float((got - sliding_window(x, model, roi_size=16)).abs().max()) > 1e-4  # flips do change the result


def test_importance_map_is_cached_and_free_of_zeros():
    from monai.data.utils import compute_importance_map

    w = importance_map((16, 24, 8), mode="gaussian")
    assert float(w.min()) > 0
    ref = compute_importance_map((16, 24, 8), mode="gaussian", sigma_scale=0.125)
    assert torch.allclose(w, ref, atol=1e-7)
    from napari_ctorgans.infer.sliding import _importance_map_cpu

    assert _importance_map_cpu((16, 24, 8), "gaussian", 0.125) is _importance_map_cpu((16, 24, 8), "gaussian", 0.125)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(roi_size=(16, 16)), ValueError, "roi_size must be 3"),
        (dict(roi_size="big"), TypeError, "roi_size"),
        (dict(roi_size=16, overlap=1.0), ValueError, "overlap must be in"),
        (dict(roi_size=16, mode="median"), ValueError, "mode must be one of"),
        (dict(roi_size=16, batch_size=0), ValueError, "batch_size"),
        (dict(roi_size=16, tta=(3,)), ValueError, "tta"),
    ],
)
def test_sliding_window_validation(model, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sliding_window(np.zeros((8, 8, 8), np.float32), model, **kwargs)


def test_sliding_window_rejects_bad_images(model):
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        sliding_window(np.zeros((8, 8), np.float32), model, roi_size=8)
    with pytest.raises(ValueError, match=r"\(N, C, D, H, W\)"):
        sliding_window(torch.zeros(1, 8, 8, 8), model, roi_size=8)
    with pytest.raises(TypeError, match="torch tensor"):
        sliding_window([[[0.0]]], model, roi_size=8)


# ---------------------------------------------------------------------------------------------- post-processing
def test_postprocess_keeps_largest_components_and_fills_holes():
    lab = np.zeros((30, 40, 40), np.uint8)
    lab[2:12, 2:12, 2:12] = 1  # liver: big piece ...
    lab[20:23, 20:23, 20:23] = 1  # ... and a stray piece
    lab[5, 5, 5] = 0  # a hole inside the liver
    for z0, x0, size in ((2, 14, 8), (2, 26, 6), (20, 34, 3)):  # lungs: two big pieces, one small
        lab[z0:z0 + size, 15:15 + size, x0:x0 + size] = 3
    lab[25:28, 2:5, 2:5] = 5  # bone pieces are all kept
    lab[25:28, 30:33, 30:33] = 5
    out = postprocess(lab)
    liver_ref = ndimage.label(lab == 1)[0]
    assert (out == 1).sum() == (liver_ref == 1).sum() + 1  # the stray piece is gone, the hole filled
    assert out[5, 5, 5] == 1 and not out[20:23, 20:23, 20:23].any()
    comp, n = ndimage.label(out == 3)
    assert n == 2 and (out == 3).sum() == 8**3 + 6**3
    assert (out == 5).sum() == 2 * 27


@pytest.mark.parametrize("keep", [None, {1: 2, 3: None}])
def test_postprocess_of_predicted_uint8_maps_equals_the_per_organ_path(keep):
    """Predicted maps (uint8) take every organ's box in one pass; other label types take one pass per organ: the
    same labels on random maps where organs touch, enclose each other and hold many pieces."""
    rng = np.random.default_rng(3)
    noise = ndimage.gaussian_filter(rng.random((40, 50, 60)), 2)
    lab = np.digitize(noise, np.quantile(noise, [0.4, 0.5, 0.6, 0.7, 0.8, 0.9])).astype(np.uint8)
    lab[lab == 6] = 2
    for fill in (True, False):
        fast, slow = postprocess(lab, keep=keep, fill_holes=fill), postprocess(lab.astype(np.int32), keep=keep,
                                                                                fill_holes=fill)
        assert fast.dtype == np.uint8 and slow.dtype == np.int32
        assert np.array_equal(fast, slow) and not np.array_equal(fast, lab)


@pytest.mark.parametrize("seed", range(4))
def test_hole_filling_equals_scipys_binary_fill_holes(seed):
    """One labelling pass gives scipy's fill: cavities filled, background reaching any face kept (random shapes)."""
    from napari_ctorgans.infer.predict import _holes

    rng = np.random.default_rng(seed)
    mask = ndimage.gaussian_filter(rng.random((23, 31, 27)), 1.5) > 0.5 + 0.02 * seed
    mask[5:15, 5:15, 5:15] |= ndimage.binary_dilation(np.pad(np.ones((4, 4, 4), bool), 3)) ^ np.pad(
        np.ones((4, 4, 4), bool), 3)  # a shell with a cavity
    ref = ndimage.binary_fill_holes(mask) & ~mask
    got = _holes(mask, ndimage.generate_binary_structure(3, 1))
    assert ref.any() and np.array_equal(got, ref)
    assert not _holes(np.ones((3, 4, 5), bool), ndimage.generate_binary_structure(3, 1)).any()


# ------------------------------------------------------------------------------------------------ predict
class AirIsLung(torch.nn.Module):
    """An oracle 'network': class 3 (lungs) where the windowed intensity is below that of -400 HU, else 0."""

    def __init__(self, window):
        super().__init__()
        self.t = (-400.0 - window[0]) / (window[1] - window[0])

    def forward(self, x):
        logits = torch.zeros((x.shape[0], 6, *x.shape[2:]))
        logits[:, 3] = 20.0 * (self.t - x[:, 0])
        return logits


@pytest.mark.parametrize("fixture", ["chest_3mm", "abdomen_dicom"])
def test_predict_returns_the_volume_grid_and_aligns(request, fixture):
    vol = request.getfixturevalue(fixture)
    window = (-575.0, 865.0)
    pred = Predictor(AirIsLung(window), spacing=3.0, window=window, roi_size=(32, 32, 32))
    labels = ct.predict(vol, pred, postprocess_labels=False, overlap=0.25, crop_to_body=False,  # air outside too
                        plausible=False)  # the air outside the body stays "lung": this is about the grid
    assert labels.shape == vol.shape and labels.dtype == np.uint8
    ref = np.asarray(vol.array) < -400
    inter = np.count_nonzero((labels == 3) & ref)
    dice = 2 * inter / (np.count_nonzero(labels == 3) + np.count_nonzero(ref))
    assert dice > 0.85, dice  # through resampling to 3 mm and back, the air stays where it is


def test_predict_with_a_checkpoint(tmp_path):
    from napari_ctorgans.train import TrainConfig, train

    cases = [ct.make_phantom(seed=0, spacing=6.0)]
    cfg = TrainConfig(iterations=2, crop_size=(24, 24, 24), spacing=6.0, batch_size=1, augment_at=-1,
                      output_dir=str(tmp_path / "run"), checkpoint_every=1)
    list(train(cfg, cases))
    vol, _ = ct.make_phantom(seed=3, spacing=(4.0, 5.0, 5.0))
    calls = []
    labels, probs = ct.predict(vol, tmp_path / "run" / "last.pt", progress=lambda d, t: calls.append(t),
                               return_probabilities=True)
    assert labels.shape == vol.shape
    assert probs.shape[0] == 6 and probs.shape[1:] == ct.resample(vol, 6.0).shape
    assert calls and len(calls) == calls[-1]
    with pytest.raises(TypeError, match="checkpoint_or_model"):
        ct.predict(vol, 3.0)
    with pytest.raises(TypeError, match="ct.Volume"):
        ct.predict(vol.array, tmp_path / "run" / "last.pt")


@pytest.mark.parametrize("seed", range(3))
def test_postprocess_is_the_same_on_any_thread_count_and_equals_scipy_in_two_steps(seed):
    """Organs are labelled in parallel: with 1 or 2 threads the result is the documented two steps computed with
    scipy (every organ's small components removed, then holes filled with ``binary_fill_holes`` in label order)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((36, 44, 40)), 1.8)
    lab = np.digitize(noise, np.quantile(noise, [0.45, 0.55, 0.62, 0.7, 0.8])).astype(np.uint8)
    struct = ndimage.generate_binary_structure(3, 1)
    ref = lab.copy()
    for value, k in ((1, 1), (2, 1), (3, 2), (4, 2), (5, None)):
        comp, n = ndimage.label(lab == value, structure=struct)
        sizes = np.bincount(comp.ravel())[1:]
        good = np.flatnonzero(sizes >= 8) + 1 if k is None else np.argsort(sizes)[::-1][:k] + 1
        ref[(lab == value) & ~np.isin(comp, good)] = 0
    for value in range(1, 6):
        mask = ref == value
        ref[(ndimage.binary_fill_holes(mask, structure=struct) & ~mask) & (ref == 0)] = value
    one, two = postprocess(lab, threads=1), postprocess(lab, threads=2)
    assert np.array_equal(one, ref) and np.array_equal(two, ref) and not np.array_equal(ref, lab)
