"""The "Train" dock widget: a thin skin over :func:`napari_ctorgans.train`, run in a worker thread.

Cases come from Image + Labels layer pairs, snapshots added by the Predict widget, or a folder. The controls and
their layout (:mod:`.train_ui`), the live plot with its speed and ETA (:mod:`.train_plot`), the Resume / Replace /
New folder row (:mod:`.train_choice`) and the file pickers (:mod:`.train_pickers`) have modules of their own.
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path

import numpy as np
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QFileDialog, QLineEdit

from .step import Step
from .train_choice import free_folder
from .train_pickers import open_file_dialog
from .train_plot import TrainPlot, speed_and_eta, speed_text
from .train_ui import DEFAULT_OUTPUT, follow_estimate, setup_ui

# TrainPlot and speed_and_eta live in .train_plot and are still importable from here
__all__ = ["TrainWidget", "TrainPlot", "speed_and_eta", "train_widget_for", "TRAINED_CHECKPOINTS"]

#: checkpoints written by Train widgets in this session, newest last (the Predict widget offers them)
TRAINED_CHECKPOINTS: list[str] = []

#: the open Train widgets (the Predict widget's "Add to training set" finds the one of its viewer here)
_TRAIN_WIDGETS: "weakref.WeakSet[TrainWidget]" = weakref.WeakSet()


def train_widget_for(viewer) -> "TrainWidget | None":
    """The Train widget open in ``viewer`` (the most recently created one), or None."""
    found = [w for w in list(_TRAIN_WIDGETS) if w.viewer is viewer and not w.closed]
    return max(found, key=lambda w: w._serial) if found else None


def stopping_text(statuses: list, config, under_way: bool = False) -> str:
    """What a stopping run is finishing: the iteration ``under_way`` (else the last one reported is done), then
    (unless skipped) the batch-norm statistics, then ``last.pt``."""
    n = statuses[-1].iteration if statuses else 0
    at = f"finishing iteration {n + 1}" if under_way or not statuses else f"iteration {n} done"
    bn = (f"recomputing the batch-norm statistics ({config.bn_recalibration} crops; Skip to keep the last "
          "iteration's), then " if config.bn_recalibration > 0 else "")
    return f"stopping: {at}; {bn}writing last.pt..."


def _dice_text(val_dice: dict) -> str:
    return "val Dice: " + ", ".join(f"{k} {v:.2f}" for k, v in val_dice.items())


class _Relay(QObject):
    """Carries the training's progress callback (called in the worker thread) to the GUI thread."""

    progress = Signal(int, int, str)
    history = Signal(object)  # a resumed run's earlier losses and validations (train_plot.run_history)


class TrainWidget(Step):
    """Train a model on Image + Labels layer pairs or a folder of cases, in a worker thread.

    Closing the widget or its dock (:meth:`Step.teardown`) stops a running training after its current iteration
    (``last.pt`` is written) and disconnects the widget from the viewer.
    """

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.statuses: list = []
        self.checkpoint: str | None = None
        self.run_request: dict | None = None  # what the last run asked ct.train for (config, resume, overwrite)
        self.file_dialog: QFileDialog | None = None
        self._stop = False
        self._skip_bn = False  # skip the batch-norm recalibration of a stopped run
        self._paused = False
        self._failed = False
        # (image layer, labels layer) names, or (Volume, labels array) snapshots from "Add to training set"
        self.cases: list[tuple] = []
        self._serial = time.monotonic_ns()
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        self._relay.history.connect(self._on_history)
        self._history_shown = False  # the plot shows the history of the resumed run under way
        self._chosen_labels: set[str] = set()  # Labels layers the user picked (never replaced by a default)
        _TRAIN_WIDGETS.add(self)
        setup_ui(self)
        self.labels_combo.activated.connect(lambda _: self._chosen_labels.add(self.labels_combo.currentText()))
        self.image_combo.currentIndexChanged.connect(lambda _: self._default_labels())
        self._apply_preset(self.preset.currentText())
        self._busy(False)
        self.listen(self.viewer.layers.events.inserted, self._refresh)
        self.listen(self.viewer.layers.events.removed, self._refresh)
        self._refresh()
        follow_estimate(self)

    def showEvent(self, ev):  # noqa: N802 - Qt API
        super().showEvent(ev)
        from .train_ui import import_optimiser_stack

        import_optimiser_stack()  # once: the first run's start then never freezes the viewer
        if getattr(self, "_estimate_stale", False):
            self._estimate_stale = False
            self._estimate_timer.start()

    # layout (train_ui.setup_ui) -----------------------------------------------------------------------------------
    def browse(self, edit: QLineEdit, kind: str, caption: str) -> QFileDialog:
        """Open a file dialog (non-blocking, ``self.file_dialog``) whose choice goes into ``edit``."""
        self.file_dialog = open_file_dialog(self, edit, kind, caption)
        return self.file_dialog

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
        from .layers import ct_layer_names, labels_layer_names, refused_note
        from .step import fill_combo

        if self.closed:
            return
        fill_combo(self.image_combo, ct_layer_names(self.viewer))  # 3D, one value a voxel, no preview
        fill_combo(self.labels_combo, labels_layer_names(self.viewer))
        self._default_labels()
        note = refused_note(self.viewer)
        if self.worker is None:
            self.hint(f"no CT to train on yet{note}" if note and not self.image_combo.count() else None)

    def _default_labels(self) -> None:
        """Unless the user chose one: a Labels layer on the CT's grid that holds labels, before an empty one (a
        tool's fresh working layer)."""
        ct_name, current = self.image_combo.currentText(), self.labels_combo.currentText()
        if not ct_name or current in self._chosen_labels:
            return
        shape = np.shape(self.viewer.layers[ct_name].data)
        names = [self.labels_combo.itemText(i) for i in range(self.labels_combo.count())]
        same = [self.viewer.layers[n] for n in names if np.shape(self.viewer.layers[n].data) == shape]
        if same:
            best = max(same, key=lambda ly: bool(np.asarray(ly.data).any()))  # the first that holds labels
            self.labels_combo.setCurrentText(best.name)

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
        from ..augment import AugmentParams
        from ..train import TrainConfig

        changes = {}
        path = self.augment_json.text().strip()
        if path:  # otherwise the preset's augmentation
            try:
                changes["augment"] = AugmentParams.load(path).to_dict()
            except (ValueError, TypeError) as exc:
                raise ValueError(f"augmentation file {path}: {exc}; fix it or clear the field") from None
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
    def start(self, *, resume: bool = False, overwrite: bool = False):
        """Train with the widget's settings in a worker thread; returns the worker (None when it cannot start).

        When the output folder already holds a run, the run is refused in the worker and the Resume / Replace /
        New folder buttons appear (``resume`` and ``overwrite`` are what they pass to :func:`ct.train`).
        """
        try:
            cfg = self.config()
        except (ValueError, TypeError, OSError) as exc:
            self.status.setText(f"cannot start: {exc}")
            return None
        return self._launch(cfg, resume=resume, overwrite=overwrite)

    def resume_run(self):
        """Continue the run in the output folder (``ct.train(..., resume=True)``); a changed setting is refused."""
        return self.start(resume=True)

    def replace_run(self):
        """Start afresh in the output folder, replacing its run (``ct.train(..., overwrite=True)``)."""
        return self.start(overwrite=True)

    def new_folder_run(self):
        """Start afresh in the first free ``<output folder>-N`` beside the output folder."""
        base = Path(self.output_dir.text().strip() or DEFAULT_OUTPUT)
        self.output_dir.setText(str(free_folder(base)))
        return self.start()

    def fine_tune(self, checkpoint: str | None = None):
        """Continue training from ``checkpoint`` on all cases, into a new folder.

        ``checkpoint`` defaults to the current one (the last model trained in this widget), else the newest trained
        in this session, else the built-in starter model (:func:`napari_ctorgans.models.starter_path`).

        The weights come from the checkpoint (with a fresh optimiser, ``TrainConfig.init_checkpoint``), the model
        and working spacing from the checkpoint's own configuration, the other settings from the widget. The run
        goes to ``<output folder>-finetune-N`` (the first N that does not exist), so the previous run's checkpoints
        are never replaced. Returns the worker, or None when it cannot start.
        """
        from ..models import is_starter, resolve_model
        from ..train import read_checkpoint

        checkpoint = checkpoint or self.checkpoint or (TRAINED_CHECKPOINTS[-1] if TRAINED_CHECKPOINTS else None)
        starter = is_starter(checkpoint)  # no model given or trained: the built-in starter model
        try:
            checkpoint = str(resolve_model(checkpoint))
            info = read_checkpoint(checkpoint)
            cfg = self.config()
        except (ValueError, TypeError, OSError) as exc:
            self.status.setText(f"cannot fine-tune: {exc}")
            return None
        # never into the package's own folder: the starter's run goes beside the default output folder
        base = self.output_dir.text().strip() or (DEFAULT_OUTPUT if starter else Path(checkpoint).parent)
        out = free_folder(Path(base), "-finetune-")
        spacing = (info.get("train_config") or {}).get("spacing", cfg.spacing)
        cfg = cfg.replace(model=dict(info["model_config"]), spacing=float(spacing), init_checkpoint=str(checkpoint),
                          output_dir=str(out))
        self.output_dir.setText(str(out))
        verb = "fine-tuning the built-in starter model" if starter else "fine-tuning"
        return self._launch(cfg, resume=False, overwrite=False, verb=verb)

    def _launch(self, cfg, *, resume: bool, overwrite: bool, verb: str = "training"):
        try:
            train_cases, val_cases = self._case_data()
        except (ValueError, TypeError, KeyError, OSError) as exc:
            self.status.setText(f"cannot {'start' if verb == 'training' else 'fine-tune'}: {exc}")
            return None
        self.run_request = {"config": cfg, "resume": resume, "overwrite": overwrite, "verb": verb,
                            "validating": bool(val_cases)}
        self._stop = self._paused = self._history_shown = self._skip_bn = False
        self.statuses.clear()  # the plot keeps the previous run until this one reports (a refused run keeps it)
        self.choice.hide()
        from .train_run import training_worker

        self.worker = training_worker(self, cfg, train_cases, val_cases, resume=resume, overwrite=overwrite)
        self.worker.yielded.connect(self._on_status)
        self.worker.returned.connect(self._on_returned)
        self.worker.finished.connect(self._finished)
        self._busy(True)
        self.status.setText(f"{verb}: preparing the cases and the model...")
        self.worker.start()
        return self.worker

    def toggle_pause(self):
        if self.worker is None:
            return
        self._paused = not self._paused  # the worker waits after the current iteration
        self.pause_button.setText("Continue" if self._paused else "Pause")
        self.status.setText("paused" if self._paused else "training...")

    def stop(self):
        """Stop after the iteration under way; the status line says what is being finished, with its progress."""
        if self.worker is None or self._stop:
            return
        self._stop = True
        self._paused = False
        self.pause_button.setEnabled(False)
        self.stop_button.setEnabled(False)
        self.speed_label.setText("")  # no ETA for a run that is ending
        self.status.setText(stopping_text(self.statuses, self.run_request["config"], under_way=True))
        self.skip_button.setVisible(self.run_request["config"].bn_recalibration > 0)

    def skip_recalibration(self):
        """Let a stopping run write ``last.pt`` without recomputing its batch-norm statistics (it keeps those of its
        last iteration; ``best.pt`` and the final checkpoint of a finished run are recalibrated as before)."""
        self._skip_bn = True
        self.skip_button.hide()
        if self.worker is not None:
            self.status.setText("stopping: batch-norm recalibration skipped; writing last.pt...")

    def cancel(self, quiet: bool = False) -> None:
        """Stop the run after its current iteration (the worker closes the training, which writes ``last.pt``);
        ``quiet`` (the widget closing) also skips the batch-norm recalibration, so the run ends within seconds."""
        if quiet:
            self._stop, self._paused, self._skip_bn = True, False, True
        else:
            self.stop()

    # reports from the worker ----------------------------------------------------------------------------------------
    def _on_progress(self, done: int, total: int, what: str):
        if self.closed or self.worker is None:
            return
        self.val_progress.setRange(0, max(total, 1))
        self.val_progress.setValue(done)
        self.val_progress.setFormat(f"{what}: {'%v / %m' if what == 'batch norm' else 'tile %v / %m'}")
        self.val_progress.show()
        doing = "recomputing batch-norm statistics" if what == "batch norm" else what
        at = f"iteration {self.statuses[-1].iteration + 1}: " if self.statuses else ""  # a resumed run: unknown yet
        if self._stop:
            at = "stopping: " + ("" if what == "batch norm" else at)
            doing += " before writing last.pt" if what == "batch norm" else ""
        self.status.setText(f"{at}{doing} ({done}/{total})")

    def _on_history(self, history: dict):
        """Draw a resumed run's earlier iterations (they arrive before its first report)."""
        if self.closed or self.worker is None:
            return
        self.plot.show_history(history)
        self._history_shown = True
        self.speed_label.setText("")
        self.dice_label.setText(_dice_text(history["validations"][-1][1]) if history["validations"] else "")
        self.progress.setRange(0, self.run_request["config"].iterations)
        self.progress.setValue(history["iterations"][-1] if history["iterations"] else 0)

    def _on_status(self, status):
        if self.closed:
            return
        if not self.statuses:  # the run's first report: its own curves from here (a resumed run's after its history)
            if not self._history_shown:
                self.plot.clear_curves()
                self.dice_label.setText("")
            self.speed_label.setText("")
            self.progress.setRange(0, status.iterations)
        self.statuses.append(status)
        self.val_progress.hide()
        self.progress.setValue(status.iteration)
        self.plot.add(status)
        if status.val_dice:
            self.dice_label.setText(_dice_text(status.val_dice))
        if status.checkpoint:
            self.checkpoint = status.checkpoint
        cfg = self.run_request["config"]
        if self._stop:  # the iteration under way when Stop was pressed: no ETA, the status says what is finishing
            self.status.setText(stopping_text(self.statuses, cfg))
            return
        rate, eta = speed_and_eta(self.statuses, status.iterations, cfg.validate_every,
                                  self.run_request["validating"])
        if np.isfinite(rate):
            self.speed_label.setText(speed_text(rate, eta))
        notes = [status.message, *status.warnings]
        text = f"iteration {status.iteration}/{status.iterations}, loss {status.loss:.4f}"
        if status.augment_on:
            text += ", augmenting"
        self.status.setText("; ".join([text, *[n for n in notes if n]]))

    def _on_returned(self, failure):
        if not failure or self.closed:
            return
        exc = failure[0]
        req = self.run_request
        out = Path(req["config"].output_dir) if req["config"].output_dir else None
        if isinstance(exc, FileExistsError) and out is not None and not req["resume"] and not req["overwrite"]:
            held = ", ".join(sorted(p.name for p in out.glob("*.pt"))) or "checkpoints"
            self.choice_label.setText(f"{out} already holds a training run ({held}). Resume it, Replace it "
                                      "(its checkpoints go), or train into a New folder beside it?")
            self.choice.show()
            self.status.setText(f"not started: {out} already holds a run; choose Resume, Replace or New folder")
        elif req["resume"] and getattr(exc, "changes", None):  # ct.train.RunConfigMismatch
            listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in exc.changes.items())
            self.choice.show()
            self.status.setText(f"cannot resume: the settings differ from the run's own in {listed}; set them back "
                                f"and Resume, Replace the run, or train into a New folder ({exc})")
        elif req["resume"]:
            self.status.setText(f"cannot resume: {exc}")
        else:
            self.status.setText(f"{req['verb']} failed: {exc}")
        self._failed = True

    def _finished(self):
        if self.closed:
            self.worker = None
            return
        self.val_progress.hide()
        req, failed = self.run_request, getattr(self, "_failed", False)
        self._failed = False
        out = Path(req["config"].output_dir) if req["config"].output_dir else None
        last = out / "last.pt" if out is not None else None
        if not failed and last is not None and last.exists():
            self.checkpoint = str(last)
            TRAINED_CHECKPOINTS.append(str(last))
            if (out / "best.pt").exists():
                TRAINED_CHECKPOINTS.append(str(out / "best.pt"))
        if not failed:
            done = self.statuses[-1].iteration if self.statuses else 0
            if req["resume"] and not self.statuses:
                text = (f"nothing to resume: the run in {out} already reached {req['config'].iterations} "
                        "iterations; raise 'iterations' and press Resume to train it longer")
            elif self._stop:
                text = f"stopped at iteration {done}; checkpoint {self.checkpoint}"
            else:
                text = f"finished {done} iterations; checkpoint {self.checkpoint}"
            self.status.setText(text)
        self._busy(False)
        self.worker = None

    def _busy(self, busy: bool):
        for b in (self.start_button, self.finetune_button, self.resume_button, self.replace_button,
                  self.new_folder_button):
            b.setEnabled(not busy)
        self.pause_button.setEnabled(busy)
        self.stop_button.setEnabled(busy)
        self.pause_button.setText("Pause")
        if not busy:
            self.skip_button.hide()

    # lifetime -------------------------------------------------------------------------------------------------------
    def teardown(self):
        """Stop the run (it writes ``last.pt``) and disconnect every handler: a closed widget never acts again."""
        if self.closed:
            return
        for signal, slot in ((self._relay.progress, self._on_progress), (self._relay.history, self._on_history)):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
        _TRAIN_WIDGETS.discard(self)
        super().teardown()
