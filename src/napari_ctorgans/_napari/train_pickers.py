"""The Train widget's file pickers: a line edit with a "Browse..." button opening a non-blocking file dialog."""

from __future__ import annotations

from pathlib import Path

from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

__all__ = ["browse_button", "open_file_dialog", "with_button", "FILE_FILTERS"]

#: the name filter of each kind of file the pickers open
FILE_FILTERS = {"json": "JSON files (*.json)", "checkpoint": "Checkpoints (*.pt *.safetensors)"}


def with_button(edit: QLineEdit, button: QPushButton) -> QHBoxLayout:
    """``edit`` (stretching) and ``button`` in one row."""
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(button)
    return row


def browse_button(caption: str, browse) -> QPushButton:
    """A "Browse..." button (``caption`` as its tooltip) that calls ``browse()``."""
    button = QPushButton("Browse...")
    button.setToolTip(caption)
    button.clicked.connect(lambda: browse())
    return button


def open_file_dialog(parent: QWidget, edit: QLineEdit, kind: str, caption: str) -> QFileDialog:
    """Open a file dialog (non-blocking; Qt's own, not the platform's) whose choice goes into ``edit``.

    ``kind`` is ``"folder"`` (a directory), ``"json"`` (an existing ``.json`` file) or ``"checkpoint"`` (an
    existing ``.pt`` or ``.safetensors`` file). The dialog starts at ``edit``'s path (a file's folder), or the home
    folder when ``edit`` is empty.
    """
    start = edit.text().strip() or str(Path.home())
    dialog = QFileDialog(parent, caption, str(start if kind == "folder" else Path(start).parent))
    dialog.setOption(QFileDialog.Option.DontUseNativeDialog, True)
    if kind == "folder":
        dialog.setFileMode(QFileDialog.FileMode.Directory)
        dialog.setOption(QFileDialog.Option.ShowDirsOnly, True)
    else:
        dialog.setFileMode(QFileDialog.FileMode.ExistingFile)
        dialog.setNameFilter(FILE_FILTERS[kind])
    dialog.fileSelected.connect(edit.setText)
    dialog.open()
    return dialog
