"""The "Evaluate" dock widget: per-organ metrics of a prediction layer against a reference layer, CSV export,
and organ statistics (volume in mL, mean and standard deviation of HU) of one label layer over a CT layer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: (header, OrganMetrics attribute) of the metrics table, in column order.
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("organ", "organ"),
    ("Dice", "dice"),
    ("IoU", "iou"),
    ("VOE", "voe"),
    ("RVD", "rvd"),
    ("ASSD (mm)", "assd"),
    ("MSSD (mm)", "mssd"),
    ("RMSD (mm)", "rmsd"),
    ("HD95 (mm)", "hd95"),
    ("surface Dice", "surface_dice"),
)
STATS_COLUMNS: tuple[str, ...] = ("organ", "voxels", "volume (mL)", "mean HU", "std HU")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else ("nan" if math.isnan(value) else f"{value:.4f}")
    return str(value)


def organ_statistics(labels: np.ndarray, image: np.ndarray | None, spacing) -> list[dict]:
    """Per organ present in ``labels``: voxel count, volume in mL and, with ``image``, mean and std of HU."""
    from ..organs import IGNORE_LABEL, ORGANS

    labels = np.asarray(labels)
    voxel_ml = float(np.prod(spacing)) / 1000.0
    flat = labels.ravel()
    values = [int(v) for v in np.unique(flat) if v != 0 and v != IGNORE_LABEL]
    rows = []
    hu = None if image is None else np.asarray(image).ravel()
    for value in values:
        mask = flat == value
        n = int(np.count_nonzero(mask))
        row = {"label": value, "organ": ORGANS[value].name if value in ORGANS else f"label {value}",
               "voxels": n, "volume_ml": n * voxel_ml, "mean_hu": math.nan, "std_hu": math.nan}
        if hu is not None:
            sel = hu[mask].astype(np.float64)  # organ voxels only: small next to the volume
            row["mean_hu"], row["std_hu"] = float(sel.mean()), float(sel.std())
        rows.append(row)
    return rows


class EvaluateWidget(QWidget):
    """Compare a prediction Labels layer with a reference Labels layer; organ statistics of one Labels layer."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.rows: list = []  # OrganMetrics of the last evaluation
        self.stats: list[dict] = []

        self.pred_combo = QComboBox()
        self.pred_combo.setToolTip("the predicted Labels layer")
        self.ref_combo = QComboBox()
        self.ref_combo.setToolTip("the reference (ground truth) Labels layer, on the same grid")
        self.tolerance = QDoubleSpinBox()
        self.tolerance.setRange(0.0, 100.0)
        self.tolerance.setSingleStep(0.5)
        self.tolerance.setValue(2.0)
        self.tolerance.setSuffix(" mm")
        self.tolerance.setToolTip("surface Dice tolerance")
        self.open_pred_button = QPushButton("File...")
        self.open_pred_button.setToolTip("open a label file (NIfTI, NRRD, MHA) as the prediction layer")
        self.open_pred_button.clicked.connect(lambda: self._open_dialog("prediction"))
        self.open_ref_button = QPushButton("File...")
        self.open_ref_button.setToolTip("open a label file (NIfTI, NRRD, MHA) as the reference layer")
        self.open_ref_button.clicked.connect(lambda: self._open_dialog("reference"))
        self.button = QPushButton("Evaluate")
        self.button.clicked.connect(self.run)
        self.table = QTableWidget(0, len(METRIC_COLUMNS))
        self.table.setHorizontalHeaderLabels([h for h, _ in METRIC_COLUMNS])
        self.export_button = QPushButton("Export CSV")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        form = QFormLayout()
        for text, combo, opener in (("prediction", self.pred_combo, self.open_pred_button),
                                    ("reference", self.ref_combo, self.open_ref_button)):
            row = QHBoxLayout()
            row.addWidget(combo, 1)
            row.addWidget(opener)
            form.addRow(text, row)
        form.addRow("tolerance", self.tolerance)
        buttons = QHBoxLayout()
        buttons.addWidget(self.button)
        buttons.addWidget(self.export_button)

        self.stats_labels_combo = QComboBox()
        self.stats_image_combo = QComboBox()
        self.stats_image_combo.setToolTip("CT Image layer in HU (optional: without it only volumes are shown)")
        self.stats_button = QPushButton("Organ statistics")
        self.stats_button.clicked.connect(self.compute_statistics)
        self.stats_table = QTableWidget(0, len(STATS_COLUMNS))
        self.stats_table.setHorizontalHeaderLabels(list(STATS_COLUMNS))
        stats_box = QGroupBox("Organ statistics")
        stats_form = QFormLayout(stats_box)
        stats_form.addRow("labels", self.stats_labels_combo)
        stats_form.addRow("CT", self.stats_image_combo)
        stats_form.addRow(self.stats_button)
        stats_form.addRow(self.stats_table)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.table)
        layout.addWidget(stats_box)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self.viewer.layers.events.changed.connect(self._refresh)
        self._refresh()

    # ---------------------------------------------------------------------------------------------------- layers
    def _refresh(self, *_):
        from napari.layers import Image, Labels

        labels = [layer.name for layer in self.viewer.layers if isinstance(layer, Labels)]
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        for combo, names in ((self.pred_combo, labels), (self.ref_combo, labels),
                             (self.stats_labels_combo, labels), (self.stats_image_combo, ["(none)", *images])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            if current and combo.findText(current) >= 0:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        if self.ref_combo.currentText() == self.pred_combo.currentText() and len(labels) > 1:
            self.ref_combo.setCurrentIndex(1 if self.pred_combo.currentIndex() == 0 else 0)
        if self.stats_image_combo.currentText() == "(none)" and images:
            self.stats_image_combo.setCurrentText(images[0])

    def open_labels_file(self, path, role: str = "reference"):
        """Open a label file as a Labels layer (organ names and colours, the file's geometry) and select it as the
        ``prediction`` or ``reference``; returns the layer, or None with the reason in the status line."""
        from ..io import read_labels
        from .layers import labels_layer_kwargs

        if role not in ("prediction", "reference"):
            raise ValueError(f"role must be 'prediction' or 'reference', got {role!r}")
        try:
            vol = read_labels(path)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            self.status.setText(f"cannot open {path}: {exc}")
            return None
        mine, other = (self.pred_combo, self.ref_combo) if role == "prediction" else (self.ref_combo, self.pred_combo)
        keep = other.currentText()  # the other role's choice stays as it was
        layer = self.viewer.add_labels(vol.array, **labels_layer_kwargs(vol))
        mine.setCurrentText(layer.name)
        if keep and keep != layer.name and other.findText(keep) >= 0:
            other.setCurrentText(keep)
        self.status.setText(f"opened {Path(path).name} as the {role} layer '{layer.name}'")
        return layer

    def _open_dialog(self, role: str):
        path, _ = QFileDialog.getOpenFileName(self, f"Open {role} labels", "",
                                              "Label maps (*.nii.gz *.nii *.nrrd *.mha *.mhd);;All files (*)")
        if path:
            self.open_labels_file(path, role)

    # ---------------------------------------------------------------------------------------------------- metrics
    def run(self):
        """Evaluate in a worker thread; returns the worker, or None (message in the widget) when inputs are wrong."""
        from napari.qt.threading import thread_worker

        from ..metrics import evaluate
        from .layers import volume_from_layer

        pred_name, ref_name = self.pred_combo.currentText(), self.ref_combo.currentText()
        if not pred_name or not ref_name:
            self.status.setText("choose a prediction and a reference Labels layer first")
            return None
        try:
            pred = volume_from_layer(self.viewer.layers[pred_name])
            ref = volume_from_layer(self.viewer.layers[ref_name])
        except (ValueError, TypeError, KeyError) as exc:
            self.status.setText(f"cannot evaluate: {exc}")
            return None
        if pred.shape != ref.shape:
            self.status.setText(
                f"cannot evaluate: '{pred_name}' has shape {pred.shape} but '{ref_name}' has shape {ref.shape}; "
                "both layers must be on the same grid (resample the prediction to the reference first)"
            )
            return None
        if not np.allclose(pred.spacing, ref.spacing, rtol=1e-4):
            self.status.setText(
                f"cannot evaluate: '{pred_name}' has spacing {pred.spacing} mm but '{ref_name}' has {ref.spacing} mm; "
                "both layers must be on the same grid"
            )
            return None
        tol = float(self.tolerance.value())
        pred_arr, ref_arr, spacing = np.asarray(pred.array), np.asarray(ref.array), tuple(ref.spacing)

        @thread_worker
        def work():
            try:
                return evaluate(pred_arr, ref_arr, spacing=spacing, tolerance_mm=tol, case=pred_name)
            except (ValueError, TypeError, MemoryError) as exc:  # shown in the widget, not raised into the viewer
                return exc

        self.worker = work()
        self.worker.returned.connect(self._show)
        self.worker.finished.connect(self._finished)
        self.button.setEnabled(False)
        self.status.setText(f"evaluating '{pred_name}' against '{ref_name}'...")
        self.worker.start()
        return self.worker

    def _finished(self):
        self.button.setEnabled(True)
        self.worker = None

    def _show(self, rows):
        if isinstance(rows, Exception):
            self.status.setText(f"evaluation failed: {rows}")
            return
        self.rows = list(rows)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, (_, attr) in enumerate(METRIC_COLUMNS):
                self.table.setItem(i, j, QTableWidgetItem(_fmt(getattr(row, attr))))
        self.table.resizeColumnsToContents()
        self.export_button.setEnabled(bool(self.rows))
        self.status.setText(f"{len(self.rows)} organ(s) evaluated" if self.rows else "no organ in either layer")

    def export_csv(self, path) -> Path:
        """Write the last evaluation table to ``path`` (all columns of ``ct.metrics.write_csv``)."""
        from ..metrics import write_csv

        if not self.rows:
            raise ValueError("nothing to export: press Evaluate first")
        out = write_csv(self.rows, path)
        self.status.setText(f"wrote {out}")
        return out

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except (OSError, ValueError) as exc:
                self.status.setText(f"cannot export: {exc}")

    # ---------------------------------------------------------------------------------------------------- statistics
    def compute_statistics(self) -> list[dict]:
        """Volume (mL), mean and std HU per organ of the chosen Labels layer; shown in the statistics table."""
        from .layers import volume_from_layer

        name, image_name = self.stats_labels_combo.currentText(), self.stats_image_combo.currentText()
        if not name:
            self.status.setText("choose a Labels layer for the organ statistics")
            return []
        try:
            labels = volume_from_layer(self.viewer.layers[name])
            image = None
            if image_name and image_name != "(none)":
                image = volume_from_layer(self.viewer.layers[image_name])
        except (ValueError, TypeError, KeyError) as exc:
            self.status.setText(f"cannot compute statistics: {exc}")
            return []
        if image is not None and image.shape != labels.shape:
            self.status.setText(
                f"cannot compute statistics: '{name}' has shape {labels.shape} but '{image_name}' has shape "
                f"{image.shape}; choose the CT the labels belong to"
            )
            return []
        self.stats = organ_statistics(labels.array, None if image is None else image.array, labels.spacing)
        self.stats_table.setRowCount(len(self.stats))
        for i, row in enumerate(self.stats):
            cells = (row["organ"], row["voxels"], row["volume_ml"], row["mean_hu"], row["std_hu"])
            for j, value in enumerate(cells):
                self.stats_table.setItem(i, j, QTableWidgetItem(_fmt(value)))
        self.stats_table.resizeColumnsToContents()
        self.status.setText(f"statistics of {len(self.stats)} organ(s) in '{name}'")
        return self.stats
