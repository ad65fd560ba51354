"""Dock widget "Augmentation preview": tune the augmentation ranges on a real CT and see random draws live.

Every parameter of :class:`~napari_ctorgans.AugmentParams` has a range slider (per axis where it applies). Changes
are debounced, the augmentation runs in a worker thread (never on the GUI thread), and only the latest request is
shown. The augmented image and labels appear as layers to the right of the source CT. "Save parameters" writes the
JSON file that training reads (``AugmentParams.load``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleRangeSlider, QLabeledDoubleSlider

from ..augment import AugmentParams, augment

IMAGE_NAME = "augmented image"
LABELS_NAME = "augmented labels"
AXES = ("z", "y", "x")

# field, per-axis?, slider bounds, decimals
RANGES: list[tuple[str, bool, tuple[float, float], int]] = [
    ("rotation_deg", True, (-45.0, 45.0), 1),
    ("scale", True, (0.5, 1.5), 2),
    ("displacement", True, (-40.0, 40.0), 1),
    ("shear", False, (-0.3, 0.3), 3),
    ("affine", False, (-0.2, 0.2), 3),
    ("noise_sigma", False, (0.0, 200.0), 1),
    ("window_low", False, (-1100.0, 400.0), 0),
    ("window_high", False, (-500.0, 3000.0), 0),
]
SCALARS: list[tuple[str, tuple[float, float], int]] = [
    ("occlusion_max", (0.0, 100.0), 1),
    ("elastic_spacing", (4.0, 64.0), 1),
    ("elastic_magnitude", (0.0, 12.0), 2),
]


class AugmentationPreview(QWidget):
    """Live preview of random augmentations of a CT layer (and its labels)."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self._controls: dict[str, Any] = {}
        self._worker = None
        self._pending = False
        self.last_error: str | None = None
        self.n_previews = 0

        outer = QVBoxLayout(self)
        pick = QFormLayout()
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        pick.addRow("CT layer", self.image_combo)
        pick.addRow("Labels layer", self.labels_combo)
        outer.addLayout(pick)

        form = QFormLayout()
        defaults = AugmentParams()
        for name, per_axis, bounds, decimals in RANGES:
            value = getattr(defaults, name)
            for k in range(3 if per_axis else 1):
                s = QLabeledDoubleRangeSlider()
                s.setOrientation(Qt.Orientation.Horizontal)
                s.setRange(*bounds)
                s.setDecimals(decimals)
                s.setValue(tuple(value[k] if per_axis else value))
                s.valueChanged.connect(self._schedule)
                key = f"{name}[{k}]" if per_axis else name
                self._controls[key] = s
                form.addRow(f"{name} {AXES[k]}" if per_axis else name, s)
        for k in range(3):
            s = QLabeledDoubleSlider()
            s.setOrientation(Qt.Orientation.Horizontal)
            s.setRange(0.0, 1.0)
            s.setDecimals(2)
            s.setValue(defaults.reflect_prob[k])
            s.valueChanged.connect(self._schedule)
            self._controls[f"reflect_prob[{k}]"] = s
            form.addRow(f"reflect_prob {AXES[k]}", s)
        for name, bounds, decimals in SCALARS:
            s = QLabeledDoubleSlider()
            s.setOrientation(Qt.Orientation.Horizontal)
            s.setRange(*bounds)
            s.setDecimals(decimals)
            s.setValue(getattr(defaults, name))
            s.valueChanged.connect(self._schedule)
            self._controls[name] = s
            form.addRow(name, s)
        inner = QWidget()
        inner.setLayout(form)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        outer.addWidget(scroll)

        row = QHBoxLayout()
        self.seed_box = QSpinBox()
        self.seed_box.setRange(0, 2**31 - 1)
        self.seed_box.valueChanged.connect(self._schedule)
        self.new_draw_button = QPushButton("New random draw")
        self.new_draw_button.clicked.connect(self.new_draw)
        row.addWidget(QLabel("seed"))
        row.addWidget(self.seed_box)
        row.addWidget(self.new_draw_button)
        outer.addLayout(row)
        row = QHBoxLayout()
        self.save_button = QPushButton("Save parameters...")
        self.save_button.clicked.connect(self._save_dialog)
        self.load_button = QPushButton("Load parameters...")
        self.load_button.clicked.connect(self._load_dialog)
        row.addWidget(self.save_button)
        row.addWidget(self.load_button)
        outer.addLayout(row)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # debounce slider drags
        self._timer.timeout.connect(self._start)
        self.image_combo.currentIndexChanged.connect(self._schedule)
        self.labels_combo.currentIndexChanged.connect(self._schedule)
        self.viewer.layers.events.inserted.connect(self._refresh_layers)
        self.viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()

    # -- layers ---------------------------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Image, Labels

        images = [ly.name for ly in self.viewer.layers if isinstance(ly, Image) and ly.name != IMAGE_NAME]
        labels = [ly.name for ly in self.viewer.layers if isinstance(ly, Labels) and ly.name != LABELS_NAME]
        for combo, names, extra in ((self.image_combo, images, []), (self.labels_combo, labels, ["(none)"])):
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(extra + names)
            if current in extra + names:
                combo.setCurrentText(current)
            elif names:
                combo.setCurrentText(names[0])
            combo.blockSignals(False)
        self._schedule()

    def _layer(self, combo: QComboBox):
        name = combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    # -- parameters -----------------------------------------------------------------------------------------
    def params(self) -> AugmentParams:
        """The parameters shown by the controls (raises ValueError if they are inconsistent)."""
        kw: dict[str, Any] = {}
        for name, per_axis, _, _ in RANGES:
            if per_axis:
                kw[name] = [tuple(self._controls[f"{name}[{k}]"].value()) for k in range(3)]
            else:
                kw[name] = tuple(self._controls[name].value())
        kw["reflect_prob"] = tuple(self._controls[f"reflect_prob[{k}]"].value() for k in range(3))
        for name, _, _ in SCALARS:
            kw[name] = self._controls[name].value()
        return AugmentParams(**kw)

    def set_params(self, params: AugmentParams) -> None:
        """Show ``params`` in the controls (one preview update afterwards)."""
        for s in self._controls.values():
            s.blockSignals(True)
        try:
            for name, per_axis, _, _ in RANGES:
                value = getattr(params, name)
                for k in range(3 if per_axis else 1):
                    key = f"{name}[{k}]" if per_axis else name
                    self._controls[key].setValue(tuple(value[k] if per_axis else value))
            for k in range(3):
                self._controls[f"reflect_prob[{k}]"].setValue(params.reflect_prob[k])
            for name, _, _ in SCALARS:
                self._controls[name].setValue(getattr(params, name))
        finally:
            for s in self._controls.values():
                s.blockSignals(False)
        self._schedule()

    def save_params(self, path: str | Path) -> Path:
        return self.params().save(path)

    def load_params(self, path: str | Path) -> None:
        self.set_params(AugmentParams.load(path))

    def _save_dialog(self) -> None:  # pragma: no cover - modal dialog
        path, _ = QFileDialog.getSaveFileName(self, "Save augmentation parameters", "augment.json", "JSON (*.json)")
        if path:
            self.status.setText(f"saved {self.save_params(path)}")

    def _load_dialog(self) -> None:  # pragma: no cover - modal dialog
        path, _ = QFileDialog.getOpenFileName(self, "Load augmentation parameters", "", "JSON (*.json)")
        if path:
            self.load_params(path)

    def new_draw(self) -> None:
        """Another random draw with the same ranges."""
        self.seed_box.setValue((self.seed_box.value() + 1) % (2**31 - 1))

    # -- preview --------------------------------------------------------------------------------------------
    def _schedule(self, *args: Any) -> None:
        self._timer.start()

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._timer.isActive()

    def _start(self) -> None:
        if self._worker is not None:  # latest wins: run again when the current job ends
            self._pending = True
            return
        image_layer = self._layer(self.image_combo)
        if image_layer is None:
            self.status.setText("add a CT image layer to preview augmentations")
            return
        try:
            params = self.params()
        except (ValueError, TypeError) as exc:
            self.last_error = str(exc)
            self.status.setText(f"invalid parameters: {exc}")
            return
        labels_layer = self._layer(self.labels_combo)
        image = np.asarray(image_layer.data)
        labels = None
        if labels_layer is not None and np.shape(labels_layer.data) == image.shape:
            labels = np.asarray(labels_layer.data)
        seed = self.seed_box.value()
        from napari.qt.threading import create_worker

        worker = create_worker(_compute, image, labels, params, seed, _start_thread=False)
        worker.returned.connect(lambda result, src=image_layer, ls=labels_layer: self._show(result, src, ls))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self._worker = worker
        self.status.setText("computing...")
        worker.start()

    def _finished(self) -> None:
        self._worker = None
        if self._pending:
            self._pending = False
            self._start()

    def _failed(self, exc: Exception) -> None:
        self.last_error = str(exc)
        self.status.setText(f"augmentation failed: {exc}")

    def _show(self, result: tuple, source: Any, labels_source: Any = None) -> None:
        img, lab, drawn, ms = result
        scale = tuple(source.scale)
        shift = (img.shape[2] + 8) * scale[2]  # to the right of the source CT
        translate = (source.translate[0], source.translate[1], source.translate[2] + shift)
        if IMAGE_NAME in self.viewer.layers:
            layer = self.viewer.layers[IMAGE_NAME]
            layer.data = img
            layer.scale, layer.translate = scale, translate
        else:
            self.viewer.add_image(img, name=IMAGE_NAME, colormap="gray", contrast_limits=(0.0, 1.0), scale=scale,
                                  translate=translate)  # fmt: skip
        if lab is not None:
            if LABELS_NAME in self.viewer.layers:
                layer = self.viewer.layers[LABELS_NAME]
                layer.data = lab
                layer.scale, layer.translate = scale, translate
            else:
                layer = self.viewer.add_labels(lab, name=LABELS_NAME, scale=scale, translate=translate, opacity=0.4)
            if labels_source is not None:
                layer.colormap = labels_source.colormap  # organ colours of the source labels
        self.last_drawn = drawn
        self.last_error = None
        self.n_previews += 1
        a, b = drawn["window"]
        self.status.setText(
            f"seed {self.seed_box.value()}: window [{a:.0f}, {b:.0f}] HU, noise sigma {drawn['noise_sigma']:.1f} HU, "
            f"reflect {drawn['reflect']}, {ms:.0f} ms"
        )


def _compute(image: np.ndarray, labels: np.ndarray | None, params: AugmentParams, seed: int):
    import time

    t0 = time.perf_counter()
    img, lab, drawn = augment(image, labels, params, seed=seed, backend="cpu", return_transform=True)
    return img, lab, drawn, (time.perf_counter() - t0) * 1e3


def augmentation_preview_widget(napari_viewer: Any) -> AugmentationPreview:
    """npe2 widget factory."""
    return AugmentationPreview(napari_viewer)
