"""Augmentation: correctness against scipy.ndimage, statistics of the random draws, validation."""

from __future__ import annotations

import json

import numba
import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans.augment import OUT_VALUE_HU, AugmentParams, augment, draw_transform
from napari_ctorgans.augment import cpu as aug_cpu

WIDE = (-1024.0, 3071.0)  # window covering the whole HU range: output = (HU + 1024) / 4095


def _no_photometric(**kw):
    base = dict(noise_sigma=(0, 0), occlusion_max=0, elastic_magnitude=0, window_low=(WIDE[0],) * 2,
                window_high=(WIDE[1],) * 2)  # fmt: skip
    base.update(kw)
    return AugmentParams(**base)


@pytest.fixture(scope="module")
def abdomen(abdomen_3mm, abdomen_3mm_labels):
    lab = abdomen_3mm_labels.array if hasattr(abdomen_3mm_labels, "array") else abdomen_3mm_labels
    return abdomen_3mm.array.astype(np.float32), np.asarray(lab, dtype=np.uint8)


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("out_shape", [None, (64, 80, 72), (130, 90, 136)])
def test_equals_scipy_affine_transform(abdomen, seed, out_shape):
    img, lab = abdomen
    params = _no_photometric()
    out, lout, drawn = augment(img, lab, params, seed=seed, out_shape=out_shape, return_transform=True)
    shape = img.shape if out_shape is None else out_shape
    assert not np.allclose(drawn["matrix"], np.eye(3))  # a real rotation/shear/scale was drawn
    kw = dict(output_shape=shape, mode="grid-constant")
    ref = ndi.affine_transform(img, drawn["matrix"], drawn["offset"], order=1, cval=OUT_VALUE_HU, **kw)
    ref_lab = ndi.affine_transform(lab, drawn["matrix"], drawn["offset"], order=0, cval=0, **kw)
    hu = out.astype(np.float64) * (WIDE[1] - WIDE[0]) + WIDE[0]
    assert np.abs(hu - np.clip(ref, *WIDE)).max() <= 1e-4 * (WIDE[1] - WIDE[0])
    np.testing.assert_array_equal(lout, ref_lab)
    assert lout.dtype == lab.dtype and out.dtype == np.float32
    assert (lout > 0).sum() > 1000  # organs survived the warp


def test_int16_input_same_as_float(abdomen):
    img, lab = abdomen
    a, la = augment(img, lab, AugmentParams(elastic_magnitude=0), seed=3)
    b, lb = augment(img.astype(np.int16), lab, AugmentParams(elastic_magnitude=0), seed=3)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(la, lb)


def test_identity_params_give_windowed_input(phantom):
    vol, lab = phantom
    out, lout = augment(vol.array, lab, AugmentParams.none(window=(-1000, 1000)), seed=0)
    np.testing.assert_allclose(out, np.clip((vol.array + 1000.0) / 2000.0, 0, 1), atol=1e-6)
    np.testing.assert_array_equal(lout, lab)


def test_noise_std_and_independence():
    img = np.zeros((40, 40, 40), np.float32)
    params = AugmentParams.none(window=(-1000, 1000))
    params.noise_sigma = (80.0, 80.0)
    out, _ = augment(img, None, params, seed=5)
    hu = out.astype(np.float64) * 2000.0 - 1000.0
    n = hu.size
    assert abs(hu.mean()) < 4 * 80 / np.sqrt(n)
    assert abs(hu.std() - 80.0) < 0.02 * 80.0  # std of a sample std ~ sigma / sqrt(2n) = 0.3 HU
    kurtosis = np.mean((hu - hu.mean()) ** 4) / hu.var() ** 2
    assert abs(kurtosis - 2.7) < 0.1  # Irwin-Hall n=4 approximation, documented in augment/rng.py
    assert np.abs(hu).max() <= 3.47 * 80.0
    corr = np.corrcoef(hu[:, :, :-1].ravel(), hu[:, :, 1:].ravel())[0, 1]
    assert abs(corr) < 0.02
    out2, _ = augment(img, None, params, seed=6)
    assert not np.array_equal(out, out2)
    # sigma is drawn per example from the range
    params.noise_sigma = (0.0, 100.0)
    sigmas = [draw_transform(params, s, img.shape, img.shape)["noise_sigma"] for s in range(300)]
    assert 0 <= min(sigmas) < 10 and 90 < max(sigmas) <= 100


def test_occlusion_hits_every_z_equally():
    nz, dmax, draws = 24, 8.0, 1500
    img = np.zeros((nz, 2, 2), np.float32)
    params = AugmentParams.none(window=(-1000, 1000))
    params.occlusion_max = dmax
    hits = np.zeros(nz)
    z = np.arange(nz)
    for s in range(draws):
        z0, z1 = draw_transform(params, s, img.shape, img.shape)["occlusion"]
        slab = (z >= z0) & (z <= z1)
        hits += slab
        if s < 60:  # the kernel blanks exactly the drawn slab
            out, _ = augment(img, None, params, seed=s)
            np.testing.assert_array_equal(out[:, 0, 0] == 0.0, slab)
            assert np.all((out == 0.0) | (out == 0.5))
    p = hits / draws
    expected = (dmax / 2) / (nz - 1 + dmax)  # E[delta] / length of the start range
    assert np.all(np.abs(p - expected) < 0.3 * expected), p
    assert abs(p.mean() - expected) < 0.08 * expected


def test_reflection_probabilities_and_flip():
    params = AugmentParams.none()
    params.reflect_prob = (0.2, 0.5, 0.9)
    flips = np.array([draw_transform(params, s, (8, 8, 8), (8, 8, 8))["reflect"] for s in range(2000)])
    for k, p in enumerate(params.reflect_prob):
        assert abs(flips[:, k].mean() - p) < 4 * np.sqrt(p * (1 - p) / 2000)
    img = np.random.default_rng(0).uniform(-1000, 1000, (10, 11, 12)).astype(np.float32)
    lab = (img > 0).astype(np.uint8)
    params = AugmentParams.none(window=(-1000, 1000))
    params.reflect_prob = (0.0, 0.0, 1.0)
    out, lout = augment(img, lab, params, seed=1)
    np.testing.assert_allclose(out, (img[:, :, ::-1] + 1000) / 2000, atol=1e-6)
    np.testing.assert_array_equal(lout, lab[:, :, ::-1])


@pytest.mark.parametrize("d", [(3.0, -2.0, 5.0), (0.5, 1.25, -3.75)])
def test_displacement_moves_centre_by_d(d, phantom):
    vol, lab = phantom
    img = vol.array.astype(np.float32)
    params = _no_photometric(rotation_deg=(-20, 20), scale=(0.8, 1.2), displacement=[(v, v) for v in d])
    _, _, drawn = augment(img, lab, params, seed=2, out_shape=(40, 50, 60), return_transform=True)
    c_out = (np.array([40, 50, 60]) - 1) / 2
    c_in = (np.array(img.shape) - 1) / 2
    np.testing.assert_allclose(drawn["matrix"] @ c_out + drawn["offset"], c_in + np.array(d), atol=1e-12)
    # pure translation by integer d: output[x] = input[x + d] exactly
    p = _no_photometric(rotation_deg=(0, 0), scale=(1, 1), shear=(0, 0), affine=(0, 0),
                        displacement=[(3, 3), (-2, -2), (5, 5)])  # fmt: skip
    out, lout = augment(img, lab, p, seed=0)
    np.testing.assert_array_equal(lout[:-3, 2:, :-5], lab[3:, :-2, 5:])
    np.testing.assert_allclose(out[:-3, 2:, :-5], (img[3:, :-2, 5:] + 1024) / 4095, atol=1e-6)


def test_same_output_for_any_thread_count(abdomen):
    img, lab = abdomen
    params = AugmentParams()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a, la = augment(img[:40], lab[:40], params, seed=11)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        b, lb = augment(img[:40], lab[:40], params, seed=11)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)


def test_elastic_zero_magnitude_is_identity_of_elastic_term(phantom):
    vol, lab = phantom
    img = vol.array.astype(np.float32)
    drawn = draw_transform(AugmentParams(elastic_magnitude=0), 4, img.shape, img.shape)
    outs = []
    for force in (False, True):
        o, lo = np.empty(img.shape, np.float32), np.empty(img.shape, np.uint8)
        aug_cpu.run(img, lab, o, lo, drawn, OUT_VALUE_HU, 0, force_elastic=force)
        outs.append((o, lo))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_elastic_displacement_bounded_by_magnitude(axis):
    shape = (30, 34, 38)
    ramp = np.indices(shape, dtype=np.float32)[axis] * 10.0  # 10 HU per voxel along one axis
    params = AugmentParams.none(window=(-2000.0, 2000.0))
    params.elastic_magnitude = 4.0
    params.elastic_spacing = 12.0
    out, _ = augment(ramp, None, params, seed=9)
    sampled = out.astype(np.float64) * 4000.0 - 2000.0
    disp = (sampled - ramp) / 10.0  # trilinear reproduces a linear ramp: this is the displacement along `axis`
    inner = disp[6:-6, 6:-6, 6:-6]
    assert np.abs(inner).max() <= 4.0 + 1e-3
    assert np.abs(inner).max() > 1.0  # the field really moves voxels
    assert np.abs(np.diff(inner, axis=2)).max() < 1.0  # smooth: a B-spline, not noise


def test_seed_reproducible_and_labels_optional(phantom):
    vol, lab = phantom
    a, la = augment(vol.array, lab, AugmentParams(), seed=21)
    b, lb = augment(vol.array, lab, AugmentParams(), seed=21)
    c, lc = augment(vol.array, None, AugmentParams(), seed=21)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(a, c)
    assert lc is None
    assert 0.0 <= a.min() and a.max() <= 1.0


def test_out_shape_larger_than_input_pads_with_air():
    img = np.full((10, 10, 10), 40.0, np.float32)
    out, _ = augment(img, None, AugmentParams.none(window=(-1024, 976)), seed=0, out_shape=(20, 10, 10))
    assert out.shape == (20, 10, 10)
    np.testing.assert_allclose(out[10, 5, 5], (40 + 1024) / 2000, atol=1e-6)
    assert out[0, 5, 5] == 0.0 and out[-1, 5, 5] == 0.0  # -1024 HU outside


def test_public_name_and_json_roundtrip(tmp_path):
    assert ct.AugmentParams is AugmentParams
    # ct.augment stays callable although the sub-package of the same name is imported
    out, _ = ct.augment(np.zeros((4, 4, 4), np.float32), None, None, seed=0)
    assert out.shape == (4, 4, 4)
    p = AugmentParams(rotation_deg=(-5, 5), reflect_prob=(0.1, 0.2, 0.3), noise_sigma=(1, 2))
    path = p.save(tmp_path / "aug.json")
    assert json.loads(path.read_text())["reflect_prob"] == [0.1, 0.2, 0.3]
    q = AugmentParams.load(path)
    assert q == p
    assert AugmentParams.from_dict(AugmentParams.none().to_dict()) == AugmentParams.none()
    with pytest.raises(ValueError, match="unknown augmentation parameter.*rotation"):
        AugmentParams.from_dict({"rotaton_deg": (0, 1)})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        AugmentParams.load(tmp_path / "bad.json")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(rotation_deg=(10, -10)), "rotation_deg.*inverted range"),
        (dict(noise_sigma=(-1, 5)), "noise_sigma must lie within"),
        (dict(reflect_prob=(0, 0, 1.5)), "reflect_prob must be 3 probabilities in \\[0, 1\\]"),
        (dict(scale=(0.0, 1.0)), "scale factors must be positive"),
        (dict(window_low=(-100, 300), window_high=(200, 400)), "window_low.*below window_high"),
        (dict(occlusion_max=-2), "occlusion_max must be a finite number >= 0"),
        (dict(displacement=[(0, 1), (0, 1)]), "displacement must be a \\(min, max\\) pair or three pairs"),
    ],
)
def test_bad_params(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentParams(**kwargs)


def test_bad_inputs():
    img = np.zeros((8, 8, 8), np.float32)
    with pytest.raises(ValueError, match="labels must have the image's shape \\(8, 8, 8\\), got \\(8, 8, 7\\)"):
        augment(img, np.zeros((8, 8, 7), np.uint8), None, seed=0)
    with pytest.raises(TypeError, match="labels must be an integer array"):
        augment(img, np.zeros((8, 8, 8), np.float32), None, seed=0)
    with pytest.raises(ValueError, match="out_shape must be 3 positive integers"):
        augment(img, None, None, seed=0, out_shape=(0, 8, 8))
    with pytest.raises(ValueError, match="backend must be one of"):
        augment(img, None, None, seed=0, backend="gpu")
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        augment(img, None, None, seed=-1)
    with pytest.raises(ValueError, match="image must be a 3D"):
        augment(img[0], None, None, seed=0)
    with pytest.raises(TypeError, match="params must be an AugmentParams"):
        augment(img, None, {"noise_sigma": (0, 1)}, seed=0)


def test_label_dtypes_and_torch_cpu_tensors(phantom):
    import torch

    vol, lab = phantom
    img = vol.array[::3, ::3, ::3].astype(np.float32).copy()
    lab = lab[::3, ::3, ::3].copy()
    p = AugmentParams(elastic_magnitude=0)
    ref, ref_lab = augment(img, lab, p, seed=4)
    for dtype in (np.int64,):  # each labels dtype compiles its own kernel: keep the list short
        out, lout = augment(img, lab.astype(dtype), p, seed=4)
        assert lout.dtype == dtype
        np.testing.assert_array_equal(lout, ref_lab)
    out, lout = augment(img, lab > 0, p, seed=4)
    assert lout.dtype == bool
    np.testing.assert_array_equal(lout, ref_lab > 0)
    out, lout = augment(torch.from_numpy(img), torch.from_numpy(lab), p, seed=4)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(lout, ref_lab)
