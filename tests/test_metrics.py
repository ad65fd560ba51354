"""Metrics vs MONAI and the surface-distance package, on random and real masks with anisotropic spacing."""

from __future__ import annotations

import csv
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage as ndi

import napari_ctorgans as ct
from napari_ctorgans import metrics as M
from napari_ctorgans.cli import main as cli_main
from napari_ctorgans.organs import IGNORE_LABEL

ANISO = (2.5, 0.8, 1.3)


def blob(shape, seed, threshold=0.55, sigma=2.0):
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), sigma)
    return field > np.quantile(field, threshold)


def monai_values(pred, ref, spacing, tol=2.0):
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")
    P, R = torch.from_numpy(pred)[None, None], torch.from_numpy(ref)[None, None]
    kw = {"include_background": True, "spacing": spacing}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "dice": float(mm.compute_dice(P, R, include_background=True, ignore_empty=False)),
            "assd": float(mm.compute_average_surface_distance(P, R, symmetric=True, **kw)),
            "mssd": float(mm.compute_hausdorff_distance(P, R, **kw)),
            "hd95": float(mm.compute_hausdorff_distance(P, R, percentile=95, **kw)),
            "surface_dice": float(mm.compute_surface_dice(P, R, [tol], **kw)),
        }


def ours(pred, ref, spacing, tol=2.0):
    return {
        "dice": M.dice(pred, ref),
        "assd": M.assd(pred, ref, spacing=spacing),
        "mssd": M.mssd(pred, ref, spacing=spacing),
        "hd95": M.hd95(pred, ref, spacing=spacing),
        "surface_dice": M.surface_dice(pred, ref, spacing=spacing, tolerance_mm=tol),
    }


@pytest.fixture(scope="module")
def liver_pair(abdomen_3mm_labels):
    ref = abdomen_3mm_labels.array == 1
    pred = np.roll(ndi.binary_erosion(ref, iterations=1), 2, axis=1)
    pred[30:33] = False  # a few missed slices
    return pred, ref


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), ANISO])
def test_random_masks_match_monai(seed, spacing):
    ref = blob((24, 30, 28), seed)
    pred = blob((24, 30, 28), seed + 100)
    a, b = ours(pred, ref, spacing), monai_values(pred, ref, spacing)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_real_masks_match_monai_at_anisotropic_spacing(liver_pair):
    pred, ref = liver_pair
    for spacing in [(3.0, 3.0, 3.0), ANISO]:
        a, b = ours(pred, ref, spacing, tol=3.0), monai_values(pred, ref, spacing, tol=3.0)
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-5), key
        assert 0 < a["assd"] < a["hd95"] <= a["mssd"]


def test_kdtree_and_distance_transform_agree(liver_pair):
    pred, ref = liver_pair
    k = M.surface_distances(pred, ref, spacing=ANISO)
    e = M.surface_distances(pred, ref, spacing=ANISO, method="edt")
    for x, y in zip(k, e):
        np.testing.assert_allclose(np.sort(x), np.sort(y), rtol=1e-9)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_close_to_surface_distance_package(liver_pair):
    sd = pytest.importorskip("surface_distance")
    pred, ref = liver_pair
    rng_masks = [(blob((20, 26, 22), 5), blob((20, 26, 22), 6)), liver_pair]
    for pred, ref in rng_masks:
        for spacing in [(3.0, 3.0, 3.0), ANISO]:
            s = sd.compute_surface_distances(ref, pred, spacing)
            gt_to_pred, pred_to_gt = sd.compute_average_surface_distance(s)
            d_pr, d_rp = M.surface_distances(pred, ref, spacing=spacing)
            # surface-distance weights surfels (faces between voxels) by area; we count boundary voxels. The
            # directed means agree within half the largest voxel size, the Hausdorff distances within one voxel.
            tol = 0.5 * max(spacing)
            assert d_pr.mean() == pytest.approx(pred_to_gt, abs=tol)
            assert d_rp.mean() == pytest.approx(gt_to_pred, abs=tol)
            hd = M.mssd(pred, ref, spacing=spacing)
            assert hd == pytest.approx(sd.compute_robust_hausdorff(s, 100), abs=max(spacing))
            assert M.hd95(pred, ref, spacing=spacing) == pytest.approx(sd.compute_robust_hausdorff(s, 95), abs=max(spacing))
            assert M.dice(pred, ref) == pytest.approx(sd.compute_dice_coefficient(ref, pred), rel=1e-12)


def test_hand_computed_values():
    a = np.zeros((1, 1, 10), bool)
    a[..., 2:5] = True  # voxels 2, 3, 4
    b = np.zeros_like(a)
    b[..., 3:8] = True  # voxels 3..7
    sp = (1.0, 1.0, 2.0)
    assert M.dice(a, b) == pytest.approx(2 * 2 / 8)
    assert M.iou(a, b) == pytest.approx(2 / 6)
    assert M.voe(a, b) == pytest.approx(4 / 6)
    assert M.rvd(a, b) == pytest.approx((3 - 5) / 5)
    # every voxel of a 1-voxel-thick line is a boundary voxel; distances in mm along x (2 mm voxels)
    d_ab, d_ba = M.surface_distances(a, b, spacing=sp)
    np.testing.assert_allclose(np.sort(d_ab), [0, 0, 2])
    np.testing.assert_allclose(np.sort(d_ba), [0, 0, 2, 4, 6])
    assert M.mssd(a, b, spacing=sp) == 6.0
    assert M.assd(a, b, spacing=sp) == pytest.approx(14 / 8)
    assert M.rmsd(a, b, spacing=sp) == pytest.approx(math.sqrt((4 + 4 + 16 + 36) / 8))
    assert M.surface_dice(a, b, spacing=sp, tolerance_mm=2.0) == pytest.approx(6 / 8)


def test_empty_masks_documented_behaviour():
    a = blob((10, 12, 14), 3)
    e = np.zeros_like(a)
    sp = ANISO
    # both empty: perfect agreement
    assert (M.dice(e, e), M.iou(e, e), M.voe(e, e), M.rvd(e, e)) == (1.0, 1.0, 0.0, 0.0)
    assert (M.assd(e, e, spacing=sp), M.mssd(e, e, spacing=sp), M.hd95(e, e, spacing=sp)) == (0.0, 0.0, 0.0)
    assert M.surface_dice(e, e, spacing=sp) == 1.0
    # empty prediction / empty reference
    for pred, ref, rvd in [(e, a, -1.0), (a, e, math.inf)]:
        assert M.dice(pred, ref) == 0.0 and M.iou(pred, ref) == 0.0 and M.voe(pred, ref) == 1.0
        assert M.rvd(pred, ref) == rvd
        assert M.assd(pred, ref, spacing=sp) == math.inf
        assert M.rmsd(pred, ref, spacing=sp) == math.inf
        assert M.surface_dice(pred, ref, spacing=sp) == 0.0
        # MONAI agrees on the one-empty cases (it returns NaN when both are empty)
        ref_values = monai_values(pred, ref, sp)
        assert ref_values["assd"] == math.inf and ref_values["mssd"] == math.inf
        assert ref_values["surface_dice"] == 0.0
    assert math.isnan(monai_values(e, e, sp)["assd"])


def test_evaluate_rows_on_real_labels(abdomen_3mm_labels, tmp_path):
    ref = abdomen_3mm_labels.array
    sp = abdomen_3mm_labels.spacing
    rows = M.evaluate(ref, ref, spacing=sp, case="self")
    assert [r.organ for r in rows] == ["liver", "bladder", "lungs", "kidneys", "bone"]
    assert all(r.dice == 1.0 and r.assd == 0.0 and r.hd95 == 0.0 and r.surface_dice == 1.0 for r in rows)
    assert rows[0].ref_voxels == 41692
    assert rows[0].ref_ml == pytest.approx(41692 * 27 / 1000)
    # a perturbed prediction: rows equal the single-mask functions
    pred = np.roll(ref, 1, axis=2)
    pred[pred == 2] = 0  # bladder missed entirely
    rows = M.evaluate(pred, ref, spacing=sp, organs=["liver", 2, "bone"], tolerance_mm=3.0)
    liver, bladder, bone = rows
    assert liver.dice == pytest.approx(M.dice(pred == 1, ref == 1))
    assert liver.assd == pytest.approx(M.assd(pred == 1, ref == 1, spacing=sp))
    assert liver.surface_dice == pytest.approx(M.surface_dice(pred == 1, ref == 1, spacing=sp, tolerance_mm=3.0))
    assert bladder.dice == 0.0 and bladder.rvd == -1.0 and bladder.assd == math.inf
    assert bone.hd95 == pytest.approx(M.hd95(pred == 5, ref == 5, spacing=sp))
    # CSV round trip
    path = M.write_csv(rows, tmp_path / "m.csv")
    read = list(csv.DictReader(path.open()))
    assert [r["organ"] for r in read] == ["liver", "bladder", "bone"]
    assert float(read[0]["dice"]) == pytest.approx(liver.dice, rel=1e-5)
    assert read[1]["assd"] == "inf"


def test_evaluate_ignores_unlabelled_reference_voxels():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[7:9, 7:9, 7:9] = 1  # a false positive ...
    ref[7:9, 7:9, 7:9] = IGNORE_LABEL  # ... where the reference is unlabelled
    row = M.evaluate(pred, ref, spacing=1.0)[0]
    assert row.dice == 1.0 and row.mssd == 0.0
    assert M.evaluate(pred, ref, spacing=1.0, ignore_index=None, organs=[1])[0].dice < 1.0


def test_global_dice_and_accumulator():
    refs = [blob((12, 12, 12), s) for s in range(3)]
    preds = [blob((12, 12, 12), s + 10) for s in range(3)]
    inter = sum(int((p & r).sum()) for p, r in zip(preds, refs))
    total = sum(int(p.sum() + r.sum()) for p, r in zip(preds, refs))
    assert M.global_dice(preds, refs) == pytest.approx(2 * inter / total)
    acc = M.MetricAccumulator(spacing=ANISO, organs=[1])
    for i, (p, r) in enumerate(zip(preds, refs)):
        acc.update(p.astype(np.uint8), r.astype(np.uint8), case=f"c{i}")
    (summary,) = acc.summary()
    assert summary["cases"] == 3
    assert summary["global_dice"] == pytest.approx(M.global_dice(preds, refs))
    assert summary["dice"] == pytest.approx(np.mean([M.dice(p, r) for p, r in zip(preds, refs)]))
    assert "c2" in M.to_csv(acc.rows)
    labels = [p.astype(np.uint8) * 4 for p in preds], [r.astype(np.uint8) * 4 for r in refs]
    assert M.global_dice(*labels, label=4) == pytest.approx(M.global_dice(preds, refs))


def test_bad_input_errors_name_the_argument():
    a = blob((6, 7, 8), 0)
    with pytest.raises(ValueError, match="spacing must have 3 values"):
        M.assd(a, a, spacing=(1.0, 1.0))
    with pytest.raises(ValueError, match="spacing values must be positive"):
        M.hd95(a, a, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="spacing is required"):
        M.assd(a, a, spacing=None)
    with pytest.raises(ValueError, match="pred and ref must have the same shape"):
        M.dice(a, a[1:])
    nan = a.astype(float)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="pred contains NaN"):
        M.dice(nan, a)
    with pytest.raises(ValueError, match="ref must be a binary mask"):
        M.dice(a, a.astype(np.uint8) * 3)
    with pytest.raises(ValueError, match="tolerance_mm must be"):
        M.surface_dice(a, a, spacing=1.0, tolerance_mm=-1)
    with pytest.raises(ValueError, match="pred_labels and ref_labels must share a grid"):
        M.evaluate(np.zeros((4, 4, 4), int), np.zeros((4, 4, 5), int), spacing=1.0)
    with pytest.raises(ValueError, match="ref_labels contains NaN"):
        M.evaluate(np.zeros((4, 4, 4)), np.full((4, 4, 4), np.nan), spacing=1.0)
    with pytest.raises(ValueError, match="unknown organ 'heart'"):
        M.evaluate(np.zeros((4, 4, 4), int), np.zeros((4, 4, 4), int), spacing=1.0, organs=["heart"])
    with pytest.raises(ValueError, match="method must be"):
        M.surface_distances(a, a, spacing=1.0, method="brute")


def test_public_module():
    assert ct.metrics.evaluate is M.evaluate


def test_cli_evaluate(abdomen_3mm_labels, tmp_path, capsys):
    ref = abdomen_3mm_labels
    pred = np.roll(ref.array, 1, axis=0)
    ref_path = ct.write_labels(tmp_path / "ref.nii.gz", ref.array, like=ref)
    pred_path = ct.write_labels(tmp_path / "pred.nii.gz", pred, like=ref)
    out = tmp_path / "metrics.csv"
    assert cli_main(["evaluate", str(pred_path), str(ref_path), "--csv", str(out), "--tolerance", "3"]) == 0
    printed = capsys.readouterr().out
    assert "liver" in printed and "bone" in printed
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5
    expected = M.evaluate(pred, ref.array, spacing=ref.spacing, tolerance_mm=3.0)
    assert float(rows[0]["dice"]) == pytest.approx(expected[0].dice, rel=1e-5)
    # a prediction on another grid is refused with a clear message
    other = ct.Volume(np.zeros((10, 10, 10), np.uint8), spacing=(3.0, 3.0, 3.0))
    bad = ct.write_labels(tmp_path / "bad.nii.gz", other.array, like=other)
    assert cli_main(["evaluate", str(bad), str(ref_path)]) == 1
    assert "same grid" in capsys.readouterr().err
