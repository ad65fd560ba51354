"""The controls of the Train widget and their layout (the widget's behaviour is in :mod:`.train_widget`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

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
)

from .train_choice import RunChoice
from .train_pickers import browse_button, with_button
from .train_plot import TrainPlot

__all__ = ["setup_ui", "DEFAULT_OUTPUT"]

#: the output folder a new Train widget offers
DEFAULT_OUTPUT = Path(tempfile.gettempdir()) / "ctorgans-runs" / "run"


def setup_ui(w) -> None:
    """Create the controls of the Train widget ``w`` as its attributes, connect them to its methods, lay them out."""
    from ..nn import MODEL_PRESETS
    from ..nn.losses import LOSSES, WEIGHTING_SCHEMES
    from ..train import TRAIN_PRESETS

    w.image_combo, w.labels_combo = QComboBox(), QComboBox()
    for combo in (w.image_combo, w.labels_combo):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(6)
    add = QPushButton("Add pair")
    add.setToolTip("add the chosen Image + Labels layers as a training case")
    add.clicked.connect(lambda: w.add_pair())
    w.case_list = QListWidget()
    w.case_list.setMaximumHeight(70)
    w.folder = QLineEdit()
    w.folder.setPlaceholderText("or a folder of cases (CT-ORG or imagesTr/labelsTr)")
    w.hold_out = QCheckBox("validate on the last case")
    w.hold_out.setToolTip("keep the last case out of training and report its per-organ Dice")
    w.preset = QComboBox()
    w.preset.addItems(sorted(TRAIN_PRESETS))
    w.preset.setCurrentText("cpu-quick")
    w.preset.currentTextChanged.connect(w._apply_preset)
    w.model = QComboBox()
    w.model.addItems(sorted(MODEL_PRESETS))
    w.loss = QComboBox()
    w.loss.addItems(list(LOSSES))
    w.weighting = QComboBox()
    w.weighting.addItems(list(WEIGHTING_SCHEMES))
    w.lr = QDoubleSpinBox()
    w.lr.setDecimals(5)
    w.lr.setRange(1e-5, 1.0)
    w.lr.setSingleStep(1e-3)
    w.iterations = QSpinBox()
    w.iterations.setRange(1, 1_000_000)
    w.crop = QSpinBox()
    w.crop.setRange(8, 256)
    w.crop.setSingleStep(8)
    w.crop.setSuffix(" voxels")
    w.augment_json = QLineEdit()
    w.augment_json.setPlaceholderText("the preset's (or a JSON file from the preview)")
    w.output_dir = QLineEdit(str(DEFAULT_OUTPUT))
    w.output_dir.textChanged.connect(lambda _: w.choice.hide())
    w.folder_browse = _browse_button(w, w.folder, "folder", "Folder of training cases")
    w.augment_browse = _browse_button(w, w.augment_json, "json", "Augmentation parameters (JSON)")
    w.output_browse = _browse_button(w, w.output_dir, "folder", "Output folder of the run")

    w.start_button, w.pause_button, w.stop_button = (QPushButton(t) for t in ("Start", "Pause", "Stop"))
    w.start_button.clicked.connect(lambda: w.start())
    w.finetune_button = QPushButton("Fine-tune")
    w.finetune_button.setToolTip("continue training from the current checkpoint (the model trained last; the "
                                 "built-in starter model when none was trained in this session) on all cases "
                                 "(including corrected ones) into a new output folder")
    w.finetune_button.clicked.connect(lambda: w.fine_tune())
    w.pause_button.clicked.connect(w.toggle_pause)
    w.stop_button.clicked.connect(w.stop)

    _build_choice(w)

    w.progress = QProgressBar()
    w.progress.setFormat("iteration %v / %m")
    w.val_progress = QProgressBar()
    w.val_progress.hide()
    w.speed_label = QLabel("")
    w.plot = TrainPlot()
    w.dice_label = QLabel("")
    w.dice_label.setWordWrap(True)
    _lay_out(w, add)


def _build_choice(w) -> None:
    """The row shown when the output folder already holds a run: Resume / Replace / New folder."""
    w.choice = RunChoice(w.resume_run, w.replace_run, w.new_folder_run)
    w.choice_label = w.choice.label
    w.resume_button, w.replace_button, w.new_folder_button = w.choice.buttons


def _lay_out(w, add: QPushButton) -> None:
    pair = QHBoxLayout()
    pair.addWidget(w.image_combo, 1)
    pair.addWidget(w.labels_combo, 1)
    pair.addWidget(add)
    form = QFormLayout()
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.addRow("preset", w.preset)
    form.addRow("model", w.model)
    form.addRow("loss", w.loss)
    form.addRow("class weighting", w.weighting)
    form.addRow("learning rate", w.lr)
    form.addRow("iterations", w.iterations)
    form.addRow("crop size", w.crop)
    form.addRow("augmentation", with_button(w.augment_json, w.augment_browse))
    form.addRow("output folder", with_button(w.output_dir, w.output_browse))
    buttons = QHBoxLayout()
    for b in (w.start_button, w.finetune_button, w.pause_button, w.stop_button):
        buttons.addWidget(b)
    layout = QVBoxLayout(w)
    layout.addWidget(QLabel("cases: Image + Labels layers"))
    layout.addLayout(pair)
    layout.addWidget(w.case_list)
    layout.addLayout(with_button(w.folder, w.folder_browse))
    layout.addWidget(w.hold_out)
    layout.addLayout(form)
    layout.addLayout(buttons)
    layout.addWidget(w.choice)
    for item in (w.progress, w.val_progress, w.speed_label, w.plot, w.dice_label, w.status):
        layout.addWidget(item)
    layout.addStretch()


def _browse_button(w, edit: QLineEdit, kind: str, caption: str) -> QPushButton:
    return browse_button(caption, lambda: w.browse(edit, kind, caption))
