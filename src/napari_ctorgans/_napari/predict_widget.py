"""The "Predict" dock widget: a CT layer + a model (the built-in starter model by default, a model trained in this
session, or a checkpoint file) -> an editable Labels layer, aligned with the CT."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..contract import DEFAULT_OVERLAP
from ..models import STARTER_LABEL
from .layers import digest as _digest
from .prompt import EditedLayerPrompt
from .step import Step, fill_combo
from .train_pickers import browse_button, open_file_dialog, with_button

DIGEST_KEY = "ctorgans_prediction_digest"


class _Progress(QObject):
    """Carries tile progress from the worker thread to the GUI thread (queued signal)."""

    tiles = Signal(int, int)


class PredictWidget(Step):
    """Predict organs in a CT layer with the built-in starter model (the default), a model trained in the Train
    widget, or a checkpoint file (``.pt`` or ``.safetensors``)."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.result_layer = None
        self._from_labelers: tuple[str, ...] = ()  # organs the last prediction took from the labellers
        self._progress = _Progress()
        self._progress.tiles.connect(self._on_tiles)

        self.image_combo = QComboBox()
        self.image_combo.setToolTip("CT Image layer in Hounsfield units")
        self.checkpoint = QComboBox()
        self.checkpoint.setEditable(True)
        self.checkpoint.setToolTip(f"the model: '{STARTER_LABEL}' is the starter model that ships with the plugin "
                                   "(a first draft of the five organs, no training needed; check and correct it); "
                                   "models trained in this session are listed below it, newest first; or type or "
                                   "browse to a .pt / .safetensors checkpoint")
        self.checkpoint_browse = browse_button("Checkpoint file (.pt or .safetensors)", self.browse_checkpoint)
        self.file_dialog = None
        self.overlap = QDoubleSpinBox()
        self.overlap.setRange(0.0, 0.9)
        self.overlap.setSingleStep(0.05)
        self.overlap.setValue(DEFAULT_OVERLAP)  # ct.predict's own default
        self.overlap.setToolTip("overlap of tiles, used only when the body box is split into tiles")
        self.tta = QCheckBox("mirroring TTA (8x slower)")
        self.post = QCheckBox("keep largest components, fill holes")
        self.post.setChecked(True)
        self.anatomy = QCheckBox("anatomy check: remove organs where they cannot be")
        self.anatomy.setChecked(True)
        self.anatomy.setToolTip("ct.plausible: remove organ voxels outside the body or where the organ cannot lie "
                                "(a bladder outside the bony pelvis, a liver above the diaphragm); every removal is "
                                "said in the status line. Turn it off for phantoms and non-human anatomy")
        self.labellers = QCheckBox("lungs and bone from the automatic labellers")
        self.labellers.setToolTip("take lungs and bone from the labellers of the Label tab instead of the network: "
                                  "on for the starter model and models fine-tuned from it (its network is weaker "
                                  "there on real CT), off for other models, which predict every organ themselves")
        from .review import ReviewControls

        self.review = ReviewControls(self.viewer)  # "add uncertainty layer" and "Next uncertain region"
        self.button = QPushButton("Predict")
        self.button.clicked.connect(self.run)
        self.progress = QProgressBar()
        self.labels_combo = QComboBox()
        self.labels_combo.setToolTip("the (corrected) Labels layer of the CT layer; the latest prediction by default")
        self.add_case_button = QPushButton("Add to training set")
        self.add_case_button.setToolTip("snapshot the CT layer and the corrected labels as a new training case "
                                        "in the Train widget (then press Fine-tune there)")
        self.add_case_button.clicked.connect(lambda: self.add_to_training_set())
        self.prompt = EditedLayerPrompt()
        from .compare_ui import CompareControls

        self.compare = CompareControls(self)  # a new model is checked on the corrected labels before it is used

        form = QFormLayout()
        form.addRow("CT layer", self.image_combo)
        form.addRow("model", with_button(self.checkpoint, self.checkpoint_browse))
        form.addRow("tile overlap", self.overlap)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.tta)
        layout.addWidget(self.post)
        layout.addWidget(self.anatomy)
        layout.addWidget(self.labellers)
        layout.addWidget(self.review)
        layout.addWidget(self.button)
        layout.addWidget(self.progress)
        layout.addWidget(self.prompt)
        correct = QFormLayout()
        correct.addRow("corrected labels", self.labels_combo)
        layout.addLayout(correct)
        layout.addWidget(self.add_case_button)
        layout.addWidget(self.compare)
        layout.addWidget(self.status)
        layout.addStretch()
        self.listen(self.viewer.layers.events.inserted, self._refresh)
        self.listen(self.viewer.layers.events.removed, self._refresh)
        self.checkpoint.currentTextChanged.connect(self._update_buttons)
        self.checkpoint.currentTextChanged.connect(self._follow_model)
        self.image_combo.currentIndexChanged.connect(self._update_buttons)
        self.labels_combo.currentIndexChanged.connect(self._update_buttons)
        self._refresh()
        self._follow_model(self.checkpoint.currentText())

    def _follow_model(self, text: str) -> None:
        """The labellers' box follows the model chosen (``ct.predict``'s ``labelers="auto"``); the user may change
        it."""
        from ..infer.hybrid import starter_lineage

        self.labellers.setChecked(starter_lineage(text.strip() or None))

    def _refresh(self, *_):
        from .layers import ct_layer_names, labels_layer_names
        from .train_widget import TRAINED_CHECKPOINTS

        if self.closed:
            return
        fill_combo(self.image_combo, ct_layer_names(self.viewer))  # 3D, one value a voxel, no preview
        fill_combo(self.labels_combo, labels_layer_names(self.viewer))
        text = self.checkpoint.currentText()
        self.checkpoint.blockSignals(True)
        self.checkpoint.clear()
        self.checkpoint.addItems([STARTER_LABEL, *reversed(TRAINED_CHECKPOINTS)])  # the built-in model first
        if text:
            self.checkpoint.setCurrentText(text)
        self.checkpoint.blockSignals(False)
        self.compare.fill(list(reversed(TRAINED_CHECKPOINTS)))  # the newest model first
        self._update_buttons()

    def _update_buttons(self, *_):
        if self.closed:
            return
        busy = self.worker is not None
        has_ct = bool(self.image_combo.currentText())
        self.button.setEnabled(not busy and has_ct and bool(self.checkpoint.currentText().strip()))
        self.add_case_button.setEnabled(has_ct and bool(self.labels_combo.currentText()))
        if not busy:
            from .layers import refused_note

            self.hint("open a CT first (File > Open, or drop a scan or DICOM folder on the window)"
                      + refused_note(self.viewer) if not has_ct
                      else None if self.checkpoint.currentText().strip()
                      else f"choose a model: '{STARTER_LABEL}', a checkpoint (.pt or .safetensors), or train "
                      "one in the Train tab")

    def browse_checkpoint(self):
        """Open a (non-blocking) file dialog for a ``.pt`` or ``.safetensors`` checkpoint; returns the dialog."""
        self.file_dialog = open_file_dialog(self, self.checkpoint.lineEdit(), "checkpoint",
                                            "Checkpoint file (.pt or .safetensors)")
        return self.file_dialog

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    def _on_tiles(self, done: int, total: int):
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def run(self):
        """Start the prediction in a worker thread; returns the worker (or None when the inputs are missing)."""
        from .. import Predictor
        from ..quality import reporting_predict
        from .layers import volume_from_layer

        self._report: list = []
        predict = reporting_predict(self._report)  # keeps each organ's confidence, cut-off and removals

        name = self.image_combo.currentText()
        path = self.checkpoint.currentText().strip()
        if not name or not path:
            self.say("choose a CT layer and a checkpoint first")
            return None
        if self.worker is not None:
            self.say("a prediction is still running: wait for it or close the tab")
            return None
        layer = self.viewer.layers[name]
        try:
            vol = volume_from_layer(layer)
            predictor = Predictor.from_checkpoint(path)  # the starter's label: the built-in model
        except (ValueError, TypeError, FileNotFoundError, OSError, KeyError, RuntimeError) as exc:
            self.say(f"cannot predict: {exc}")
            return None
        overlap, tta, post = float(self.overlap.value()), self.tta.isChecked(), self.post.isChecked()
        anatomy = self.anatomy.isChecked()
        emit = self.cancellable(self._progress.tiles.emit)  # closing or cancelling stops at the next tile
        from ..labelers import ORGAN_LABELERS

        self._from_labelers = tuple(ORGAN_LABELERS) if self.labellers.isChecked() else ()
        labelers = self._from_labelers or None

        review = self.review.wanted

        def work():
            extra = ()
            if review:  # the same labels, with the uncertainty map and its regions (docs/uncertainty.md)
                from ..infer.regions import uncertain_regions
                from ..infer.uncertainty import uncertainty

                u, labels = uncertainty(vol, predictor, return_labels=True, overlap=overlap, tta=tta,
                                        postprocess_labels=post, progress=emit, labelers=labelers,
                                        plausible=anatomy)
                extra = (u, uncertain_regions(u, spacing=vol.spacing))
            else:
                labels = predict(vol, predictor, overlap=overlap, tta=tta, postprocess_labels=post, progress=emit,
                                 labelers=labelers, plausible=anatomy)
            # one comparison per label value: numpy ufuncs and reductions release the GIL (np.bincount holds it
            # for ~0.5 s on a 512 x 512 x 141 CT, freezing the viewer)
            found = [v for v in range(1, int(labels.max(initial=0)) + 1) if (labels == v).any()]
            return (labels, found, _digest(labels), *extra)  # the whole-volume passes stay off the GUI thread

        self.say(f"predicting '{name}' with {path}...")
        return self.start_job(work, what="prediction", on_result=lambda result: self._show(result, layer))

    def _show(self, result, ct_layer):
        self._show_labels(result[:3], ct_layer)
        if len(result) == 5 and ct_layer in self.viewer.layers:  # the uncertainty layer goes above the labels
            self.review.show(result[3], result[4], ct_layer)

    def _show_labels(self, result, ct_layer):
        labels, self._found, self._labels_digest = result
        if ct_layer not in self.viewer.layers:
            self.say(f"prediction done, but '{ct_layer.name}' was removed meanwhile; nothing added")
            return
        name = f"{ct_layer.name} prediction"
        target = self.viewer.layers[name] if name in self.viewer.layers else None
        if target is not None and np.shape(target.data) == labels.shape:
            if target.metadata.get(DIGEST_KEY) == _digest(target.data):
                self._apply(labels, ct_layer, "refresh")  # our own earlier prediction, unedited
            else:  # the user edited it (or it is theirs): ask before touching it
                self.prompt.ask(name, lambda choice: self._apply(labels, ct_layer, choice))
                self.status.setText(f"prediction done: '{name}' has edits; choose below what to do with the result")
            return
        self._apply(labels, ct_layer, "new layer")

    def _apply(self, labels: np.ndarray, ct_layer, choice: str):
        """``refresh`` or ``replace`` the existing prediction layer, add a ``new layer``, or ``discard``."""
        from ..organs import ORGANS
        from .layers import labels_layer_kwargs, paint, volume_from_layer

        name = f"{ct_layer.name} prediction"
        if choice == "discard":
            self.status.setText(f"prediction discarded; '{name}' kept as edited")
            return
        if choice == "refresh":
            layer = self.viewer.layers[name]
            layer.data = labels
        elif choice == "replace":  # through the edit history: undo in that layer brings the edits back
            layer = self.viewer.layers[name]
            paint(layer, labels != np.asarray(layer.data), labels)
        else:
            vol = volume_from_layer(ct_layer)
            kwargs = labels_layer_kwargs(vol, name=name)
            kwargs["scale"], kwargs["translate"] = tuple(ct_layer.scale), tuple(ct_layer.translate)
            if name in self.viewer.layers:
                i = 2
                while f"{name} [{i}]" in self.viewer.layers:
                    i += 1
                kwargs["name"] = f"{name} [{i}]"
            layer = self.viewer.add_labels(labels, **kwargs)
        layer.metadata[DIGEST_KEY] = self._labels_digest
        self.result_layer = layer
        self.labels_combo.setCurrentText(layer.name)
        found, source = self._found, self._from_labelers
        note = f"{' and '.join(source)} from the automatic labellers; " if source else ""
        self.status.setText(f"'{layer.name}': " + (", ".join(ORGANS[v].name for v in found if v in ORGANS)
                                                   or "no organ found") + f" ({note}editable: paint, fill, erase)"
                            + "".join(f"\n{line}" for line in (getattr(self, "_report", None) or [[]])[-1]))

    def add_to_training_set(self, image: str | None = None, labels: str | None = None) -> bool:
        """Snapshot the CT layer and its corrected Labels layer as a new case in this viewer's Train widget.

        The arrays are copied (later edits do not change the case) and the geometry comes from the CT layer.
        Returns True when the case was added; otherwise the status line says why.
        """
        from .layers import volume_from_layer
        from .train_widget import train_widget_for

        image = image or self.image_combo.currentText()
        labels = labels or self.labels_combo.currentText()
        if not image or not labels or image not in self.viewer.layers or labels not in self.viewer.layers:
            self.status.setText("choose a CT layer and its corrected Labels layer first")
            return False
        trainer = train_widget_for(self.viewer)
        if trainer is None:
            self.say("open the Train widget first (Plugins > CT Organs > Train, or the Train tab of the CT Organs "
                     "panel), then add the case")
            return False
        try:
            vol = volume_from_layer(self.viewer.layers[image])
            trainer.add_snapshot(vol, np.asarray(self.viewer.layers[labels].data), name=f"{image} + {labels}")
        except (ValueError, TypeError) as exc:
            self.status.setText(f"cannot add the case: {exc}")
            return False
        self.status.setText(f"added '{image}' + '{labels}' to the training set ({len(trainer.cases)} cases); "
                            "press Fine-tune in the Train widget")
        return True
