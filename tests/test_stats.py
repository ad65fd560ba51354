"""Organ statistics: measured on the real abdomen, checked against SimpleITK's own index-to-patient transform."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import data_file

import napari_ctorgans as ct
from napari_ctorgans.stats import TABLE_COLUMNS, table_rows


def test_statistics_of_the_real_abdomen_match_an_independent_computation(abdomen_3mm, abdomen_3mm_labels):
    rows = ct.organ_statistics(abdomen_3mm_labels, abdomen_3mm)
    assert [r["name"] for r in rows] == ["liver", "bladder", "lungs", "kidneys", "bone"]
    # independent: the file as stored (RAS), SimpleITK's transform to LPS patient coordinates
    img = sitk.ReadImage(str(data_file("abdomen_3mm_ctorg.nii.gz")))
    lab = sitk.GetArrayFromImage(img)
    hu = sitk.GetArrayFromImage(sitk.ReadImage(str(data_file("abdomen_3mm.nii.gz"))))
    for row in rows:
        mask = lab == row["value"]
        assert row["voxels"] == int(mask.sum())
        assert row["volume_ml"] == pytest.approx(mask.sum() * 27.0 / 1000.0)
        values = hu[mask].astype(float)
        assert row["hu_mean"] == pytest.approx(values.mean())
        assert row["hu_std"] == pytest.approx(values.std())
        assert (row["hu_p5"], row["hu_median"], row["hu_p95"]) == pytest.approx(
            tuple(np.percentile(values, [5, 50, 95]))
        )
        centre = img.TransformContinuousIndexToPhysicalPoint(np.argwhere(mask).mean(axis=0)[::-1].tolist())
        assert row["centroid_lps"] == pytest.approx(centre, abs=1e-6)
        idx = np.argwhere(mask)
        lo, hi = idx.min(axis=0)[::-1], idx.max(axis=0)[::-1]  # (x, y, z) index box; its corners in LPS:
        points = np.array([img.TransformIndexToPhysicalPoint([int(c[0]), int(c[1]), int(c[2])])
                           for c in np.array(np.meshgrid(*zip(lo, hi))).reshape(3, -1).T])
        assert row["bbox_min_lps"] == pytest.approx(tuple(points.min(axis=0)), abs=1e-6)
        assert row["bbox_max_lps"] == pytest.approx(tuple(points.max(axis=0)), abs=1e-6)
    by_name = {r["name"]: r for r in rows}
    assert by_name["liver"]["centroid_lps"][0] < 0 < by_name["liver"]["hu_mean"]  # on the patient's right
    assert by_name["liver"]["pieces"] == 1 and by_name["kidneys"]["pieces"] == 2
    flat = table_rows(rows)
    assert list(flat[0]) == list(TABLE_COLUMNS) and flat[0]["centroid_L_mm"] == rows[0]["centroid_lps"][0]


def test_labels_on_another_grid_are_refused_with_the_fix(abdomen_3mm, abdomen_3mm_labels):
    other = abdomen_3mm_labels.with_array(abdomen_3mm_labels.array[:, :, :-1], spacing=(3.0, 3.0, 3.0))
    with pytest.raises(ValueError, match=r"does not match the CT shape .* give the label map made for this CT"):
        ct.organ_statistics(other.array, abdomen_3mm)
    shifted = abdomen_3mm_labels.with_array(abdomen_3mm_labels.array, origin=(0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match=r"not on the grid of the CT .* resample them"):
        ct.organ_statistics(shifted, abdomen_3mm)
    with pytest.raises(ValueError, match="labels must be integers"):
        ct.organ_statistics(abdomen_3mm.array.astype(np.float32), abdomen_3mm)


def test_an_empty_label_map_has_no_rows(abdomen_3mm):
    assert ct.organ_statistics(np.zeros(abdomen_3mm.shape, np.uint8), abdomen_3mm) == []



def test_stats_command_writes_the_table_and_the_picture_report(tmp_path, abdomen_3mm, abdomen_3mm_labels):
    import csv
    import io
    import json

    import imageio.v3 as iio

    from napari_ctorgans.stats import statistics_text
    from napari_ctorgans.cli import main

    ct_file, label_file = data_file("abdomen_3mm.nii.gz"), data_file("abdomen_3mm_ctorg.nii.gz")
    report, png = tmp_path / "report.json", tmp_path / "report.png"
    assert main(["stats", str(label_file), "--ct", str(ct_file), "-o", str(report), "--png", str(png)]) == 0
    full = ct.organ_statistics(abdomen_3mm_labels, abdomen_3mm)
    assert json.loads(report.read_text())["organs"][0]["centroid_lps"] == pytest.approx(list(full[0]["centroid_lps"]))
    expected = table_rows(full)
    rows = list(csv.DictReader(io.StringIO(statistics_text(full, ".csv"))))  # what -o report.csv writes
    assert [r["name"] for r in rows] == [r["name"] for r in expected]
    for got, want in zip(rows, expected):
        assert float(got["volume_ml"]) == pytest.approx(want["volume_ml"], abs=1e-3)
        assert float(got["centroid_S_mm"]) == pytest.approx(want["centroid_S_mm"], abs=1e-3)
    picture = iio.imread(png)
    assert picture.ndim == 3 and picture.shape[0] > picture.shape[1] > 800  # one portrait page
    for organ in (ct.ORGANS[1], ct.ORGANS[4]):  # the outlines and table cells are drawn in the organ colours
        rgb = np.round(np.array(organ.color[:3]) * 255)
        assert (np.abs(picture[..., :3].astype(int) - rgb).max(axis=-1) <= 8).sum() > 200
    table = tmp_path / "report.csv"
    table.write_text("mine")
    assert main(["stats", str(label_file), "--ct", str(ct_file), "-o", str(table)]) == 1
    assert table.read_text() == "mine"
