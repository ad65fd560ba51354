"""The "Train" dock widget: cases from layers or a folder, settings, Start/Pause/Stop, live loss curve and Dice."""

from __future__ import annotations

import json
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np
from qtpy.QtCore import QPointF
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

#: checkpoints written by Train widgets in this session, newest last (the Predict widget offers them)
TRAINED_CHECKPOINTS: list[str] = []

#: the open Train widgets (the Predict widget's "Add to training set" finds the one of its viewer here)
_TRAIN_WIDGETS: "weakref.WeakSet[TrainWidget]" = weakref.WeakSet()


def train_widget_for(viewer) -> "TrainWidget | None":
    """The Train widget open in ``viewer`` (the most recently created one), or None."""
    found = [w for w in list(_TRAIN_WIDGETS) if w.viewer is viewer]
    return max(found, key=lambda w: w._serial) if found else None


class CurvePlot(QWidget):
    """A tiny line plot (QPainter): training loss in blue, validation mean Dice in orange, on [0, 1]."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.train_points: list[tuple[int, float]] = []
        self.val_points: list[tuple[int, float]] = []
        self.setMinimumHeight(120)

    def clear(self):
        self.train_points.clear()
        self.val_points.clear()
        self.update()

    def add(self, iteration: int, loss: float, val: float | None = None):
        self.train_points.append((iteration, float(loss)))
        if val is not None:
            self.val_points.append((iteration, float(val)))
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(38, 41, 48))
        w, h, m = self.width(), self.height(), 6
        n = max([i for i, _ in self.train_points] + [1])
        top = max([v for _, v in self.train_points] + [1.0])

        def pt(i, v):
            return QPointF(m + (w - 2 * m) * i / n, h - m - (h - 2 * m) * min(max(v / top, 0), 1))

        for pts, colour in ((self.train_points, QColor(80, 160, 255)), (self.val_points, QColor(255, 160, 40))):
            if len(pts) < 2:
                if pts:
                    p.setPen(QPen(colour, 4))
                    p.drawPoint(pt(*pts[0]))
                continue
            p.setPen(QPen(colour, 1.5))
            for (i0, v0), (i1, v1) in zip(pts, pts[1:]):
                p.drawLine(pt(i0, v0), pt(i1, v1))
        p.setPen(QColor(200, 200, 200))
        p.drawText(m + 2, 14, "loss (blue), val Dice (orange)")
        p.end()


class TrainWidget(QWidget):
    """Train a model on Image + Labels layer pairs or a folder of cases, in a worker thread."""

    def __init__(self, napari_viewer):
        super().__init__()
        from ..nn import MODEL_PRESETS
        from ..nn.losses import LOSSES
        from ..train import TRAIN_PRESETS

        self.viewer = napari_viewer
        self.worker = None
        self.statuses: list = []
        self.checkpoint: str | None = None
        self._stop = False
        self._paused = False
        # (image layer, labels layer) names, or (Volume, labels array) snapshots from "Add to training set"
        self.cases: list[tuple] = []
        self._serial = time.monotonic_ns()
        _TRAIN_WIDGETS.add(self)

        self.image_combo, self.labels_combo = QComboBox(), QComboBox()
        add = QPushButton("Add pair")
        add.setToolTip("add the chosen Image + Labels layers as a training case")
        add.clicked.connect(self.add_pair)
        self.case_list = QListWidget()
        self.case_list.setMaximumHeight(70)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("or a folder (CT-ORG or imagesTr/labelsTr)")
        self.hold_out = QCheckBox("validate on the last case")
        self.hold_out.setToolTip("keep the last case out of training and report its per-organ Dice")

        self.preset = QComboBox()
        self.preset.addItems(sorted(TRAIN_PRESETS))
        self.preset.setCurrentText("cpu-quick")
        self.preset.currentTextChanged.connect(self._apply_preset)
        self.model = QComboBox()
        self.model.addItems(sorted(MODEL_PRESETS))
        self.loss = QComboBox()
        self.loss.addItems(list(LOSSES))
        self.weighting = QComboBox()
        self.weighting.addItems(["uniform", "simple", "square"])
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(1e-5, 1.0)
        self.lr.setSingleStep(1e-3)
        self.iterations = QSpinBox()
        self.iterations.setRange(1, 1_000_000)
        self.crop = QSpinBox()
        self.crop.setRange(8, 256)
        self.crop.setSingleStep(8)
        self.augment_json = QLineEdit()
        self.augment_json.setPlaceholderText("augmentation parameters JSON file (optional)")
        self.output_dir = QLineEdit(str(Path(tempfile.gettempdir()) / "ctorgans-runs" / "run"))
        self.overwrite = QCheckBox("replace checkpoints in the folder")

        self.start_button, self.pause_button, self.stop_button = (QPushButton(t) for t in ("Start", "Pause", "Stop"))
        self.start_button.clicked.connect(self.start)
        self.finetune_button = QPushButton("Fine-tune")
        self.finetune_button.setToolTip("continue training from the current checkpoint on all cases (including "
                                        "corrected ones) into a new output folder")
        self.finetune_button.clicked.connect(lambda: self.fine_tune())
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.plot = CurvePlot()
        self.dice_label = QLabel("")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        pair = QHBoxLayout()
        pair.addWidget(self.image_combo)
        pair.addWidget(self.labels_combo)
        pair.addWidget(add)
        form = QFormLayout()
        form.addRow("preset", self.preset)
        form.addRow("model", self.model)
        form.addRow("loss", self.loss)
        form.addRow("class weighting", self.weighting)
        form.addRow("learning rate", self.lr)
        form.addRow("iterations", self.iterations)
        form.addRow("crop size", self.crop)
        form.addRow("augmentation", self.augment_json)
        form.addRow("output folder", self.output_dir)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.finetune_button, self.pause_button, self.stop_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("cases: Image + Labels layers"))
        layout.addLayout(pair)
        layout.addWidget(self.case_list)
        layout.addWidget(self.folder)
        layout.addWidget(self.hold_out)
        layout.addLayout(form)
        layout.addWidget(self.overwrite)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot)
        layout.addWidget(self.dice_label)
        layout.addWidget(self.status)
        layout.addStretch()

        self._apply_preset("cpu-quick")
        self._busy(False)
        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    # settings -----------------------------------------------------------------------------------------------------
    def _apply_preset(self, name: str):
        from ..train import TrainConfig

        cfg = TrainConfig.preset(name)
        if isinstance(cfg.model, str):
            self.model.setCurrentText(cfg.model)
        self.loss.setCurrentText(cfg.loss)
        self.weighting.setCurrentText(cfg.class_weighting)
        self.lr.setValue(cfg.learning_rate)
        self.iterations.setValue(cfg.iterations)
        self.crop.setValue(int(cfg.crop_size[0]))

    def _refresh(self, *_):
        from napari.layers import Image, Labels

        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            current = combo.currentText()
            combo.clear()
            combo.addItems([layer.name for layer in self.viewer.layers if isinstance(layer, kind)])
            if current and combo.findText(current) >= 0:
                combo.setCurrentText(current)

    def add_pair(self, image: str | None = None, labels: str | None = None):
        image = image or self.image_combo.currentText()
        labels = labels or self.labels_combo.currentText()
        if not image or not labels:
            self.status.setText("choose an Image and a Labels layer first")
            return
        self.cases.append((image, labels))
        self.case_list.addItem(f"{image} + {labels}")

    def add_snapshot(self, volume, labels, name: str = "corrected case"):
        """Add a training case from copies of a CT Volume and its label map (later edits do not change it)."""
        from ..volume import Volume

        if not isinstance(volume, Volume):
            raise TypeError(f"volume must be a napari_ctorgans Volume, got {type(volume).__name__}")
        labels = np.array(labels, copy=True)
        if labels.shape != volume.shape:
            raise ValueError(f"labels {labels.shape} must have the CT's shape {volume.shape}")
        snapshot = Volume.from_geometry(np.array(volume.array, copy=True), volume.geometry())
        self.cases.append((snapshot, labels))
        self.case_list.addItem(f"{name} (snapshot)")
        self.status.setText(f"added {name!r} to the training set ({len(self.cases)} cases)")

    def config(self):
        """The TrainConfig from the widget's fields."""
        from ..train import TrainConfig

        changes = {}
        if self.augment_json.text().strip():  # otherwise the preset's augmentation
            changes["augment"] = json.loads(Path(self.augment_json.text().strip()).read_text())
        crop = int(self.crop.value())
        return TrainConfig.preset(
            self.preset.currentText(), model=self.model.currentText(), loss=self.loss.currentText(),
            class_weighting=self.weighting.currentText(), learning_rate=float(self.lr.value()),
            iterations=int(self.iterations.value()), crop_size=(crop, crop, crop),
            output_dir=self.output_dir.text().strip() or None, **changes,
        )

    def _case_data(self):
        from .layers import volume_from_layer

        if self.folder.text().strip():
            from ..train import find_cases

            cases = [tuple(map(str, p)) for p in find_cases(self.folder.text().strip())]
        else:
            if not self.cases:
                raise ValueError("add at least one Image + Labels pair (or give a folder of cases)")
            cases = []
            for img_name, lab_name in self.cases:
                if not isinstance(img_name, str):  # a snapshot: (Volume, labels)
                    cases.append((img_name, lab_name))
                    continue
                vol = volume_from_layer(self.viewer.layers[img_name])
                lab = np.asarray(self.viewer.layers[lab_name].data)
                if lab.shape != vol.shape:
                    raise ValueError(f"labels layer {lab_name!r} {lab.shape} does not match image {img_name!r} "
                                     f"{vol.shape}")
                cases.append((vol, lab.copy()))
        if self.hold_out.isChecked():
            if len(cases) < 2:
                raise ValueError("validating on the last case needs at least two cases")
            return cases[:-1], cases[-1:]
        return cases, None

    # running ------------------------------------------------------------------------------------------------------
    def start(self):
        """Train with the widget's settings in a worker thread; returns the worker (None when it cannot start)."""
        try:
            cfg = self.config()
        except (ValueError, TypeError, OSError) as exc:
            self.status.setText(f"cannot start: {exc}")
            return None
        return self._launch(cfg, overwrite=self.overwrite.isChecked())

    def fine_tune(self, checkpoint: str | None = None):
        """Continue training from ``checkpoint`` (default: the current one) on all cases, into a new folder.

        The weights come from the checkpoint (with a fresh optimiser, ``TrainConfig.init_checkpoint``), the model
        and working spacing from the checkpoint's own configuration, the other settings from the widget. The run
        goes to ``<output folder>-finetune-N`` (the first N that does not exist), so the previous run's checkpoints
        are never replaced. Returns the worker, or None when it cannot start.
        """
        from ..train import read_checkpoint

        checkpoint = checkpoint or self.checkpoint or (TRAINED_CHECKPOINTS[-1] if TRAINED_CHECKPOINTS else None)
        if not checkpoint:
            self.status.setText("cannot fine-tune: train a model first (or choose a checkpoint)")
            return None
        try:
            info = read_checkpoint(checkpoint)
            cfg = self.config()
        except (ValueError, TypeError, OSError) as exc:
            self.status.setText(f"cannot fine-tune: {exc}")
            return None
        base = Path(self.output_dir.text().strip() or Path(checkpoint).parent)
        stem = base.name.split("-finetune-")[0]
        n = 1
        while (base.parent / f"{stem}-finetune-{n}").exists():
            n += 1
        out = base.parent / f"{stem}-finetune-{n}"
        spacing = (info.get("train_config") or {}).get("spacing", cfg.spacing)
        cfg = cfg.replace(model=dict(info["model_config"]), spacing=float(spacing), init_checkpoint=str(checkpoint),
                          output_dir=str(out))
        self.output_dir.setText(str(out))
        return self._launch(cfg, overwrite=False, verb="fine-tuning")

    def _launch(self, cfg, *, overwrite: bool, verb: str = "training"):
        from napari.qt.threading import thread_worker

        from ..train import train

        try:
            train_cases, val_cases = self._case_data()
            gen = train(cfg, train_cases, val_cases, overwrite=overwrite)
        except (ValueError, TypeError, FileExistsError, FileNotFoundError, OSError) as exc:
            self.status.setText(f"cannot {'start' if verb == 'training' else 'fine-tune'}: {exc}")
            return None
        self._stop = False
        self._paused = False
        self.statuses.clear()
        self.plot.clear()
        self.progress.setRange(0, cfg.iterations)
        self.progress.setValue(0)

        @thread_worker
        def work():
            try:
                for status in gen:
                    yield status
                    while self._paused and not self._stop:
                        time.sleep(0.05)
                    if self._stop:
                        break
            finally:
                gen.close()  # writes last.pt (atomically) if the run was stopped between checkpoints

        self.worker = work()
        self.worker.yielded.connect(self._on_status)
        self.worker.errored.connect(lambda exc: self.status.setText(f"training failed: {exc}"))
        self.worker.finished.connect(self._finished)
        self._busy(True)
        self.status.setText(f"{verb}...")
        self.worker.start()
        return self.worker

    def toggle_pause(self):
        if self.worker is None:
            return
        if self._paused:
            self._paused = False
            self.pause_button.setText("Pause")
            self.status.setText("training...")
        else:
            self._paused = True  # the worker waits after the current iteration
            self.pause_button.setText("Resume")
            self.status.setText("paused")

    def stop(self):
        if self.worker is None:
            return
        self._stop = True
        self._paused = False
        self.status.setText("stopping after this iteration...")

    def _on_status(self, status):
        self.statuses.append(status)
        self.progress.setValue(status.iteration)
        self.plot.add(status.iteration, status.loss, status.val_score)
        if status.val_dice:
            self.dice_label.setText("val Dice: " + ", ".join(f"{k} {v:.2f}" for k, v in status.val_dice.items()))
        if status.checkpoint:
            self.checkpoint = status.checkpoint
        notes = [status.message, *status.warnings]
        text = f"iteration {status.iteration}/{status.iterations}, loss {status.loss:.4f}"
        if status.augment_on:
            text += ", augmenting"
        self.status.setText("; ".join([text, *[n for n in notes if n]]))

    def _finished(self):
        cfg_dir = self.output_dir.text().strip()
        last = Path(cfg_dir) / "last.pt" if cfg_dir else None
        if last is not None and last.exists():
            self.checkpoint = str(last)
            TRAINED_CHECKPOINTS.append(str(last))
            best = last.with_name("best.pt")
            if best.exists():
                TRAINED_CHECKPOINTS.append(str(best))
        done = self.statuses[-1].iteration if self.statuses else 0
        if not self.status.text().startswith("training failed"):
            self.status.setText(f"stopped at iteration {done}; checkpoint {self.checkpoint}" if self._stop
                                else f"finished {done} iterations; checkpoint {self.checkpoint}")
        self._busy(False)
        self.worker = None

    def _busy(self, busy: bool):
        self.start_button.setEnabled(not busy)
        self.finetune_button.setEnabled(not busy)
        self.pause_button.setEnabled(busy)
        self.stop_button.setEnabled(busy)
        self.pause_button.setText("Pause")
