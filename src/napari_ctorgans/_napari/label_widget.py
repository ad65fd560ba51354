"""The "Auto label" step: lungs, bone and the body mask from a CT layer, and organs grown from clicked seeds.

Every result is added to the CT's working Labels layer (see :mod:`.working`): other organs and the user's own
painting are never erased. The body mask goes to a layer of its own. All computing runs in a worker thread.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..organs import ORGANS
from .prompt_panel import PromptPanel
from .step import Step, fill_combo
from .working import apply_update, body_layer, organs_update, tool_record, working_layer

#: organs "Grow organ" offers (the soft-tissue organs the automatic labelers do not find)
GROW_ORGANS = (1, 2, 4)


def _spin(low, high, value, suffix, tip):
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setToolTip(tip)
    return box


class AutoLabelWidget(Step):
    """Pick a CT Image layer and run the automatic labelers in a worker thread; grow organs from Points seeds."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.result_layer = None
        self._watched: set[int] = set()
        self._prepared: set[int] = set()
        self.image_combo = QComboBox()
        self.image_combo.setToolTip("CT Image layer in Hounsfield units (3D)")
        self.points_combo = QComboBox()
        self.points_combo.setToolTip("Points layer with seed clicks inside the organ")
        self.organ_combo = QComboBox()
        for v in GROW_ORGANS:
            self.organ_combo.addItem(ORGANS[v].name, v)
        self.organ_combo.setToolTip("organ painted by 'Grow organ' (other organs and your painting are never erased)")
        self.air_hu = _spin(-1000, 0, -400.0, " HU", "air threshold of the lung labeler (the paper uses -150 HU)")
        self.bone_hu = _spin(0, 2000, 150.0, " HU", "bone seed threshold (the paper uses 200 HU, its code 175 HU)")
        self.closing = _spin(0, 60, 25.0, " mm", "ball diameter of the bone closing (the paper uses 2.5 cm)")
        self.opening = _spin(0, 50, 9.0, " mm", "ball diameter of the opening that cuts leaks through thin bridges")

        form = QFormLayout()
        form.addRow("CT layer", self.image_combo)
        form.addRow("lung air below", self.air_hu)
        form.addRow("bone above", self.bone_hu)
        form.addRow("bone closing", self.closing)
        buttons = QHBoxLayout()
        self.buttons = {}
        for what in ("lungs", "bone", "body", "all"):
            b = QPushButton(what)
            b.setToolTip(f"add {what} to the working labels layer '<CT> organs'" if what != "body"
                         else "body mask into its own layer '<CT> body' (not an organ label)")
            b.clicked.connect(lambda _=False, w=what: self.run(w))
            buttons.addWidget(b)
            self.buttons[what] = b
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.cancel())
        self.progress = QProgressBar()
        grow_box = QGroupBox("Grow an organ from seed clicks (the older tool)")
        grow_form = QFormLayout(grow_box)
        grow_form.addRow("seeds", self.points_combo)
        grow_form.addRow("organ", self.organ_combo)
        grow_form.addRow("opening", self.opening)
        self.grow_button = QPushButton("Grow organ")
        self.grow_button.setToolTip("grow the organ from the seed points within an HU band estimated around them")
        self.grow_button.clicked.connect(lambda: self.grow())
        grow_form.addRow(self.grow_button)
        prompt_box = QGroupBox("Correct an organ with prompts")
        prompt_box.setToolTip("clicks inside (+) or outside (-) an organ, or a box or scribble in one slice, "
                              "each updating that organ at once")
        self.prompts = PromptPanel(self.viewer, self._prompt_ct, parent=prompt_box)
        QVBoxLayout(prompt_box).addWidget(self.prompts)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(prompt_box)
        layout.addWidget(grow_box)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addStretch()

        self.listen(self.viewer.layers.events.inserted, self._refresh)
        self.listen(self.viewer.layers.events.removed, self._refresh)
        self.image_combo.currentIndexChanged.connect(self._update_buttons)
        self.points_combo.currentIndexChanged.connect(self._update_buttons)
        self._refresh()

    # ---------------------------------------------------------------------------------------------- inputs
    def _refresh(self, *_):
        from napari.layers import Points

        from .layers import ct_layer_names

        if self.closed:
            return
        fill_combo(self.image_combo, ct_layer_names(self.viewer))  # 3D, one value a voxel, no preview
        fill_combo(self.points_combo, [ly.name for ly in self.viewer.layers if isinstance(ly, Points)])
        for layer in self.viewer.layers:  # a click adds a seed: Grow becomes possible
            if isinstance(layer, Points) and id(layer) not in self._watched:
                self._watched.add(id(layer))
                self.listen(layer.events.data, self._update_buttons)
        self._update_buttons()

    def _ct_problem(self) -> str | None:
        name = self.image_combo.currentText()
        if not name or name not in self.viewer.layers:
            from .layers import refused_note

            return ("open a CT first (File > Open, or drop a NIfTI/NRRD/MHA file or a DICOM folder on the window)"
                    + refused_note(self.viewer))
        ndim = np.ndim(self.viewer.layers[name].data)
        if ndim != 3:
            return f"'{name}' is {ndim}D; the labelers need a 3D CT (z, y, x): choose or open a 3D scan"
        return None

    def _seeds_problem(self) -> str | None:
        name = self.points_combo.currentText()
        if not name or name not in self.viewer.layers:
            return "to grow an organ, add a Points layer and click inside the organ"
        if not len(self.viewer.layers[name].data):
            return f"'{name}' has no points: click inside the organ with the Points layer's add tool"
        return None

    def _update_buttons(self, *_):
        if self.closed:
            return
        busy = self.worker is not None
        ct_problem = self._ct_problem()
        for b in self.buttons.values():
            b.setEnabled(not busy and ct_problem is None)
        self.grow_button.setEnabled(not busy and ct_problem is None and self._seeds_problem() is None)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.hint(ct_problem)
        if ct_problem is None:
            QTimer.singleShot(0, self._ensure_working_layer)

    def _ensure_working_layer(self):
        """Give the chosen CT its (empty) working layer now, so no tool has to add a layer when it finishes."""
        if self.closed or self._ct_problem():
            return
        ct_layer = self.viewer.layers[self.image_combo.currentText()]
        if id(ct_layer) not in self._prepared:  # once: a working layer the user deleted is not brought back
            self._prepared.add(id(ct_layer))
            working_layer(self.viewer, ct_layer)
            self.prompts.prepare()

    def _prompt_ct(self):
        """The chosen CT layer (None when there is none usable)."""
        if self.closed or self._ct_problem():
            return None
        return self.viewer.layers[self.image_combo.currentText()]

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    def _ct(self):
        from .layers import volume_from_layer

        problem = self._ct_problem()
        if problem:
            raise ValueError(problem)
        layer = self.viewer.layers[self.image_combo.currentText()]
        return layer, volume_from_layer(layer)

    # ---------------------------------------------------------------------------------------------- automatic labels
    def run(self, what: str):
        """Label ``what`` ("lungs", "bone", "body" or "all") in a worker; returns the worker (None: see status)."""
        if what not in self.buttons:
            raise ValueError(f"what must be one of {', '.join(self.buttons)}, got {what!r}")
        if self.worker is not None:
            self.say("a labeller is still running: wait for it or press Cancel")
            return None
        try:
            ct_layer, vol = self._ct()
        except ValueError as exc:
            self.say(str(exc))
            return None
        if what == "body":
            return self.start_job(_body, vol, what="body", progress=self.progress, total=1,
                                  on_result=lambda mask: self._show_body(mask, ct_layer))
        layer = working_layer(self.viewer, ct_layer)
        self.result_layer = layer
        organs = ["lungs", "bone"] if what == "all" else [what]
        params = {"lungs": {"air_hu": float(self.air_hu.value())},
                  "bones": {"closing_mm": float(self.closing.value()), "bone_hu": float(self.bone_hu.value())}}
        self.say(f"labelling {what}...")
        removed: list[str] = []  # ct.plausible's removals, said in the status line
        return self.start_job(_auto, vol, organs, params, layer.data, tool_record(layer), removed, what=what,
                              progress=self.progress, total=len(organs) + 1,
                              on_result=lambda res: self._apply(layer, res, what, removed))

    def _show_body(self, mask, ct_layer):
        layer = body_layer(self.viewer, ct_layer, mask)
        self.say(f"body: {int(mask.sum())} voxels in the layer '{layer.name}' (kept apart from the organ labels)")

    def _apply(self, layer, update, what, removed=()):
        if layer not in self.viewer.layers:
            self.say(f"{what}: the layer '{layer.name}' was removed meanwhile; run again to recreate it")
            return
        n = apply_update(layer, update)
        self.say(f"{what}: {n} voxels changed in '{layer.name}'" if n else f"{what}: nothing new found")
        self.status.setText(self.status.text() + "; other organs and your edits kept (Ctrl+Z in that layer undoes)"
                            + "".join(f"\n{line}" for line in removed))

    # ---------------------------------------------------------------------------------------------- seeded growing
    def seeds(self, ct_layer) -> np.ndarray:
        """The clicked seed points as (z, y, x) voxel positions of ``ct_layer``."""
        points = self.viewer.layers[self.points_combo.currentText()]
        pts = np.asarray(points.data, dtype=float)[:, -3:]
        world = np.array([points.data_to_world(p) for p in pts])
        return np.array([ct_layer.world_to_data(w) for w in world], dtype=float)[:, -3:]

    def grow(self):
        """Grow the chosen organ from the seed points in a worker; returns the worker (None: see status)."""
        if self.worker is not None:
            self.say("a labeller is still running: wait for it or press Cancel")
            return None
        try:
            ct_layer, vol = self._ct()
            problem = self._seeds_problem()
            if problem:
                raise ValueError(problem)
            seeds = self.seeds(ct_layer)
        except ValueError as exc:
            self.say(str(exc))
            return None
        outside = [i for i, s in enumerate(seeds) if np.any(s < -0.5) or np.any(s > np.array(vol.shape) - 0.5)]
        if outside:
            self.say(f"seed point(s) {', '.join(str(i + 1) for i in outside)} of '{self.points_combo.currentText()}' "
                     f"lie outside '{ct_layer.name}': move or delete them")
            return None
        value = int(self.organ_combo.currentData())
        layer = working_layer(self.viewer, ct_layer)
        self.result_layer = layer
        self.say(f"growing {ORGANS[value].name} from {len(seeds)} seed(s)...")
        return self.start_job(_grow, vol, seeds, value, float(self.opening.value()), layer.data, tool_record(layer),
                              what=f"growing {ORGANS[value].name}", progress=self.progress, total=2,
                              on_result=lambda res: self._apply(layer, res, ORGANS[value].name))


def _body(vol):
    from .. import label_body

    yield 0
    return label_body(vol).astype(bool)


def _auto(vol, organs, params, data, record, removed=None):
    import warnings

    from .. import auto_label
    from ..plausibility import ImplausibleOrganWarning

    labels = np.zeros(vol.shape, np.uint8)
    for i, organ in enumerate(organs):
        yield i
        with warnings.catch_warnings(record=True) as caught:  # lungs where they cannot be: removed and said
            warnings.simplefilter("always", ImplausibleOrganWarning)
            part = auto_label(vol, organs=[organ], **params)
        if removed is not None:
            removed += [str(w.message) for w in caught if issubclass(w.category, ImplausibleOrganWarning)]
        np.copyto(labels, part, where=(part > 0) & (labels == 0), casting="unsafe")  # releases the GIL
    yield len(organs)
    data = np.array(data, copy=True)
    values = [{"lungs": 3, "bone": 5}[organ] for organ in organs]  # an organ's earlier result is replaced
    return organs_update(data, record, {v: labels == v for v in values})


def _grow(vol, seeds, value, opening_mm, data, record):
    from .. import grow_region
    from .process import in_process

    yield 0
    # scipy.ndimage holds the GIL for seconds on a full-resolution CT: a thread would still freeze the viewer
    region = yield from in_process(grow_region, vol, seeds, opening_mm=opening_mm)
    yield 1
    data = np.array(data, copy=True)
    return organs_update(data, record, {value: region})
