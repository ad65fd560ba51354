"""The Predict tab's model check: before a new (fine-tuned) model replaces the one in use, both predict the CT and
are scored against its corrected labels organ by organ (``ct.compare_models``); the tab says what got worse or
better and asks which model to keep."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget


class CompareControls(QWidget):
    """"compare with" (a candidate model), "Compare on the corrected labels", then "Use the new model" or "Keep
    the current model". ``step`` is the Predict widget: its CT layer, model and corrected labels are used."""

    def __init__(self, step, parent=None):
        super().__init__(parent)
        self.step = step
        self.result = None
        self.candidate = QComboBox()
        self.candidate.setEditable(True)
        self.candidate.setToolTip("the new model to check against the one chosen above (e.g. the fine-tuned "
                                  "checkpoint); type or paste a .pt / .safetensors path")
        self.button = QPushButton("Compare on the corrected labels")
        self.button.setToolTip("predict the CT with both models and score each organ against the corrected "
                               "labels; nothing changes until you choose below")
        self.button.clicked.connect(lambda: self.compare())
        self.use_new = QPushButton("Use the new model")
        self.keep_old = QPushButton("Keep the current model")
        self.use_new.clicked.connect(lambda: self.choose(True))
        self.keep_old.clicked.connect(lambda: self.choose(False))
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        form = QFormLayout()
        form.addRow("compare with", self.candidate)
        answers = QHBoxLayout()
        answers.addWidget(self.use_new)
        answers.addWidget(self.keep_old)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.button)
        layout.addWidget(self.summary)
        layout.addLayout(answers)
        self._asking(False)

    def _asking(self, on: bool) -> None:
        self.use_new.setVisible(on)
        self.keep_old.setVisible(on)

    def fill(self, models: list[str]) -> None:
        text = self.candidate.currentText()
        self.candidate.blockSignals(True)
        self.candidate.clear()
        self.candidate.addItems(models)
        if text:
            self.candidate.setCurrentText(text)
        self.candidate.blockSignals(False)

    def compare(self):
        """Start the comparison in a worker; returns it (None when an input is missing)."""
        from ..infer.compare import compare_models
        from ..infer.predict import Predictor
        from .layers import volume_from_layer

        step, viewer = self.step, self.step.viewer
        image, labels = step.image_combo.currentText(), step.labels_combo.currentText()
        old, new = step.checkpoint.currentText().strip(), self.candidate.currentText().strip()
        if not image or not labels or image not in viewer.layers or labels not in viewer.layers:
            self.summary.setText("choose the CT layer and its corrected labels first")
            return None
        if not new or new == old:
            self.summary.setText("choose under 'compare with' a model other than the one in use")
            return None
        if step.worker is not None:
            self.summary.setText("wait for the running prediction first")
            return None
        try:
            vol = volume_from_layer(viewer.layers[image])
            ref = np.array(viewer.layers[labels].data)  # a copy: later edits do not change the comparison
            models = [Predictor.from_checkpoint(p) for p in (old, new)]
        except (ValueError, TypeError, FileNotFoundError, OSError, KeyError, RuntimeError) as exc:
            self.summary.setText(f"cannot compare: {exc}")
            return None
        if ref.shape != vol.shape:
            self.summary.setText(f"'{labels}' is not on the grid of '{image}': choose its own corrected labels")
            return None
        self._asking(False)
        self.summary.setText(f"comparing {old} with {new} on '{labels}'...")
        cases = [{"name": f"'{image}'", "volume": vol, "labels": ref}]
        return step.start_job(lambda: compare_models(*models, cases), what="comparison", on_result=self._show)

    def _show(self, result) -> None:
        self.result = result
        self.summary.setText(result.summary)
        self._asking(True)

    def choose(self, new: bool) -> None:
        """Answer the question: the Predict tab's model becomes the candidate (``new``) or stays."""
        if self.result is None:
            return
        self._asking(False)
        if new:
            self.step.checkpoint.setCurrentText(self.candidate.currentText())
            self.summary.setText(f"now using {self.candidate.currentText()} ({self.result.summary})")
        else:
            self.summary.setText(f"kept {self.step.checkpoint.currentText()}")
        self.result = None
