"""The "Auto label" dock widget: lungs, bone, body or all from a CT layer, and seeded organ growing."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..organs import ORGANS, napari_colormap
from .layers import digest as _digest
from .layers import paint as _paint
from .prompt import EditedLayerPrompt

RESULT_NAME = "auto labels"


class AutoLabelWidget(QWidget):
    """Pick a CT Image layer and run the automatic labelers in a worker thread; grow organs from Points seeds."""

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None
        self.result_layer = None

        self.image_combo = QComboBox()
        self.image_combo.setToolTip("CT Image layer in Hounsfield units")
        self.points_combo = QComboBox()
        self.points_combo.setToolTip("Points layer with seed clicks inside the organ")
        self.organ_combo = QComboBox()
        for o in ORGANS.values():
            if o.value in (1, 2, 4):
                self.organ_combo.addItem(o.name, o.value)
        self.organ_combo.setToolTip("organ painted by 'Grow organ' (other organs are never erased)")
        self.opening = QDoubleSpinBox()
        self.opening.setRange(0, 50)
        self.opening.setValue(9.0)
        self.opening.setSuffix(" mm")
        self.opening.setToolTip("ball diameter of the opening that cuts leaks through thin bridges")
        self.closing = QDoubleSpinBox()
        self.closing.setRange(0, 60)
        self.closing.setValue(25.0)
        self.closing.setSuffix(" mm")
        self.closing.setToolTip("ball diameter of the bone closing (the paper uses 2.5 cm)")

        self.air_hu = QDoubleSpinBox()
        self.air_hu.setRange(-1000, 0)
        self.air_hu.setValue(-400.0)
        self.air_hu.setSuffix(" HU")
        self.air_hu.setToolTip("air threshold of the lung labeler (the paper uses -150 HU)")
        self.bone_hu = QDoubleSpinBox()
        self.bone_hu.setRange(0, 2000)
        self.bone_hu.setValue(150.0)
        self.bone_hu.setSuffix(" HU")
        self.bone_hu.setToolTip("bone seed threshold tau2 (the paper uses 200 HU, its code 175 HU)")

        form = QFormLayout()
        form.addRow("CT layer", self.image_combo)
        form.addRow("lung air below", self.air_hu)
        form.addRow("bone above", self.bone_hu)
        form.addRow("bone closing", self.closing)
        buttons = QHBoxLayout()
        self.buttons = {}
        for what in ("lungs", "bone", "body", "all"):
            b = QPushButton(what)
            b.setToolTip(f"label {what} in a worker thread; the result goes to the '{RESULT_NAME}' layer")
            b.clicked.connect(lambda _=False, w=what: self.run(w))
            buttons.addWidget(b)
            self.buttons[what] = b
        self.cancel_button = QPushButton("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.prompt = EditedLayerPrompt()
        grow_form = QFormLayout()
        grow_form.addRow("seeds", self.points_combo)
        grow_form.addRow("organ", self.organ_combo)
        grow_form.addRow("opening", self.opening)
        self.grow_button = QPushButton("Grow organ")
        self.grow_button.setToolTip("grow the organ from the seed points within an HU band estimated around them")
        self.grow_button.clicked.connect(self.grow)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.prompt)
        layout.addLayout(grow_form)
        layout.addWidget(self.grow_button)
        layout.addWidget(self.status)
        layout.addStretch()

        self.viewer.layers.events.inserted.connect(self._refresh)
        self.viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    # layer choices -----------------------------------------------------------------------------------------------
    def _refresh(self, *_):
        from napari.layers import Image, Points

        for combo, kind in ((self.image_combo, Image), (self.points_combo, Points)):
            current = combo.currentText()
            combo.clear()
            combo.addItems([layer.name for layer in self.viewer.layers if isinstance(layer, kind)])
            if current:
                i = combo.findText(current)
                if i >= 0:
                    combo.setCurrentIndex(i)

    def _ct(self):
        from .. import Volume

        name = self.image_combo.currentText()
        if not name:
            raise ValueError("add a CT Image layer first")
        layer = self.viewer.layers[name]
        data = np.asarray(layer.data)
        vol = Volume(data, spacing=tuple(float(s) for s in layer.scale[-3:]),
                     origin=tuple(float(t) for t in layer.translate[-3:]))
        return layer, vol

    # automatic labels --------------------------------------------------------------------------------------------
    def run(self, what: str):
        from napari.qt.threading import thread_worker

        layer, vol = self._ct()
        closing = float(self.closing.value())
        params = {
            "lungs": {"air_hu": float(self.air_hu.value())},
            "bones": {"closing_mm": closing, "bone_hu": float(self.bone_hu.value())},
        }

        @thread_worker
        def work():
            from ..labelers import auto_label, label_body

            if what == "body":
                yield 1
                return label_body(vol).astype(np.uint8)  # value 1 marks the body
            organs = ["lungs", "bone"] if what == "all" else [what]
            out = np.zeros(vol.shape, dtype=np.uint8)
            for i, organ in enumerate(organs):
                part = auto_label(vol, organs=[organ], **params)
                out[(part > 0) & (out == 0)] = part[(part > 0) & (out == 0)]
                yield i + 1
            return out

        total = 1 if what == "body" else (2 if what == "all" else 1)
        self.progress.setRange(0, total)
        self.progress.setValue(0)
        self.worker = work()
        self.worker.yielded.connect(self.progress.setValue)
        self.worker.returned.connect(lambda labels: self._show(labels, layer, what))
        self.worker.errored.connect(lambda exc: self.status.setText(f"error: {exc}"))
        self.worker.finished.connect(self._done)
        self._busy(True)
        self.status.setText(f"labelling {what}...")
        self.worker.start()
        return self.worker

    def cancel(self):
        if self.worker is not None:
            self.worker.quit()
            self.status.setText("cancelled")

    def _busy(self, busy: bool):
        for b in (*self.buttons.values(), self.grow_button):
            b.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _done(self):
        self._busy(False)
        self.worker = None

    def _target_layer(self, ct_layer, shape):
        """The result layer; a new one when the existing one was edited by the user (never overwritten)."""
        from napari.utils.colormaps import DirectLabelColormap

        layer = self.result_layer
        if layer is not None and layer in self.viewer.layers and layer.data.shape == shape:
            return layer
        layer = self.viewer.add_labels(
            np.zeros(shape, dtype=np.uint8), name=RESULT_NAME, scale=ct_layer.scale[-3:],
            translate=ct_layer.translate[-3:], colormap=DirectLabelColormap(color_dict=napari_colormap()),
        )
        layer.metadata["organs"] = {o.value: o.name for o in ORGANS.values()}
        self.result_layer = layer
        return layer

    def _show(self, labels, ct_layer, what):
        layer = self.result_layer
        alive = layer is not None and layer in self.viewer.layers and layer.data.shape == labels.shape
        if alive and layer.metadata.get("ctorgans_digest") != _digest(layer.data):
            # the user edited the layer since we wrote it: ask before touching it
            self.prompt.ask(layer.name, lambda choice: self._apply(labels, ct_layer, what, choice))
            self.status.setText(f"{what} done: '{layer.name}' has edits; choose below what to do with the result")
            return
        if not alive:
            self.result_layer = None
        self._apply(labels, ct_layer, what, "replace")

    def _apply(self, labels, ct_layer, what, choice):
        """Put a result into the viewer: ``replace`` (through the undo history), ``new layer`` or ``discard``."""
        if choice == "discard":
            self.status.setText(f"{what}: result discarded, '{self.result_layer.name}' kept as edited")
            return
        if choice == "new layer":
            self.result_layer = None  # the edited layer stays as it is
        layer = self._target_layer(ct_layer, labels.shape)
        _paint(layer, labels != np.asarray(layer.data), labels)
        layer.metadata["ctorgans_digest"] = _digest(layer.data)
        found = ", ".join(ORGANS[int(v)].name for v in np.unique(labels) if v in ORGANS and v)
        self.status.setText(f"{what}: {found or 'nothing found'}")

    # seeded growing ----------------------------------------------------------------------------------------------
    def grow(self):
        from ..labelers import grow_region

        ct_layer, vol = self._ct()
        name = self.points_combo.currentText()
        if not name:
            self.status.setText("add a Points layer with seed clicks first")
            return None
        pts = np.asarray(self.viewer.layers[name].data, dtype=float)[:, -3:]
        seeds = (pts - np.asarray(ct_layer.translate[-3:])) / np.asarray(ct_layer.scale[-3:])
        region = grow_region(vol, seeds, opening_mm=float(self.opening.value()))
        layer = self._target_layer(ct_layer, vol.shape)
        value = int(self.organ_combo.currentData())
        paint = region & (np.asarray(layer.data) == 0)
        _paint(layer, paint, value)
        layer.metadata["ctorgans_digest"] = _digest(layer.data)
        self.status.setText(f"{ORGANS[value].name}: {int(paint.sum())} voxels grown")
        return paint
