"""The "Evaluate" dock widget: per-organ metrics of a prediction layer against a reference layer, CSV export,
and organ statistics (``ct.organ_statistics``) of one label layer over its CT; the statistics have their own status
line. An organ missing from the prediction is shown as "not predicted", never as Dice 0 / HD inf.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ..metrics import NOT_PREDICTED  # the API's wording of an organ missing on one side
from .step import Step, fill_combo

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
#: the metrics the table shows by default (the others with "all metrics", and always in the CSV): the panel's
#: width without scrolling sideways
MAIN_METRICS = ("organ", "dice", "assd", "hd95", "surface_dice")
#: (header, key of a ``ct.organ_statistics`` row) of the statistics table, in column order.
STATS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("organ", "name"), ("voxels", "voxels"), ("volume (mL)", "volume_ml"), ("mean HU", "hu_mean"),
    ("std HU", "hu_std"), ("pieces", "pieces"),
)


def _fmt(value) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else ("nan" if math.isnan(value) else f"{value:.4f}")
    return str(value)


def metric_cells(row) -> list[str]:
    """The table cells of one OrganMetrics row: an organ missing from one side is named, not scored 0 / inf."""
    cells = [_fmt(getattr(row, attr)) for _, attr in METRIC_COLUMNS]
    if row.status:  # an organ on one side only: named (ct.metrics.NOT_PREDICTED ...), not scored 0 / inf
        cells[1:] = [row.status] + ["\u2014"] * (len(cells) - 2)
    return cells


def _table(columns) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels([h for h, _ in columns])
    table.setMinimumHeight(150)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    return table


class EvaluateWidget(Step):
    """Compare a prediction Labels layer with a reference Labels layer; organ statistics of one Labels layer."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.rows: list = []  # OrganMetrics of the last evaluation
        self.stats: list[dict] = []
        self._chosen: set[str] = set()  # layers the user picked in the prediction / reference boxes

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
        self.button.clicked.connect(lambda: self.run())
        self.resample_button = QPushButton("Resample prediction onto the reference grid")
        self.resample_button.setToolTip("nearest-neighbour copy of the prediction on the reference's grid, as a "
                                        "new layer (the prediction layer stays as it is)")
        self.resample_button.clicked.connect(lambda: self.resample_prediction())
        self.resample_button.hide()
        self.table = _table(METRIC_COLUMNS)
        self.all_metrics = QCheckBox("all metrics")
        self.all_metrics.setToolTip("also IoU, VOE, RVD, MSSD and RMSD (the table then scrolls sideways); the CSV "
                                    "always has every metric")
        self.all_metrics.toggled.connect(self._show_all_metrics)
        self._show_all_metrics(False)
        self.export_button = QPushButton("Export CSV")
        self.export_button.setEnabled(False)
        self.export_button.clicked.connect(self._export_dialog)

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
        buttons.addWidget(self.all_metrics)

        self.stats_labels_combo = QComboBox()
        self.stats_image_combo = QComboBox()
        self.stats_image_combo.setToolTip("the CT (HU) the labels belong to")
        self.stats_button = QPushButton("Organ statistics")
        self.stats_button.clicked.connect(lambda: self.compute_statistics())
        self.stats_table = _table(STATS_COLUMNS)
        self.report_button = QPushButton("Save report...")
        self.report_button.setToolTip("the one-page PNG report (each organ through its centroid in three planes, "
                                      "outlined in its colour, with the table) and the table as CSV beside it")
        self.report_button.clicked.connect(self._report_dialog)
        self.stats_status = QLabel("")
        self.stats_status.setWordWrap(True)
        stats_box = QGroupBox("Organ statistics")
        stats_form = QFormLayout(stats_box)
        stats_form.addRow("labels", self.stats_labels_combo)
        stats_form.addRow("CT", self.stats_image_combo)
        stats_form.addRow(self.stats_button)
        stats_form.addRow(self.stats_status)
        stats_form.addRow(self.stats_table)
        stats_form.addRow(self.report_button)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.resample_button)
        layout.addWidget(self.table)
        layout.addWidget(stats_box)
        self.listen(self.viewer.layers.events.inserted, self._refresh)
        self.listen(self.viewer.layers.events.removed, self._refresh)
        self.listen(self.viewer.layers.events.changed, self._refresh)
        for combo in (self.pred_combo, self.ref_combo, self.stats_labels_combo, self.stats_image_combo):
            combo.currentIndexChanged.connect(self._update_buttons)
        for combo in (self.pred_combo, self.ref_combo):  # a choice of the user's (not a default) is kept
            combo.activated.connect(lambda _, c=combo: self._chosen.add(c.currentText()))
        self._refresh()

    # ---------------------------------------------------------------------------------------------------- layers
    def _refresh(self, *_):
        from .layers import ct_layer_names, labels_layer_names

        if self.closed:
            return
        labels = labels_layer_names(self.viewer)
        images = ct_layer_names(self.viewer)
        for combo, names in ((self.pred_combo, labels), (self.ref_combo, labels),
                             (self.stats_labels_combo, labels), (self.stats_image_combo, images)):
            fill_combo(combo, names)
        self._default_pair(labels)
        self._update_buttons()

    def _default_pair(self, labels: list[str]) -> None:
        """Unless the user chose them: the newest prediction as the prediction, and as the reference a Labels layer
        that is not a prediction (one opened or painted by the user before a tool's working layer)."""
        from .predict_widget import DIGEST_KEY
        from .working import _TOOL_RECORD

        layers = [self.viewer.layers[n] for n in labels]
        preds = [ly.name for ly in layers if DIGEST_KEY in (ly.metadata or {}) or ly.name.endswith("prediction")]
        if preds and self.pred_combo.currentText() not in self._chosen:
            self.pred_combo.setCurrentText(preds[-1])
        pred = self.pred_combo.currentText()
        refs = sorted((ly for ly in layers if ly.name not in preds and ly.name != pred),
                      key=lambda ly: ly in _TOOL_RECORD)  # stable: layer order within each kind
        ref = self.ref_combo.currentText()
        if refs and (ref not in self._chosen or ref == pred):
            self.ref_combo.setCurrentText(refs[0].name)

    def _update_buttons(self, *_):
        if self.closed:
            return
        busy = self.worker is not None
        self.button.setEnabled(not busy and bool(self.pred_combo.currentText()) and bool(self.ref_combo.currentText()))
        self.stats_button.setEnabled(bool(self.stats_labels_combo.currentText())
                                     and bool(self.stats_image_combo.currentText()))
        self.report_button.setEnabled(bool(self.stats))
        self.resample_button.setEnabled(not busy)
        if not busy:
            self.hint(None if self.pred_combo.currentText()
                      else "open or predict a Labels layer, and open its reference (File... buttons)")

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    def _show_all_metrics(self, on: bool) -> None:
        """Show every metric column (scrolling sideways), or the main ones fitted to the panel's width."""
        header = self.table.horizontalHeader()
        for j, (_, attr) in enumerate(METRIC_COLUMNS):
            self.table.setColumnHidden(j, not on and attr not in MAIN_METRICS)
            header.setSectionResizeMode(j, QHeaderView.ResizeMode.ResizeToContents if on or j == 0
                                        else QHeaderView.ResizeMode.Stretch)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded if on
                                                else Qt.ScrollBarPolicy.ScrollBarAlwaysOff)

    def _clear(self) -> None:
        self.rows = []
        self.table.setRowCount(0)
        self.export_button.setEnabled(False)

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
            self.say(f"cannot open {path}: {exc}")
            return None
        mine, other = (self.pred_combo, self.ref_combo) if role == "prediction" else (self.ref_combo, self.pred_combo)
        keep = other.currentText()  # the other role's choice stays as it was
        layer = self.viewer.add_labels(vol.array, **labels_layer_kwargs(vol))
        mine.setCurrentText(layer.name)
        self._chosen.add(layer.name)
        if keep and keep != layer.name and other.findText(keep) >= 0:
            other.setCurrentText(keep)
            self._chosen.add(keep)
        self.say(f"opened {Path(path).name} as the {role} layer '{layer.name}'")
        return layer

    def _open_dialog(self, role: str):
        path, _ = QFileDialog.getOpenFileName(self, f"Open {role} labels", "",
                                              "Label maps (*.nii.gz *.nii *.nrrd *.mha *.mhd);;All files (*)")
        if path:
            self.open_labels_file(path, role)

    # ---------------------------------------------------------------------------------------------------- metrics
    def _pair(self):
        """The prediction and reference Volumes, and why they cannot be compared (None when they can)."""
        from .layers import volume_from_layer

        pred_name, ref_name = self.pred_combo.currentText(), self.ref_combo.currentText()
        if not pred_name or not ref_name:
            return None, None, "choose a prediction and a reference Labels layer first"
        try:
            pred = volume_from_layer(self.viewer.layers[pred_name])
            ref = volume_from_layer(self.viewer.layers[ref_name])
        except (ValueError, TypeError, KeyError) as exc:
            return None, None, f"cannot evaluate: {exc}"
        if pred.shape != ref.shape:
            return pred, ref, (f"cannot evaluate: '{pred_name}' has shape {pred.shape} but '{ref_name}' has shape "
                               f"{ref.shape}; both layers must be on the same grid: press Resample below")
        if not np.allclose(pred.spacing, ref.spacing, rtol=1e-4):
            return pred, ref, (f"cannot evaluate: '{pred_name}' has spacing {pred.spacing} mm but '{ref_name}' has "
                               f"{ref.spacing} mm; both layers must be on the same grid: press Resample below")
        return pred, ref, None

    def run(self):
        """Evaluate in a worker thread; returns the worker, or None (message in the widget) when inputs are wrong."""
        from .. import metrics

        pred, ref, problem = self._pair()
        self._clear()  # a refused or new comparison never leaves the previous table standing
        self.resample_button.setVisible(problem is not None and pred is not None)
        if problem:
            self.say(problem)
            return None
        pred_name, ref_name = self.pred_combo.currentText(), self.ref_combo.currentText()
        tol = float(self.tolerance.value())
        pred_arr, ref_arr, spacing = np.asarray(pred.array), np.asarray(ref.array), tuple(ref.spacing)

        def work():
            return metrics.evaluate(pred_arr, ref_arr, spacing=spacing, tolerance_mm=tol, case=pred_name)

        self.say(f"evaluating '{pred_name}' against '{ref_name}'...")
        return self.start_job(work, what="evaluation", on_result=self._show)

    def resample_prediction(self):
        """Put the prediction onto the reference's grid (nearest neighbour) as a new layer, chosen as the prediction.

        Runs in a worker; returns it (None when the layers cannot be read; the status line says why).
        """
        from .. import resample

        pred, ref, problem = self._pair()
        if pred is None:
            self.say(problem or "nothing to resample")
            return None
        name = f"{self.pred_combo.currentText()} on {self.ref_combo.currentText()} grid"

        def done(vol):
            from .layers import labels_layer_kwargs

            layer = self.viewer.add_labels(np.asarray(vol.array), **labels_layer_kwargs(vol, name=name))
            self.pred_combo.setCurrentText(layer.name)
            self._chosen.add(layer.name)
            self.resample_button.hide()
            self.say(f"resampled into '{layer.name}' (the original layer is unchanged); press Evaluate")

        self.say("resampling the prediction onto the reference grid...")
        return self.start_job(lambda: resample(pred, kind="labels", like=ref), what="resampling", on_result=done)

    def _show(self, rows):
        self.rows = list(rows)
        self.table.setRowCount(len(self.rows))
        for i, row in enumerate(self.rows):
            for j, text in enumerate(metric_cells(row)):
                item = QTableWidgetItem(text)
                item.setToolTip(text)  # a cell too narrow for "not predicted" still says it
                self.table.setItem(i, j, item)
        self.table.resizeColumnsToContents()
        self.export_button.setEnabled(bool(self.rows))
        missing = [r.organ for r in self.rows if r.status == NOT_PREDICTED]
        text = f"{len(self.rows)} organ(s) evaluated" if self.rows else "no organ in either layer"
        self.say(text + (f"; not predicted: {', '.join(missing)}" if missing else ""))

    def export_csv(self, path) -> Path:
        """Write the last evaluation table to ``path`` (all columns of ``ct.metrics.write_csv``)."""
        from ..metrics import write_csv

        if not self.rows:
            raise ValueError("nothing to export: press Evaluate first")
        out = write_csv(self.rows, path)
        self.say(f"wrote {out}")
        return out

    def _export_dialog(self):
        path, _ = QFileDialog.getSaveFileName(self, "Export metrics", "metrics.csv", "CSV files (*.csv)")
        if path:
            try:
                self.export_csv(path)
            except (OSError, ValueError) as exc:
                self.say(f"cannot export: {exc}")

    # ---------------------------------------------------------------------------------------------------- statistics
    def compute_statistics(self) -> list[dict]:
        """Per organ of the chosen Labels layer over its CT (``ct.organ_statistics``); shown in the table."""
        from .. import organ_statistics
        from .layers import volume_from_layer

        name, image_name = self.stats_labels_combo.currentText(), self.stats_image_combo.currentText()
        self.stats = []
        self.stats_table.setRowCount(0)
        self.report_button.setEnabled(False)
        if not name or not image_name:
            self.stats_status.setText("choose a Labels layer and the CT it belongs to")
            return []
        try:
            labels = volume_from_layer(self.viewer.layers[name])
            image = volume_from_layer(self.viewer.layers[image_name])
            if image.shape != labels.shape:
                raise ValueError(f"'{name}' has shape {labels.shape} but '{image_name}' has shape {image.shape}; "
                                 "choose the CT the labels belong to")
            self.stats = organ_statistics(labels.array, image)
        except (ValueError, TypeError, KeyError) as exc:
            self.stats_status.setText(f"cannot compute statistics: {exc}")
            return []
        self.stats_table.setRowCount(len(self.stats))
        for i, row in enumerate(self.stats):
            for j, (_, key) in enumerate(STATS_COLUMNS):
                self.stats_table.setItem(i, j, QTableWidgetItem(_fmt(row[key])))
        self.stats_table.resizeColumnsToContents()
        self.stats_status.setText(f"statistics of {len(self.stats)} organ(s) in '{name}' over '{image_name}'")
        self.report_button.setEnabled(bool(self.stats))
        return self.stats

    def _report_args(self, png_path, overwrite: bool) -> tuple:
        """The arguments of :func:`.jobs.write_report_files` (the files checked first: nothing is written when one
        exists and ``overwrite`` is False)."""
        from .layers import volume_from_layer

        if not self.stats:
            raise ValueError("nothing to save: press Organ statistics first")
        png = Path(png_path).with_suffix(".png")
        table = png.with_suffix(".csv")
        for path in (png, table):
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} exists; choose another name (nothing was written)")
        title = self.stats_labels_combo.currentText()
        labels = volume_from_layer(self.viewer.layers[title])
        image = volume_from_layer(self.viewer.layers[self.stats_image_combo.currentText()])
        return png, table, np.array(labels.array, copy=True), image, list(self.stats), title, overwrite

    def save_report(self, png_path, *, overwrite: bool = False) -> tuple[Path, Path]:
        """Write the PNG report of the last statistics and their table as CSV beside it (same name, ``.csv``)."""
        from .jobs import write_report_files

        png, table = write_report_files(*self._report_args(png_path, overwrite))
        self.stats_status.setText(f"wrote {png.name} and {table.name} in {png.parent}")
        return png, table

    def start_report(self, png_path, *, overwrite: bool = False):
        """:meth:`save_report` in a separate process (matplotlib holds the GIL while it draws, which would freeze
        the viewer even in a thread); returns the worker, or None with the reason in the statistics' status line."""
        from .jobs import write_report_files
        from .process import in_process

        try:
            args = self._report_args(png_path, overwrite)
        except (OSError, ValueError, KeyError) as exc:
            self.stats_status.setText(f"cannot save the report: {exc}")
            return None

        def work():
            return (yield from in_process(write_report_files, *args))

        def done(paths):
            self.stats_status.setText(f"wrote {paths[0].name} and {paths[1].name} in {paths[0].parent}")

        self.stats_status.setText(f"saving the report {args[0].name}...")
        return self.start_job(work, what="saving the report", on_result=done)

    def _report_dialog(self) -> QFileDialog:
        """A save dialog (non-blocking, ``self.report_dialog``); the file chosen is written by :meth:`start_report`."""
        dialog = QFileDialog(self, "Save organ report", "organ_report.png", "PNG files (*.png)")
        dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("png")
        # the dialog has already asked before replacing a file
        dialog.fileSelected.connect(lambda path: self.start_report(path, overwrite=True))
        dialog.open()
        self.report_dialog = dialog
        return dialog
