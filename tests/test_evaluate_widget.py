"""The Evaluate dock widget in a real viewer: metrics table, CSV export, organ statistics, mismatched grids."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

import napari_ctorgans as ct

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom():
    return ct.make_phantom(seed=3, spacing=(6.0, 5.0, 5.0), shape=(30, 40, 44))


def _add(viewer, phantom):
    from napari_ctorgans._napari.layers import image_layer_kwargs, labels_layer_kwargs

    vol, labels = phantom
    viewer.add_image(vol.array, **image_layer_kwargs(vol, name="scan"))
    pred = np.roll(labels, 1, axis=1)  # a perturbed copy: shifted by one voxel, one organ partly erased
    pred[:5][pred[:5] == 5] = 0
    viewer.add_labels(labels, **labels_layer_kwargs(vol, name="reference"))
    viewer.add_labels(pred, **labels_layer_kwargs(vol, name="prediction"))
    return vol, labels, pred


def test_table_matches_metrics_and_exports_csv(make_napari_viewer, qtbot, phantom, tmp_path):
    from napari_ctorgans._napari.evaluate_widget import METRIC_COLUMNS, EvaluateWidget

    viewer = make_napari_viewer()
    w = EvaluateWidget(viewer)
    vol, labels, pred = _add(viewer, phantom)  # layers added after the widget: combos follow
    assert {w.pred_combo.itemText(i) for i in range(w.pred_combo.count())} == {"reference", "prediction"}
    w.pred_combo.setCurrentText("prediction")
    w.ref_combo.setCurrentText("reference")
    w.tolerance.setValue(3.0)
    worker = w.run()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    expected = ct.metrics.evaluate(pred, labels, spacing=vol.spacing, tolerance_mm=3.0)
    assert w.table.rowCount() == len(expected) >= 4
    for i, row in enumerate(expected):
        assert w.table.item(i, 0).text() == row.organ
        for j, (_, attr) in enumerate(METRIC_COLUMNS[1:], start=1):
            value = getattr(row, attr)
            shown = float(w.table.item(i, j).text())
            assert shown == pytest.approx(value, abs=1e-4) or (math.isinf(value) and math.isinf(shown))
    assert any(r.dice < 1.0 for r in expected)  # the perturbation is visible
    out = w.export_csv(tmp_path / "m.csv")
    back = list(csv.DictReader(out.open()))
    assert [r["organ"] for r in back] == [r.organ for r in expected]
    for r, e in zip(back, expected):
        assert float(r["dice"]) == pytest.approx(e.dice, rel=1e-5)
        assert float(r["hd95"]) == pytest.approx(e.hd95, rel=1e-5)
        assert float(r["tolerance_mm"]) == 3.0


def test_organ_statistics(make_napari_viewer, phantom):
    from napari_ctorgans._napari.evaluate_widget import EvaluateWidget

    viewer = make_napari_viewer()
    vol, labels, _ = _add(viewer, phantom)
    w = EvaluateWidget(viewer)
    w.stats_labels_combo.setCurrentText("reference")
    w.stats_image_combo.setCurrentText("scan")
    w.stats_button.click()
    stats = w.stats
    assert stats == ct.organ_statistics(labels, vol)  # the widget shows the public API's numbers
    assert [s["value"] for s in stats] == sorted(int(v) for v in np.unique(labels) if v)
    assert w.stats_table.rowCount() == len(stats)
    assert w.stats_table.item(0, 0).text() == stats[0]["name"]
    assert "statistics of" in w.stats_status.text() and w.status.text() != w.stats_status.text()


def test_statistics_report_is_saved_as_png_and_csv(make_napari_viewer, phantom, tmp_path):
    import csv

    import imageio.v3 as iio

    from napari_ctorgans._napari.evaluate_widget import EvaluateWidget

    viewer = make_napari_viewer()
    vol, labels, _ = _add(viewer, phantom)
    w = EvaluateWidget(viewer)
    assert not w.report_button.isEnabled()  # nothing to save before the statistics exist
    w.stats_labels_combo.setCurrentText("reference")
    w.stats_image_combo.setCurrentText("scan")
    w.stats_button.click()
    assert w.report_button.isEnabled()
    png, table = w.save_report(tmp_path / "report.png")
    picture = iio.imread(png)
    assert picture.shape[0] > 400 and picture[..., :3].std() > 10
    rows = list(csv.DictReader(open(table)))
    assert [r["name"] for r in rows] == [s["name"] for s in w.stats]
    before = png.read_bytes()
    with pytest.raises(FileExistsError, match="choose another name"):
        w.save_report(png)
    assert png.read_bytes() == before  # never replaced without asking


def test_mismatched_shapes_show_a_message(make_napari_viewer, qtbot, phantom):
    from napari_ctorgans._napari.evaluate_widget import EvaluateWidget

    viewer = make_napari_viewer()
    _, labels = phantom
    viewer.add_labels(labels, name="reference", scale=(6.0, 5.0, 5.0))
    viewer.add_labels(labels[:-2], name="cropped", scale=(6.0, 5.0, 5.0))
    w = EvaluateWidget(viewer)
    w.pred_combo.setCurrentText("cropped")
    w.ref_combo.setCurrentText("reference")
    assert w.run() is None
    assert "shape" in w.status.text() and "same grid" in w.status.text()
    assert w.table.rowCount() == 0
    viewer.add_labels(labels[0], name="slice")  # a 2D layer: refused with a message
    w.pred_combo.setCurrentText("slice")
    assert w.run() is None
    assert "cannot evaluate" in w.status.text() and "3D" in w.status.text()
    with pytest.raises(ValueError, match="press Evaluate first"):
        w.export_csv("unused.csv")
    # statistics over a CT of another shape: a message in the statistics' own status line, no exception
    viewer.add_image(np.zeros((3, 4, 5), np.int16), name="small")
    w.stats_labels_combo.setCurrentText("reference")
    w.stats_image_combo.setCurrentText("small")
    assert w.compute_statistics() == []
    assert "choose the CT" in w.stats_status.text()


def test_reference_and_prediction_from_files(make_napari_viewer, qtbot, phantom, tmp_path, abdomen_3mm_labels):
    from napari_ctorgans._napari.evaluate_widget import EvaluateWidget

    vol, labels = phantom
    pred = labels.copy()
    pred[pred == 4] = 0  # the kidneys are missed
    ct.write_labels(tmp_path / "ref.nii.gz", labels, like=vol)
    ct.write_labels(tmp_path / "pred.nrrd", pred, like=vol)
    viewer = make_napari_viewer()
    w = EvaluateWidget(viewer)
    ref_layer = w.open_labels_file(tmp_path / "ref.nii.gz", "reference")
    pred_layer = w.open_labels_file(tmp_path / "pred.nrrd", "prediction")
    assert w.ref_combo.currentText() == ref_layer.name and w.pred_combo.currentText() == pred_layer.name
    np.testing.assert_allclose(ref_layer.scale, vol.spacing)
    with qtbot.waitSignal(w.run().finished, timeout=120_000):
        pass
    cells = {w.table.item(i, 0).text(): [w.table.item(i, j).text() for j in range(w.table.columnCount())]
             for i in range(w.table.rowCount())}
    # the missed kidneys: "not predicted", not Dice 0 / HD inf (friction 10)
    assert cells["kidneys"][1] == "not predicted" and "inf" not in cells["kidneys"]
    assert float(cells["liver"][1]) == 1.0 and "not predicted: kidneys" in w.status.text()
    # a real reference on another grid: opened, then refused with the reason; the old table is cleared
    real = tmp_path / "real.nii.gz"
    ct.write_labels(real, abdomen_3mm_labels.array, like=abdomen_3mm_labels)
    w.open_labels_file(real, "reference")
    assert w.run() is None and "same grid" in w.status.text()
    assert w.table.rowCount() == 0 and not w.export_button.isEnabled()
    # the resampling is offered as an action: a new layer on the reference grid, then Evaluate works
    assert w.resample_button.isVisible() or not w.resample_button.isHidden()
    with qtbot.waitSignal(w.resample_prediction().finished, timeout=120_000):
        pass
    resampled = viewer.layers[w.pred_combo.currentText()]
    assert resampled.data.shape == abdomen_3mm_labels.shape and resampled is not pred_layer
    assert pred_layer.data.shape == labels.shape  # the original prediction is unchanged
    with qtbot.waitSignal(w.run().finished, timeout=120_000):
        pass
    assert w.table.rowCount() >= 1
    # not a label map: a message, no layer
    (tmp_path / "bad.nii.gz").write_bytes(b"garbage")
    n = len(viewer.layers)
    assert w.open_labels_file(tmp_path / "bad.nii.gz") is None and "cannot open" in w.status.text()
    assert len(viewer.layers) == n
