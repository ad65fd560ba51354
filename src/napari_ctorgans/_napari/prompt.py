"""An inline question in a dock widget: what to do with a result that would replace a Labels layer with edits."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

#: the answers, in button order
CHOICES = ("replace", "new layer", "discard")


class EditedLayerPrompt(QWidget):
    """Hidden until :meth:`ask`; the answer is passed to the callback given there.

    Not a modal dialog: the viewer stays usable while the question is open (the user can look at the edits first),
    and a newer result simply replaces the pending one.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.text = QLabel("")
        self.text.setWordWrap(True)
        self.buttons: dict[str, QPushButton] = {}
        tips = {
            "replace": "write the new result into the edited layer (Ctrl+Z in that layer brings the edits back)",
            "new layer": "keep the edited layer as it is and put the new result in a new layer",
            "discard": "keep the edited layer and drop the new result",
        }
        row = QHBoxLayout()
        for choice in CHOICES:
            b = QPushButton(choice.capitalize())
            b.setToolTip(tips[choice])
            b.clicked.connect(lambda _=False, c=choice: self.answer(c))
            row.addWidget(b)
            self.buttons[choice] = b
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text)
        layout.addLayout(row)
        self._callback: Callable[[str], None] | None = None
        self.hide()

    @property
    def pending(self) -> bool:
        return self._callback is not None

    def ask(self, layer_name: str, callback: Callable[[str], None]) -> None:
        self.text.setText(f"'{layer_name}' has your edits. Replace its contents with the new result, put the "
                          "result in a new layer, or discard the result?")
        self._callback = callback
        self.show()

    def answer(self, choice: str) -> None:
        if choice not in CHOICES:
            raise ValueError(f"choice must be one of {CHOICES}, got {choice!r}")
        callback, self._callback = self._callback, None
        self.hide()
        if callback is not None:
            callback(choice)
