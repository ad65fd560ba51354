"""The Train widget's row for an output folder that already holds a run: Resume / Replace / New folder."""

from __future__ import annotations

import re
from pathlib import Path

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

__all__ = ["RunChoice", "free_folder"]


class RunChoice(QWidget):
    """A message and the three ways on (hidden until a run is refused because the folder holds one).

    Parameters
    ----------
    resume, replace, new_folder : callable
        Called without arguments by the Resume, Replace and New folder buttons.
    """

    def __init__(self, resume, replace, new_folder, parent=None):
        super().__init__(parent)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.resume_button = _button("Resume", "continue that run where it stopped (same settings; more iterations "
                                     "allowed)", resume)
        self.replace_button = _button("Replace", "start afresh in this folder; the run there is replaced", replace)
        self.new_folder_button = _button("New folder", "start afresh in a new folder beside this one; the run there "
                                         "is kept", new_folder)
        row = QHBoxLayout()
        for b in self.buttons:
            row.addWidget(b)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.label)
        box.addLayout(row)
        self.hide()

    @property
    def buttons(self) -> tuple[QPushButton, QPushButton, QPushButton]:
        """The Resume, Replace and New folder buttons."""
        return self.resume_button, self.replace_button, self.new_folder_button


def _button(text: str, tip: str, action) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    button.clicked.connect(lambda: action())  # not action(checked)
    return button


def free_folder(base: Path, infix: str = "-") -> Path:
    """The first ``<stem><infix>N`` (N = 1, 2, ...) beside ``base`` that does not exist (``stem``: ``base``'s name
    without a trailing ``<infix>N``)."""
    stem = re.sub(rf"{re.escape(infix)}\d+$", "", base.name)
    n = 1
    while (base.parent / f"{stem}{infix}{n}").exists():
        n += 1
    return base.parent / f"{stem}{infix}{n}"
