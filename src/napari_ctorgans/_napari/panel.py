"""The "CT Organs" panel: the whole loop in one dock, one tab per step (label, augment, train, predict, evaluate,
export). Every tab scrolls, so the panel fits beside the canvas on a 1280 x 800 screen; each step can still be
docked alone from the Plugins menu."""

from __future__ import annotations

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QComboBox, QFrame, QHBoxLayout, QLabel, QScrollArea, QTabWidget, QVBoxLayout

from .step import Step, disconnect_owner

#: (tab title, module, class) in loop order
STEPS: tuple[tuple[str, str, str], ...] = (
    ("Label", ".label_widget", "AutoLabelWidget"),
    ("Augment", ".augment_widget", "AugmentationPreview"),
    ("Train", ".train_widget", "TrainWidget"),
    ("Predict", ".predict_widget", "PredictWidget"),
    ("Evaluate", ".evaluate_widget", "EvaluateWidget"),
    ("Export", ".export_widget", "ExportWidget"),
)
#: the panel's preferred width (px)
PANEL_WIDTH = 380

#: view name -> (napari dims order of the (z, y, x) volume, 2D camera orientation (vertical, horizontal)).
#: Axis 0 runs inferior -> superior: coronal and sagittal views draw it upwards so the head is at the top.
VIEWS: dict[str, tuple[tuple[int, int, int], tuple[str, str]]] = {
    "axial": ((0, 1, 2), ("down", "right")),
    "coronal": ((1, 0, 2), ("up", "right")),
    "sagittal": ((2, 0, 1), ("up", "right")),
}


def set_view(viewer, name: str) -> None:
    """Show the CT axial, coronal or sagittal (head up), or in 3D; the data is never changed."""
    if name == "3D":
        viewer.dims.ndisplay = 3
        return
    if name not in VIEWS:
        raise ValueError(f"view must be one of {', '.join([*VIEWS, '3D'])}, got {name!r}")
    order, orientation = VIEWS[name]
    viewer.dims.ndisplay = 2
    ndim = viewer.dims.ndim
    lead = tuple(range(ndim - 3))  # any leading (time) axes stay in front
    viewer.dims.order = lead + tuple(len(lead) + a for a in order)
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 keeps the camera there
    (scene.camera if scene is not None else viewer.camera).orientation2d = orientation
    viewer.reset_view()


class CTOrgansPanel(Step):
    """One dock with a scrollable tab per step of the loop; ``panel.steps["train"]`` is the Train widget."""

    def __init__(self, napari_viewer, parent=None):
        import importlib

        super().__init__(napari_viewer, parent)
        self.tabs = QTabWidget()
        self.tabs.setUsesScrollButtons(True)
        self.tabs.setDocumentMode(True)
        self.steps: dict[str, object] = {}
        for title, module, cls in STEPS:
            widget = getattr(importlib.import_module(module, __package__), cls)(napari_viewer)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QFrame.Shape.NoFrame)
            scroll.setWidget(widget)
            self.tabs.addTab(scroll, title)
            self.steps[title.lower()] = widget
        self.view_combo = QComboBox()
        self.view_combo.addItems([*VIEWS, "3D"])
        self.view_combo.setToolTip("how the canvas shows the CT (coronal and sagittal with the head up)")
        self.view_combo.currentTextChanged.connect(lambda name: set_view(self.viewer, name))
        row = QHBoxLayout()
        row.addWidget(QLabel("view"))
        row.addWidget(self.view_combo, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.tabs)
        self.setMinimumWidth(300)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(PANEL_WIDTH, 600)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(300, 200)

    def show_step(self, name: str):
        """Bring the tab of step ``name`` ("label", "train", ...) to the front; returns its widget."""
        index = [t.lower() for t, _, _ in STEPS].index(name)
        self.tabs.setCurrentIndex(index)
        return self.steps[name]

    def teardown(self) -> None:
        """Tear down every tab (the Train tab: its viewer handlers disconnected and its run stopped)."""
        if self.closed:
            return
        super().teardown()
        for widget in self.steps.values():
            if isinstance(widget, Step):
                continue
            teardown = getattr(widget, "teardown", None)
            if callable(teardown):
                teardown()
            else:  # a widget without its own teardown: unhook it and stop its run
                disconnect_owner(self.viewer, widget)
                stop = getattr(widget, "stop", None)
                if callable(stop):
                    stop()
