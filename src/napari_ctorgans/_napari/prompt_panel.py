"""Prompts in the Label tab: positive and negative clicks, and a box or scribble in the current slice, per organ.

Each prompt runs :func:`napari_ctorgans.segment_prompts` in a worker thread and changes only the chosen organ in the
CT's working Labels layer, as one undo step (see :mod:`.working`): other organs and the user's painting stay. A
result outside the organ's plausible size is flagged, with a button that undoes it. The per-scan work of the engine
is prepared in the background as soon as a CT is chosen, so a click takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qtpy.QtWidgets import QButtonGroup, QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QRadioButton

from ..organs import ORGANS
from .step import Step
from .working import Update, apply_update, organs_update, tool_record, working_layer

#: organs the prompts offer
PROMPT_ORGANS = (1, 2, 3, 4, 5)
SIGN_COLORS = {"+": (0.1, 0.9, 0.1, 1.0), "-": (1.0, 0.15, 0.15, 1.0)}


def _prompt_job(vol, value, prompts, data, record):
    """Worker: the prompt's result and the working layer's update (``data`` and ``record`` are not modified)."""
    from .. import segment_prompts

    yield 0
    cur = data == value
    forbidden = ((data != 0) & ~cur) | (data != record)  # other organs, and every voxel the user changed
    new = prompts.get("negative") if prompts.get("negative") is not None and len(prompts["negative"]) else None
    if len(prompts.get("positive", ())):  # earlier clicks count as the organ's markers only where it still is
        pos = np.round(np.asarray(prompts["positive"], float)).astype(int)
        last = len(pos) if new is not None else len(pos) - 1
        inside = np.all((pos >= 0) & (pos < data.shape), axis=1)
        keep = [i for i in range(len(pos)) if i >= last or (inside[i] and cur[tuple(pos[i])])]
        prompts = {**prompts, "positive": np.asarray(prompts["positive"], float)[keep]}
    res = segment_prompts(vol, value, current=cur, forbidden=forbidden, **prompts)
    yield 1
    return res, organs_update(data, record, {value: res.mask})


def _prepare_job(vol):
    from ..interactive import work_grid

    work_grid(vol)
    return None


class PromptPanel(Step):
    """Point, box and scribble prompts for the CT chosen in the Label tab (``ct_layer()``; None: no CT)."""

    def __init__(self, napari_viewer, ct_layer: Callable, parent=None):
        super().__init__(napari_viewer, parent)
        self._ct_layer = ct_layer
        self._volumes: dict[int, tuple] = {}
        self._queue: list[tuple] = []
        self._last: tuple | None = None
        self._counted: dict[int, int] = {}
        self.organ_combo = QComboBox()
        for v in PROMPT_ORGANS:
            self.organ_combo.addItem(ORGANS[v].name, v)
        self.organ_combo.setToolTip("the organ the prompts change (other organs and your painting are never touched)")
        self.organ_combo.currentIndexChanged.connect(lambda *_: self._style_points())
        self.sign = QButtonGroup(self)
        self.positive = QRadioButton("inside (+)")
        self.negative = QRadioButton("not here (-)")
        self.positive.setToolTip("a click says: this is the organ (it grows from there)")
        self.negative.setToolTip("a click says: this is not the organ (the wrong part around it is removed)")
        self.positive.setChecked(True)
        for b in (self.positive, self.negative):
            self.sign.addButton(b)
            b.toggled.connect(lambda *_: self._style_points())
        self.click_button = QPushButton("Click prompts")
        self.click_button.setToolTip("each click in the viewer updates the organ at once "
                                     "(a Points layer '<CT> prompts')")
        self.click_button.clicked.connect(lambda: self.points_layer(activate=True))
        self.shape_button = QPushButton("Draw box/scribble")
        self.shape_button.setToolTip("draw a rectangle around the organ, or a path inside it, in the current slice")
        self.shape_button.clicked.connect(lambda: self.shapes_layer(activate=True))
        self.apply_shape_button = QPushButton("Apply shape")
        self.apply_shape_button.setToolTip("the last rectangle (a box) or path (a scribble) acts on the organ in 3D")
        self.apply_shape_button.clicked.connect(lambda: self.apply_shape())
        self.flag = QLabel("")
        self.flag.setWordWrap(True)
        self.undo_button = QPushButton("Undo last prompt")
        self.undo_button.setToolTip("put the organ back as it was before the last prompt (voxels painted since stay)")
        self.undo_button.clicked.connect(lambda: self.undo_last())
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("organ", self.organ_combo)
        signs = QHBoxLayout()
        signs.addWidget(self.positive)
        signs.addWidget(self.negative)
        form.addRow("clicks", signs)
        row = QHBoxLayout()
        for b in (self.click_button, self.shape_button, self.apply_shape_button):
            row.addWidget(b)
        form.addRow(row)
        form.addRow(self.flag)
        form.addRow(self.undo_button)
        form.addRow(self.status)
        self._show_flag(None)

    # ---------------------------------------------------------------------------------------------- layers
    def _ct(self):
        layer = self._ct_layer()
        if layer is None:
            raise ValueError("open a CT first and choose it as 'CT layer'")
        from .layers import volume_from_layer

        key = id(layer)
        held = self._volumes.get(key)
        if held is None or held[0] is not layer.data:  # one Volume per CT: its engine work stays cached
            held = (layer.data, volume_from_layer(layer))
            self._volumes[key] = held
        return layer, held[1]

    def prepare(self):
        """Compute the engine's per-scan work in the background (called when a CT is chosen)."""
        try:
            _, vol = self._ct()
        except ValueError:
            return None
        if self.worker is not None:
            return None
        self.say("preparing the prompts for this CT...")
        return self.start_job(_prepare_job, vol, what="preparing the prompts",
                              on_result=lambda _: self.say("prompts ready: click inside (+) or outside (-) an organ"))

    def points_layer(self, activate: bool = False):
        ct_layer, _ = self._ct()
        name = f"{ct_layer.name} prompts"
        if name not in self.viewer.layers:
            layer = self.viewer.add_points(
                np.zeros((0, 3)), name=name, ndim=3, size=6, scale=tuple(ct_layer.scale[-3:]),
                translate=tuple(ct_layer.translate[-3:]), features={"sign": np.array([], dtype=object),
                                                                    "organ": np.array([], dtype=int)})
            self.listen(layer.events.data, lambda event, ly=layer: self._points_changed(ly))
            self._counted[id(layer)] = 0
        layer = self.viewer.layers[name]
        self._style_points()
        if activate:
            self.viewer.layers.selection.active = layer
            layer.mode = "add"
        return layer

    def shapes_layer(self, activate: bool = False):
        ct_layer, _ = self._ct()
        name = f"{ct_layer.name} shapes"
        if name not in self.viewer.layers:
            self.viewer.add_shapes(name=name, ndim=3, scale=tuple(ct_layer.scale[-3:]),
                                   translate=tuple(ct_layer.translate[-3:]), edge_width=1, face_color="transparent",
                                   edge_color="yellow")
        layer = self.viewer.layers[name]
        if activate:
            self.viewer.layers.selection.active = layer
            layer.mode = "add_rectangle"
        return layer

    def _sign(self) -> str:
        return "+" if self.positive.isChecked() else "-"

    def _style_points(self):
        ct_layer = self._ct_layer()
        name = f"{ct_layer.name} prompts" if ct_layer is not None else None
        if name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.feature_defaults = {"sign": self._sign(), "organ": int(self.organ_combo.currentData())}
            layer.current_face_color = SIGN_COLORS[self._sign()]

    def _to_ct(self, layer, points) -> np.ndarray:
        """Points of ``layer`` (its data coordinates) as voxel positions (z, y, x) of the CT layer."""
        ct_layer, _ = self._ct()
        pts = np.asarray(points, dtype=float)[:, -3:]
        return np.array([ct_layer.world_to_data(layer.data_to_world(p))[-3:] for p in pts], dtype=float)

    # ---------------------------------------------------------------------------------------------- prompts
    def _points_changed(self, layer):
        n = len(layer.data)
        old = self._counted.get(id(layer), 0)
        self._counted[id(layer)] = n
        if self.closed or n <= old:  # deleted or moved points change nothing
            return
        feats = layer.features
        for i in range(old, n):
            value = int(feats["organ"].iloc[i]) if "organ" in feats else int(self.organ_combo.currentData())
            sign = str(feats["sign"].iloc[i]) if "sign" in feats else self._sign()
            point = self._to_ct(layer, layer.data[i:i + 1])
            earlier = [j for j in range(i)
                       if str(feats["sign"].iloc[j]) == "+" and int(feats["organ"].iloc[j]) == value]
            keep = self._to_ct(layer, layer.data[earlier]) if earlier else np.zeros((0, 3))
            prompts = ({"positive": np.concatenate([keep, point])} if sign == "+"
                       else {"positive": keep, "negative": point})
            self.run_prompt(value, prompts, f"{'+' if sign == '+' else '-'} click")

    def apply_shape(self):
        """The last shape drawn: a rectangle is a box, a path or a line a scribble (in one slice each)."""
        try:
            layer = self.shapes_layer()
            if not len(layer.data):
                raise ValueError("draw a rectangle around the organ or a path inside it first (Draw box/scribble)")
            kind, data = layer.shape_type[-1], self._to_ct(layer, layer.data[-1])
        except ValueError as exc:
            self.say(str(exc))
            return None
        value = int(self.organ_combo.currentData())
        prompts = {"boxes": [data]} if kind == "rectangle" else {"scribbles": [data]}
        return self.run_prompt(value, prompts, "box" if kind == "rectangle" else "scribble")

    def run_prompt(self, value: int, prompts: dict, what: str):
        """Apply one prompt to organ ``value`` in a worker (queued while another runs); returns the worker."""
        if self.worker is not None:
            self._queue.append((value, prompts, what))
            return None
        try:
            ct_layer, vol = self._ct()
        except ValueError as exc:
            self.say(str(exc))
            return None
        layer = working_layer(self.viewer, ct_layer)
        record = tool_record(layer)
        name = ORGANS[value].name
        self.say(f"{name}: {what}...")
        return self.start_job(_prompt_job, vol, value, prompts, np.asarray(layer.data), record,
                              what=f"{name} {what}",
                              on_result=lambda res, r=record: self._apply(layer, res, r, name, what))

    def _apply(self, layer, result, record, name, what):
        res, update = result
        if layer not in self.viewer.layers:
            self.say(f"{name}: the layer '{layer.name}' was removed meanwhile; click again to recreate it")
            return
        n = apply_update(layer, update)
        back = Update(update.shape, update.box, update.after, update.before, record, update.n)
        self._last = (layer, back) if n else None
        if n:
            self.say(f"{name} {what}: {n} voxels changed, {res.volume_ml:.0f} mL; other organs and your painting "
                     "kept (Ctrl+Z in that layer undoes)")
        else:
            self.say(f"{name} {what}: nothing changed (the organ already agrees, or the prompt lies on another "
                     "organ or on your painting, which prompts never change)")
        self._show_flag(res.warning)

    def _show_flag(self, warning: str | None):
        self.flag.setText(f"⚠ {warning}" if warning else "")
        self.flag.setVisible(bool(warning))
        self.undo_button.setEnabled(self._last is not None)
        self.undo_button.setText("Undo this result" if warning and self._last is not None else "Undo last prompt")

    def undo_last(self) -> int:
        """Undo the last prompt's change (as a new undo step; voxels painted since then stay); returns voxels."""
        if self._last is None:
            return 0
        layer, back = self._last
        self._last = None
        self._show_flag(None)
        if layer not in self.viewer.layers:
            return 0
        n = apply_update(layer, back)
        self.say(f"undone: {n} voxels back as they were")
        return n

    def busy_changed(self, busy: bool) -> None:
        if not busy and self._queue and not self.closed:
            self.run_prompt(*self._queue.pop(0))
