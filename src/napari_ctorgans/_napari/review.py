"""The Predict tab's review controls: "Add uncertainty layer" and "Next", which moves the view to the most uncertain
region not yet reviewed (``ct.uncertainty``, ``ct.next_region``; docs/uncertainty.md)."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

#: the uncertainty layer's display: values above this show at full brightness
CONTRAST_TOP = 0.5


class ReviewControls(QWidget):
    """The uncertainty option, the Next button and what has been reviewed, for one Predict widget."""

    def __init__(self, viewer, parent=None):
        super().__init__(parent)
        self.viewer = viewer
        self.layer = None  # the uncertainty Image layer this widget added
        self.regions: list = []
        self.reviewed: list = []
        self.option = QCheckBox("add uncertainty layer (where to check first)")
        self.option.setToolTip("with the prediction, add an Image layer of how unsure the model is (0 to 1: the "
                               "normalised entropy of its probabilities; a band around the surface of organs taken "
                               "from the labellers); then press Next to visit the most uncertain places in turn")
        self.next_button = QPushButton("Next uncertain region")
        self.next_button.setToolTip("move the view to the most uncertain region not yet reviewed and mark it reviewed")
        self.next_button.clicked.connect(lambda: self.next())
        self.next_button.setEnabled(False)
        self.info = QLabel("")
        self.info.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.option)
        layout.addLayout(row)
        layout.addWidget(self.info)

    @property
    def wanted(self) -> bool:
        return self.option.isChecked()

    def show(self, uncertainty: np.ndarray, regions: list, ct_layer) -> None:
        """Add (or refresh) the uncertainty layer over ``ct_layer`` and start a new review of its regions."""
        from .layers import UNCERTAINTY_KEY

        name = f"{ct_layer.name} uncertainty"
        mine = self.layer is not None and self.layer in self.viewer.layers and self.layer.name == name
        if mine and self.layer.data.shape == uncertainty.shape:
            self.layer.data = uncertainty
        else:
            self.layer = self.viewer.add_image(
                uncertainty, name=name, colormap="inferno", blending="additive", opacity=0.7,
                contrast_limits=(0.0, CONTRAST_TOP), scale=tuple(ct_layer.scale), translate=tuple(ct_layer.translate),
                metadata={UNCERTAINTY_KEY: True})
        self.ct_layer = ct_layer
        self.regions, self.reviewed = list(regions), []
        self.next_button.setEnabled(bool(self.regions))
        self.info.setText(f"{len(self.regions)} uncertain region(s) to review; press Next" if self.regions
                          else "no uncertain region found")

    def next(self):
        """Move the view to the next region and mark it reviewed; returns it (None when none is left)."""
        from ..infer.regions import next_region

        if self.layer is None or self.layer not in self.viewer.layers:
            self.info.setText("predict with 'add uncertainty layer' first")
            self.next_button.setEnabled(False)
            return None
        region = next_region(self.layer.data, self.reviewed, regions=self.regions)
        if region is None:
            self.info.setText(f"all {len(self.reviewed)} uncertain region(s) reviewed")
            self.next_button.setEnabled(False)
            return None
        self.reviewed.append(region)
        self._go_to(region)
        left = sum(1 for r in self.regions if not any(v.contains(r.center) for v in self.reviewed))
        self.info.setText(f"region {len(self.reviewed)}: slice {region.center[0]}, row {region.center[1]}, "
                          f"column {region.center[2]} (uncertainty {region.score:.2f}); {left} left")
        self.next_button.setEnabled(left > 0)
        return region

    def _go_to(self, region) -> None:
        """Put the dims slider on the region's centre and centre the camera on it, zoomed to its box."""
        world = np.asarray(self.layer.data_to_world(region.center), dtype=float)
        for axis, value in enumerate(world):
            self.viewer.dims.set_point(axis, float(value))
        shown = list(self.viewer.dims.displayed)
        camera = _camera(self.viewer)
        camera.center = tuple(float(world[a]) for a in shown)
        extent = np.asarray(region.hi) - np.asarray(region.lo)
        size = float(max(extent[a] * self.layer.scale[a] for a in shown))
        canvas = float(min(getattr(getattr(self.viewer, "canvas", None), "size", None) or (600, 600)))
        if size > 0:
            camera.zoom = 0.3 * canvas / size  # the box fills a third of the canvas: the organs around it show


def _camera(viewer):
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9 on, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera
