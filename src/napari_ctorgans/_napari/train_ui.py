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
    QWidget,
)

from .train_choice import RunChoice
from .train_pickers import browse_button, with_button
from .train_plot import TrainPlot

__all__ = ["setup_ui", "DEFAULT_OUTPUT"]

#: the output folder a new Train widget offers
DEFAULT_OUTPUT = Path(tempfile.gettempdir()) / "ctorgans-runs" / "run"


#: the tooltip of each control of the Train tab (attribute of the widget -> text)
TOOLTIPS: dict[str, str] = {
    "image_combo": "the CT of a training case (a 3D Image layer in HU)",
    "labels_combo": ("its organ labels (a Labels layer on the CT's grid: 1 liver, 2 bladder, 3 lungs, 4 kidneys, "
                     "5 bone)"),
    "case_list": "the training cases: layer pairs, and snapshots added from the Predict tab",
    "folder": ("train on the cases of a folder instead of the layer pairs (CT-ORG volume-N / labels-N, or "
               "nnU-Net imagesTr / labelsTr)"),
    "hold_out": "keep the last case out of training and report its per-organ Dice",
    "preset": ("a set of settings that go together (cpu-quick: a small network, minutes on a laptop CPU); "
               "choosing one fills in the settings below"),
    "model": "the network: cpu-small trains on a CPU; the paper networks need a GPU",
    "loss": "what training minimises (iou, dice, cross entropy, or their combinations)",
    "weighting": ("how the organs are weighted in the loss (small organs such as the kidneys gain from "
                  "weighting)"),
    "lr": "the optimiser's step size (Adam)",
    "iterations": "training steps; the estimated time beside Start follows this number",
    "crop": ("side of the cubes cut from the cases for each step: larger sees more context, costs more "
             "memory and time"),
    "augment_json": "augmentation parameters saved from the Augment tab (empty: the preset's)",
    "output_dir": "where the run writes last.pt, best.pt and config.json",
    "start_button": "train a new model on the cases with these settings",
    "pause_button": "pause after the iteration under way; press again to continue",
    "stop_button": "stop after the iteration under way; last.pt is written and can be resumed",
    "estimate_label": ("the time the run should take on this machine: one training step of this model and crop "
                       "size is measured and multiplied by the iterations (validation not included); during a run, "
                       "the measured speed"),
    "finetune_button": ("continue training from the current checkpoint (the model trained last; the built-in "
                        "starter model when none was trained in this session) on all cases (including corrected "
                        "ones) into a new output folder"),
    "skip_button": ("write last.pt now, with the batch-norm statistics of the last iteration instead of "
                    "recomputed ones (a prediction from it may be a little less accurate; resuming is "
                    "unaffected)"),
    "progress": "iterations done",
    "val_progress": "the validation or batch-norm recalibration under way",
    "plot": "training loss (top) and validation Dice per organ (bottom)",
}


def setup_ui(w) -> None:
    """Create the controls of the Train widget ``w`` as its attributes, connect them to its methods, lay them out."""
    from ..nn import MODEL_PRESETS
    from ..nn.losses import LOSSES, WEIGHTING_SCHEMES
    from ..train import TRAIN_PRESETS

    w.image_combo, w.labels_combo = QComboBox(), QComboBox()
    for combo in (w.image_combo, w.labels_combo):  # one row each: the whole layer name shows
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(12)
    add = QPushButton("Add pair")
    add.setToolTip("add the chosen CT + labels layers as a training case")
    add.clicked.connect(lambda: w.add_pair())
    w.case_list = QListWidget()
    w.case_list.setMaximumHeight(48)
    w.folder = QLineEdit()
    w.folder.setPlaceholderText("or a folder of cases (CT-ORG or imagesTr/labelsTr)")
    w.hold_out = QCheckBox("validate on the last case")
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
    w.estimate_label = QLabel("")
    w.estimate_label.setWordWrap(True)
    w.finetune_button = QPushButton("Fine-tune")
    w.finetune_button.clicked.connect(lambda: w.fine_tune())
    w.pause_button.clicked.connect(w.toggle_pause)
    w.stop_button.clicked.connect(w.stop)
    w.skip_button = QPushButton("Skip recalibration")
    w.skip_button.clicked.connect(w.skip_recalibration)
    w.skip_button.hide()

    _build_choice(w)

    w.progress = QProgressBar()
    w.progress.setFormat("iteration %v / %m")
    w.val_progress = QProgressBar()
    w.val_progress.hide()
    w.speed_label = QLabel("")
    w.plot = TrainPlot()
    w.dice_label = QLabel("")
    w.dice_label.setWordWrap(True)
    for name, tip in TOOLTIPS.items():
        getattr(w, name).setToolTip(tip)
    _lay_out(w, add)


def import_optimiser_stack() -> None:
    """Import what torch's optimisers import on their first use (torch._dynamo, with sympy): called when the Train
    tab is first shown.

    Imported by the first run's optimiser in the training thread, it starved the GUI thread for 1.3 to 1.7 s (the
    training start-up freeze). Here the first showing of the Train tab takes that much longer instead (3.3 s on a
    loaded 2-core machine, measured with
    ``python -c "import torch, time; t = time.perf_counter(); import torch._dynamo; print(time.perf_counter() - t)"``).
    """
    try:
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001 - a torch without it: the optimiser imports what it needs
        pass


def _build_choice(w) -> None:
    """The row shown when the output folder already holds a run: Resume / Replace / New folder."""
    w.choice = RunChoice(w.resume_run, w.replace_run, w.new_folder_run)
    w.choice_label = w.choice.label
    w.resume_button, w.replace_button, w.new_folder_button = w.choice.buttons


def _lay_out(w, add: QPushButton) -> None:
    """Cases, the preset and iterations, Start with its estimated time, the status and the plot: all visible at
    1280 x 800; the other settings fold away under "More settings"."""
    from superqt import QCollapsible

    cases = QFormLayout()
    cases.addRow("CT", w.image_combo)
    labels = QHBoxLayout()
    labels.addWidget(w.labels_combo, 1)
    labels.addWidget(add)
    cases.addRow("labels", labels)
    more_form = QFormLayout()
    more_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    more_form.addRow("cases folder", with_button(w.folder, w.folder_browse))
    more_form.addRow("model", w.model)
    more_form.addRow("loss", w.loss)
    more_form.addRow("class weighting", w.weighting)
    more_form.addRow("learning rate", w.lr)
    more_form.addRow("crop size", w.crop)
    more_form.addRow("augmentation", with_button(w.augment_json, w.augment_browse))
    more = QWidget()
    more.setLayout(more_form)
    w.more_settings = QCollapsible("More settings")
    for toggle in [w.more_settings, *w.more_settings.findChildren(QPushButton)]:  # its fold button: the only one
        toggle.setToolTip("the network, loss, class weighting, learning rate, crop size, augmentation file and a "
                          "folder of cases (the preset fills them in)")
    w.more_settings.addWidget(more)
    form = QFormLayout()
    form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
    form.addRow("preset", w.preset)
    form.addRow("iterations", w.iterations)
    form.addRow("output folder", with_button(w.output_dir, w.output_browse))
    buttons = QHBoxLayout()
    for b in (w.start_button, w.finetune_button, w.pause_button, w.stop_button):
        buttons.addWidget(b)
    layout = QVBoxLayout(w)
    layout.addLayout(cases)
    layout.addWidget(w.case_list)
    layout.addWidget(w.hold_out)
    layout.addLayout(form)
    layout.addWidget(w.more_settings)
    layout.addLayout(buttons)
    layout.addWidget(w.estimate_label)
    layout.addWidget(w.choice)
    for item in (w.status, w.skip_button, w.progress, w.val_progress, w.speed_label, w.plot, w.dice_label):
        layout.addWidget(item)
    layout.addStretch()


def _browse_button(w, edit: QLineEdit, kind: str, caption: str) -> QPushButton:
    return browse_button(caption, lambda: w.browse(edit, kind, caption))


def follow_estimate(w) -> None:
    """Keep ``w.estimate_label`` (beside Start) on the estimated time of the run the settings describe: a change of
    preset, network, loss, crop size or iterations re-estimates it (debounced; the step is timed in a worker thread
    while the Train tab is shown and no run is under way)."""
    from qtpy.QtCore import QTimer

    timer = QTimer(w)
    timer.setSingleShot(True)
    timer.setInterval(400)
    timer.timeout.connect(lambda: _estimate(w))
    w._estimate_timer = timer
    for signal in (w.preset.currentTextChanged, w.model.currentTextChanged, w.loss.currentTextChanged,
                   w.crop.valueChanged, w.iterations.valueChanged):
        signal.connect(lambda *_: timer.start())
    timer.start()


def _estimate(w) -> None:
    import weakref

    from superqt.utils import create_worker

    from .step import JobDone, gone
    from .train_estimate import _MEASURED, _key, estimate_text, step_seconds

    from .step import gone

    if gone(w) or w.worker is not None:
        return
    if not w.isVisible():  # measured when the tab is shown (Step.showEvent restarts the timer)
        w._estimate_stale = True
        return
    try:
        cfg = w.config()
    except (ValueError, TypeError, OSError):
        w.estimate_label.setText("")
        return
    if _key(cfg) in _MEASURED:
        w.estimate_label.setText(estimate_text(cfg, _MEASURED[_key(cfg)]))
        return
    w.estimate_label.setText("estimating the time of a run (timing one training step)...")
    done = JobDone()

    def measure():
        try:
            return step_seconds(cfg, repeats=1)
        finally:
            done.set()

    worker = create_worker(measure, _start_thread=False)
    done.track(worker)  # waited for before Python exits (step.wait_for_jobs)
    ref = weakref.ref(w)  # a measurement still running never keeps a closed viewer alive
    worker.returned.connect(lambda s: None if ref() is None or gone(ref()) else _estimate(ref()))
    worker.errored.connect(lambda exc: None if ref() is None or gone(ref()) else ref().estimate_label.setText(""))
    w._estimate_worker = worker
    worker.start()
