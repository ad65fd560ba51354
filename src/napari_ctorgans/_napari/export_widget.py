"""The "Export" step: save a Labels layer in the geometry of its CT, in the formats the writers support."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from .step import Step, fill_combo

#: label-map formats of ``ct.write_labels``: (menu text, suffix)
LABEL_FORMATS: tuple[tuple[str, str], ...] = (
    ("NIfTI (.nii.gz)", ".nii.gz"),
    ("NRRD (.nrrd)", ".nrrd"),
    ("MetaImage (.mha)", ".mha"),
)


def export_formats() -> list[tuple[str, str]]:
    """The formats offered: the label-map writers, and DICOM-SEG / RTSTRUCT when the package provides them."""
    import napari_ctorgans as ct

    formats = list(LABEL_FORMATS)
    if "write_dicom_seg" in ct.__all__:
        formats.append(("DICOM-SEG (.dcm)", ".dcm"))
    if "write_rtstruct" in ct.__all__:
        formats.append(("DICOM RTSTRUCT (.dcm)", ".rtstruct.dcm"))
    return formats


def with_suffix(path: str, suffix: str) -> Path:
    """``path`` ending in ``suffix`` (any known label suffix it had is replaced)."""
    p = Path(path)
    name = p.name
    for _, known in (*LABEL_FORMATS, (None, ".nii"), (None, ".mhd"), (None, ".rtstruct.dcm"), (None, ".dcm")):
        if name.lower().endswith(known):
            name = name[: -len(known)]
            break
    return p.with_name(name + suffix)


class ExportWidget(Step):
    """Pick a Labels layer, a format and a file; the labels are written in the CT's geometry (never over a file
    unless "replace" is ticked)."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(napari_viewer, parent)
        self.labels_combo = QComboBox()
        self.labels_combo.setToolTip("the Labels layer to save (its CT's geometry is stored with it)")
        self.format_combo = QComboBox()
        for text, suffix in export_formats():
            self.format_combo.addItem(text, suffix)
        self.format_combo.currentIndexChanged.connect(self._format_changed)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("output file")
        self.browse_button = QPushButton("Choose...")
        self.browse_button.clicked.connect(self._browse)
        self.replace = QCheckBox("replace an existing file")
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(lambda: self.save())
        form = QFormLayout()
        form.addRow("labels", self.labels_combo)
        form.addRow("format", self.format_combo)
        row = QHBoxLayout()
        row.addWidget(self.path_edit, 1)
        row.addWidget(self.browse_button)
        form.addRow("file", row)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.replace)
        layout.addWidget(self.save_button)
        layout.addWidget(self.status)
        layout.addStretch()
        self.path_edit.textChanged.connect(self._update_buttons)
        self.labels_combo.currentIndexChanged.connect(self._update_buttons)
        self.listen(self.viewer.layers.events.inserted, self._refresh)
        self.listen(self.viewer.layers.events.removed, self._refresh)
        self._refresh()

    def _refresh(self, *_):
        from .layers import labels_layer_names

        if not self.closed:
            fill_combo(self.labels_combo, labels_layer_names(self.viewer))
            self._update_buttons()

    def _update_buttons(self, *_):
        if self.closed:
            return
        ok = bool(self.labels_combo.currentText()) and bool(self.path_edit.text().strip())
        self.save_button.setEnabled(ok and self.worker is None)
        if self.worker is None:
            self.hint(None if self.labels_combo.currentText()
                      else "nothing to save yet: label, grow or predict organs first")

    def busy_changed(self, busy: bool) -> None:
        self._update_buttons()

    def _format_changed(self, *_):
        if self.path_edit.text().strip():
            self.path_edit.setText(str(with_suffix(self.path_edit.text().strip(), self.format_combo.currentData())))

    def _browse(self):  # pragma: no cover - modal dialog
        suffix = self.format_combo.currentData()
        path, _ = QFileDialog.getSaveFileName(self, "Save labels", f"{self.labels_combo.currentText()}{suffix}",
                                              f"{self.format_combo.currentText()};;All files (*)")
        if path:
            self.path_edit.setText(str(with_suffix(path, suffix)))

    def save(self, path: str | None = None):
        """Write the chosen layer to ``path`` (default: the file field) in a worker; returns it (None: see status)."""
        from .. import write_labels
        from .layers import volume_from_layer

        name = self.labels_combo.currentText()
        path = path or self.path_edit.text().strip()
        if not name or not path:
            self.say("choose a Labels layer and an output file first")
            return None
        out = with_suffix(path, self.format_combo.currentData())
        replace = self.replace.isChecked()
        if out.exists() and not replace:
            self.say(f"{out} exists: choose another name, or tick 'replace an existing file'")
            return None
        if not out.parent.is_dir():
            self.say(f"cannot save: the folder {out.parent} does not exist; choose an existing folder")
            return None
        try:
            like = volume_from_layer(self.viewer.layers[name])
        except (ValueError, TypeError, KeyError) as exc:
            self.say(f"cannot save '{name}': {exc}")
            return None
        layer = self.viewer.layers[name]
        labels = np.array(layer.data, copy=True)  # later edits do not change what is written
        writer, extra = write_labels, {}
        if str(out).lower().endswith(".dcm"):  # DICOM-SEG or RTSTRUCT of the CT's series
            import napari_ctorgans as ct

            from .layers import digest
            from .predict_widget import DIGEST_KEY

            writer = ct.write_rtstruct if str(out).lower().endswith(".rtstruct.dcm") else ct.write_dicom_seg
            extra = {"manual_edits": layer.metadata.get(DIGEST_KEY) != digest(labels)}  # not the Predict result
        self.say(f"saving '{name}' to {out}...")
        if writer is write_labels:
            return self.start_job(lambda: writer(out, labels, like=like, overwrite=replace), what="saving",
                                  on_result=lambda written: self.say(f"saved '{name}' to {written}"))

        def work():  # highdicom holds the GIL for a second: in a process of its own, the viewer stays responsive
            from .process import in_process

            return (yield from in_process(writer, out, labels, like=like, overwrite=replace, **extra))

        return self.start_job(work, what="saving", on_result=lambda written: self.say(f"saved '{name}' to {written}"))
