"""Uncertainty of the starter's draft on real CT, the next place to check, ranking scans, comparing two models."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

import napari_ctorgans as ct
from napari_ctorgans.infer.regions import uncertain_regions
from napari_ctorgans.infer.uncertainty import calibration, entropy_map, labeller_band

pytestmark = pytest.mark.usefixtures("one_torch_thread")

UPPER = slice(72, 112)  # liver dome to the kidneys: the starter misses most of the right kidney here
LOWER = slice(0, 40)  # the pelvis: bladder and bone, drawn well


def _crop(volume, labels, z: slice):
    vol = ct.Volume(np.ascontiguousarray(volume.array[z]), spacing=volume.spacing)
    return vol, np.ascontiguousarray(np.asarray(labels.array)[z])


@pytest.fixture(scope="module")
def upper(abdomen_3mm, abdomen_3mm_labels):
    vol, ref = _crop(abdomen_3mm, abdomen_3mm_labels, UPPER)
    u, labels = ct.uncertainty(vol, return_labels=True)
    return vol, ref, u, labels


def test_uncertainty_is_higher_on_the_wrong_voxels_of_the_real_abdomen(upper):
    vol, ref, u, labels = upper
    assert u.dtype == np.float32 and u.shape == vol.shape and 0.0 <= u.min() and u.max() <= 1.0
    wrong = labels != ref
    assert wrong.sum() > 5000  # the draft is far from right here (the kidneys), so the test has errors to find
    assert u[wrong].mean() > 3 * u[~wrong].mean()
    c = calibration(u, labels, ref)
    assert c["auroc"] > 0.75, c["auroc"]
    rates = [row["error_rate"] for row in c["bins"]]
    assert rates[-1] > 5 * rates[0]  # the most uncertain decile holds far more errors than the least
    # the labellers' bone gets an uncertainty too, highest at its surface
    bone = labels == 5
    surface = bone & ~ndimage.binary_erosion(bone)
    deep = ndimage.binary_erosion(bone, iterations=3)
    assert deep.any() and u[surface].mean() > 2 * u[deep].mean()


def test_next_region_is_the_most_uncertain_place_then_the_next(upper):
    vol, ref, u, labels = upper
    first = ct.next_region(u, spacing=vol.spacing)
    regions = uncertain_regions(u, spacing=vol.spacing)
    smooth = ndimage.gaussian_filter(u, [6.0 / s for s in vol.spacing], truncate=3.0)
    assert first == regions[0] and first.score == pytest.approx(float(smooth.max()), rel=1e-5)
    assert first.contains(first.center)
    wrong = labels != ref
    assert wrong[first.box].mean() > 2 * wrong.mean()  # it points at a place where the draft is wrong
    second = ct.next_region(u, [first], spacing=vol.spacing)
    assert second is not None and second.score <= first.score and not first.contains(second.center)
    seen = np.zeros(u.shape, dtype=bool)
    seen[first.box] = True
    assert ct.next_region(u, seen, spacing=vol.spacing, regions=regions) == second
    assert ct.next_region(u, np.ones(u.shape, dtype=bool), spacing=vol.spacing) is None  # all reviewed
    with pytest.raises(ValueError, match="reviewed must be a mask"):
        ct.next_region(u, seen[:-1], spacing=vol.spacing)
    with pytest.raises(ValueError, match="3D float map"):
        ct.next_region(labels, spacing=vol.spacing)


def test_rank_puts_the_scan_with_more_errors_first(abdomen_3mm, abdomen_3mm_labels, upper):
    lower_vol, lower_ref = _crop(abdomen_3mm, abdomen_3mm_labels, LOWER)
    upper_vol, upper_ref, _, upper_labels = upper
    lower_labels = ct.predict(lower_vol)
    # the ground truth of this test: the upper crop's draft has more wrong voxels than the lower crop's
    assert (upper_labels != upper_ref).sum() > 1.3 * (lower_labels != lower_ref).sum()
    rows = ct.rank_scans([lower_vol, upper_vol])
    assert [r["scan"] for r in rows] == ["volume 2", "volume 1"] and [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["effort_ml"] > rows[1]["effort_ml"] > 0 and rows[0]["kidneys_ml"] > rows[1]["kidneys_ml"]


def test_rank_cli_writes_csv_and_never_overwrites(tmp_path, abdomen_3mm, capsys):
    from napari_ctorgans.cli import main

    small = ct.Volume(np.ascontiguousarray(abdomen_3mm.array[40:64, 10:90, 10:110]), spacing=abdomen_3mm.spacing)
    scan = tmp_path / "scan.nii.gz"
    ct.write_volume(scan, small)
    out = tmp_path / "rank.csv"
    out.write_text("mine\n")
    assert main(["rank", str(scan), "-o", str(out), "--labelers", "none"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert main(["rank", str(scan), str(tmp_path / "missing.nii.gz"), "-o", str(tmp_path / "r.csv"),
                 "--labelers", "none"]) == 0
    printed = capsys.readouterr().out
    assert "scan.nii.gz" in printed and "not ranked" in printed
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].startswith("rank,scan,effort_ml") and lines[1].startswith("1,") and "missing" in lines[2]
    assert main(["rank", str(scan), "-o", str(tmp_path / "r.txt")]) == 1
    assert "written as a .csv file" in capsys.readouterr().err


def test_tta_disagreement_and_bad_options(abdomen_3mm):
    small = ct.Volume(np.ascontiguousarray(abdomen_3mm.array[72:96, 20:90, 10:110]), spacing=abdomen_3mm.spacing)
    u = ct.uncertainty(small, method="tta", passes=2, labelers=None)
    assert u.shape == small.shape and u.dtype == np.float32 and 0 <= u.min() and 0 < u.max() <= 1
    with pytest.raises(ValueError, match="method must be one of"):
        ct.uncertainty(small, method="dropout")
    with pytest.raises(ValueError, match="passes must be 2 to 8"):
        ct.uncertainty(small, method="tta", passes=1)
    with pytest.raises(ValueError, match="leave out 'return_probabilities', and 'tta' with method='tta'"):
        ct.uncertainty(small, method="tta", tta=True)
    uniform = np.full((4, 2, 2, 2), 0.25, dtype=np.float32)
    assert np.allclose(entropy_map(uniform), 1.0)
    with pytest.raises(ValueError, match="band_mm must be a positive"):
        labeller_band(np.zeros((3, 3, 3), np.uint8), 5, (1, 1, 1), band_mm=0)


def test_compare_models_names_the_organ_that_got_worse(abdomen_3mm, abdomen_3mm_labels):
    import copy

    import torch

    vol, ref = _crop(abdomen_3mm, abdomen_3mm_labels, slice(84, 104))  # 20 slices through the liver
    model, info = ct.load_checkpoint(ct.starter_path())
    broken = copy.deepcopy(model)
    last = [m for m in broken.modules() if isinstance(m, torch.nn.Conv3d)][-1]
    with torch.no_grad():
        last.bias[1] -= 20.0  # a fine-tune gone wrong: the liver channel is silenced
    result = ct.compare_models((model, info), (broken, info), [(vol, ref, ["kidneys"])], labelers=None)
    liver = next(r for r in result.rows if r["organ"] == "liver")
    assert liver["old"] > 0.5 and liver["new"] < 0.1 and not liver["corrected"] and not result.safe
    assert result.summary.startswith("liver got worse on scan A (") and "did not correct" in result.summary
    same = ct.compare_models((model, info), (model, info), [(vol, ref)], labelers=None)
    assert same.safe and same.summary.startswith("no organ changed")
    with pytest.raises(ValueError, match="do not match the CT"):
        ct.compare_models(None, None, [(vol, ref[:-1])])


def test_regions_of_a_fine_grid_are_found_on_blocks_and_listed_once():
    u = np.zeros((60, 128, 128), np.float32)  # a 2 x 0.8 x 0.8 mm grid, pooled to blocks of 1 x 3 x 3 voxels
    u[30:36, 60:80, 70:90] = 0.8  # a flat-topped blob: one region, not one per voxel of its top
    u[4:10, 10:30, 10:30] = 0.5
    regions = uncertain_regions(u, spacing=(2.0, 0.8, 0.8))
    assert len(regions) == 2 and [r.rank for r in regions] == [0, 1]
    assert regions[0].contains((33, 70, 80)) and regions[1].contains((7, 20, 20))
    assert all(0 <= c < n for r in regions for c, n in zip(r.center, u.shape))
    assert regions[0].lo[1] <= 60 and regions[0].hi[1] >= 80  # the box spans the blob on the full grid
