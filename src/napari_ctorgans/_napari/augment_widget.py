"""Dock widget "Augmentation preview": tune the augmentation ranges on a real CT and see random draws live.

Every parameter of :class:`~napari_ctorgans.AugmentParams` has a range slider (per axis where it applies). Changes
are debounced, the augmentation runs in a worker thread (never on the GUI thread), and only the latest request is
shown. The augmented image and labels appear as preview layers to the right of the source CT while the widget is
shown (a hidden tab or a closed dock takes them away; they are never offered as a CT or labels, and the camera stays
where the user put it). "Save parameters" writes the JSON file that training reads (``AugmentParams.load``).
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
from superqt import QDoubleRangeSlider, QDoubleSlider

from ..augment import AugmentParams, augment
from .preview import camera_kept, put_preview, remove_previews
from .step import Step, gone

IMAGE_NAME = "augmented image"
LABELS_NAME = "augmented labels"
AXES = ("z", "y", "x")

# field, label, unit, per-axis?, slider bounds, decimals
RANGES: list[tuple[str, str, str, bool, tuple[float, float], int]] = [
    ("rotation_deg", "rotation about", "\u00b0", True, (-45.0, 45.0), 1),
    ("scale", "zoom", "\u00d7", True, (0.5, 1.5), 2),
    ("displacement", "shift", "voxels", True, (-40.0, 40.0), 1),
    ("shear", "shear", "", False, (-0.3, 0.3), 3),
    ("affine", "affine jitter", "", False, (-0.2, 0.2), 3),
    ("noise_sigma", "noise sigma", "HU", False, (0.0, 200.0), 1),
    ("window_low", "window low end", "HU", False, (-1100.0, 400.0), 0),
    ("window_high", "window high end", "HU", False, (-500.0, 3000.0), 0),
]
SCALARS: list[tuple[str, str, str, tuple[float, float], int]] = [
    ("occlusion_max", "occluded slab up to", "slices", (0.0, 100.0), 1),
    ("elastic_spacing", "elastic grid spacing", "voxels", (4.0, 64.0), 1),
    ("elastic_magnitude", "elastic displacement up to", "voxels", (0.0, 12.0), 2),
]
#: a slab thinner than this (mm) gets tilts small enough to keep most of it in the rotated output
THIN_SLAB_MM = 120.0


def _value_text(value, unit: str, decimals: int) -> str:
    """``-15.0 to 15.0 \u00b0`` for a range, ``0.50`` for a number: one label beside the slider, no overlap."""
    if isinstance(value, tuple):
        text = f"{value[0]:.{decimals}f} to {value[1]:.{decimals}f}"
    else:
        text = f"{value:.{decimals}f}"
    return f"{text} {unit}".strip()


def slab_tilt_deg(shape, spacing, keep: float = 0.75) -> float | None:
    """Largest tilt (degrees, about y or x) that keeps ``keep`` of a thin slab's thickness; None for a thick scan.

    A slab of thickness t and width w tilted by angle a loses about ``w * tan(a)`` of its thickness at the edges.
    """
    thickness = float(shape[0]) * float(spacing[0])
    if thickness >= THIN_SLAB_MM:
        return None
    width = max(float(shape[1]) * float(spacing[1]), float(shape[2]) * float(spacing[2]))
    return float(np.degrees(np.arctan((1.0 - keep) * thickness / width)))


class AugmentationPreview(Step):
    """Live preview of random augmentations of a CT layer (and its labels)."""

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(napari_viewer, parent)
        self._controls: dict[str, Any] = {}
        self._value_labels: dict[str, tuple[QLabel, str, int]] = {}
        self._worker = None
        self._pending = False
        self._adapted_for: str | None = None
        self._slab_note = ""
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
        for name, label, unit, per_axis, bounds, decimals in RANGES:
            value = getattr(defaults, name)
            for k in range(3 if per_axis else 1):
                key = f"{name}[{k}]" if per_axis else name
                s = QDoubleRangeSlider(Qt.Orientation.Horizontal)
                s.setRange(*bounds)
                s.setValue(tuple(value[k] if per_axis else value))
                self._add(form, key, s, f"{label} {AXES[k]}" if per_axis else label, unit, decimals)
        for k in range(3):
            s = QDoubleSlider(Qt.Orientation.Horizontal)
            s.setRange(0.0, 1.0)
            s.setValue(defaults.reflect_prob[k])
            self._add(form, f"reflect_prob[{k}]", s, f"mirror {AXES[k]}, probability", "", 2)
        for name, label, unit, bounds, decimals in SCALARS:
            s = QDoubleSlider(Qt.Orientation.Horizontal)
            s.setRange(*bounds)
            s.setValue(getattr(defaults, name))
            self._add(form, name, s, label, unit, decimals)
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
        outer.addWidget(self.status)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)  # debounce slider drags
        self._timer.timeout.connect(self._start)
        self.image_combo.currentIndexChanged.connect(self._image_changed)
        self.labels_combo.currentIndexChanged.connect(self._schedule)
        self.listen(self.viewer.layers.events.inserted, self._refresh_layers)
        self.listen(self.viewer.layers.events.removed, self._refresh_layers)
        self._refresh_layers()

    def _add(self, form: QFormLayout, key: str, slider, label: str, unit: str, decimals: int) -> None:
        text = QLabel()
        text.setMinimumWidth(110)
        self._controls[key] = slider
        self._value_labels[key] = (text, unit, decimals)
        slider.valueChanged.connect(lambda *_, k=key: self._show_value(k))
        slider.valueChanged.connect(self._schedule)
        self._show_value(key)
        row = QHBoxLayout()
        row.addWidget(slider, 1)
        row.addWidget(text)
        form.addRow(label, row)

    def _show_value(self, key: str) -> None:
        text, unit, decimals = self._value_labels[key]
        value = self._controls[key].value()
        text.setText(_value_text(tuple(value) if isinstance(value, (tuple, list)) else value, unit, decimals))

    def teardown(self) -> None:
        """Stop the debounce timer and the running preview, remove the preview layers, disconnect from the viewer."""
        self._timer.stop()
        self._pending = False
        if self._worker is not None:
            self._worker.quit()
        self.remove_preview()
        super().teardown()

    def remove_preview(self) -> None:
        """Take the preview layers out of the viewer (the next showing of the widget draws them again)."""
        remove_previews(self.viewer)

    def hideEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().hideEvent(event)
        if not event.spontaneous():  # another tab chosen or the dock hidden (not the window minimised)
            self._stale = True
            self._timer.stop()
            self.remove_preview()

    def _image_changed(self, *_):
        self._adapt_to_slab()
        self._schedule()

    def _adapt_to_slab(self) -> None:
        """On a thin slab, limit the tilts (rotation about y and x) so the output keeps most of the slab."""
        layer = self._layer(self.image_combo)
        if layer is None or layer.name == self._adapted_for or np.ndim(layer.data) != 3:
            return
        self._adapted_for = layer.name
        tilt = slab_tilt_deg(np.shape(layer.data), layer.scale[-3:])
        self._slab_note = ""
        if tilt is None:
            return
        tilt = round(tilt, 1)
        for k in (1, 2):
            s = self._controls[f"rotation_deg[{k}]"]
            lo, hi = s.value()
            s.blockSignals(True)
            s.setValue((max(lo, -tilt), min(hi, tilt)))
            s.blockSignals(False)
            self._show_value(f"rotation_deg[{k}]")
        thickness = np.shape(layer.data)[0] * float(layer.scale[-3])
        self._slab_note = (f"'{layer.name}' is a {thickness:.0f} mm slab: tilts about y and x limited to "
                 f"\u00b1{tilt:.1f}\u00b0 so the output keeps 3/4 of its thickness")
        self.say(self._slab_note)

    # -- layers ---------------------------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        from .layers import ct_layer_names, labels_layer_names

        if self.closed:
            return
        images = ct_layer_names(self.viewer)  # 3D, one value a voxel, never the preview itself
        labels = labels_layer_names(self.viewer)
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
        self._adapt_to_slab()
        self._schedule()

    def _layer(self, combo: QComboBox):
        name = combo.currentText()
        return self.viewer.layers[name] if name and name in self.viewer.layers else None

    # -- parameters -----------------------------------------------------------------------------------------
    def params(self) -> AugmentParams:
        """The parameters shown by the controls (raises ValueError if they are inconsistent)."""
        kw: dict[str, Any] = {}
        for name, _, _, per_axis, _, _ in RANGES:
            if per_axis:
                kw[name] = [tuple(self._controls[f"{name}[{k}]"].value()) for k in range(3)]
            else:
                kw[name] = tuple(self._controls[name].value())
        kw["reflect_prob"] = tuple(self._controls[f"reflect_prob[{k}]"].value() for k in range(3))
        for name, *_ in SCALARS:
            kw[name] = self._controls[name].value()
        return AugmentParams(**kw)

    def set_params(self, params: AugmentParams) -> None:
        """Show ``params`` in the controls (one preview update afterwards)."""
        for s in self._controls.values():
            s.blockSignals(True)
        try:
            for name, _, _, per_axis, _, _ in RANGES:
                value = getattr(params, name)
                for k in range(3 if per_axis else 1):
                    key = f"{name}[{k}]" if per_axis else name
                    self._controls[key].setValue(tuple(value[k] if per_axis else value))
            for k in range(3):
                self._controls[f"reflect_prob[{k}]"].setValue(params.reflect_prob[k])
            for name, *_ in SCALARS:
                self._controls[name].setValue(getattr(params, name))
        finally:
            for s in self._controls.values():
                s.blockSignals(False)
        for key in self._controls:
            self._show_value(key)
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
    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if getattr(self, "_stale", False):
            self._stale = False
            self._schedule()

    def _schedule(self, *args: Any) -> None:
        if not self.closed:
            self._timer.start()

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._timer.isActive()

    def _start(self) -> None:
        if self.closed:
            return
        if self.parent() is not None and not self.isVisibleTo(self.window()):  # hidden tab or dock: when shown
            self._stale = True
            return
        if self._worker is not None:  # latest wins: run again when the current job ends
            self._pending = True
            return
        image_layer = self._layer(self.image_combo)
        if image_layer is None:
            from .layers import refused_note

            self.status.setText("add a CT image layer to preview augmentations" + refused_note(self.viewer))
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
        from superqt.utils import create_worker

        worker = create_worker(_compute, image, labels, params, seed, _start_thread=False)
        worker.returned.connect(lambda result, src=image_layer, ls=labels_layer: self._show(result, src, ls))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self._worker = worker
        self.status.setText("computing...")
        worker.start()

    def _finished(self) -> None:
        if gone(self):
            return
        self._worker = None
        if self._pending and not self.closed:
            self._pending = False
            self._start()

    def _failed(self, exc: Exception) -> None:
        if gone(self):
            return
        self.last_error = str(exc)
        self.status.setText(f"augmentation failed: {exc}")

    def _show(self, result: tuple, source: Any, labels_source: Any = None) -> None:
        if gone(self) or source not in self.viewer.layers:
            return
        if self.parent() is not None and not self.isVisibleTo(self.window()):  # hidden meanwhile: when shown again
            self._stale = True
            return
        img, lab, drawn, ms = result
        scale = tuple(source.scale)
        shift = (img.shape[2] + 8) * scale[2]  # to the right of the source CT
        translate = (source.translate[0], source.translate[1], source.translate[2] + shift)
        with camera_kept(self.viewer):
            put_preview(self.viewer, IMAGE_NAME, img, scale, translate)
            if lab is not None:
                put_preview(self.viewer, LABELS_NAME, lab, scale, translate, labels=True)
        self.last_drawn = drawn
        self.last_error = None
        self.n_previews += 1
        a, b = drawn["window"]
        self.status.setText(
            f"seed {self.seed_box.value()}: window [{a:.0f}, {b:.0f}] HU, noise sigma {drawn['noise_sigma']:.1f} HU, "
            f"reflect {drawn['reflect']}, {ms:.0f} ms" + (f". {self._slab_note}" if self._slab_note else "")
        )


def _compute(image: np.ndarray, labels: np.ndarray | None, params: AugmentParams, seed: int):
    import time

    t0 = time.perf_counter()
    img, lab, drawn = augment(image, labels, params, seed=seed, backend="cpu", return_transform=True)
    return img, lab, drawn, (time.perf_counter() - t0) * 1e3


def augmentation_preview_widget(napari_viewer: Any) -> AugmentationPreview:
    """npe2 widget factory."""
    return AugmentationPreview(napari_viewer)
