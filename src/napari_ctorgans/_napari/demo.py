"""The napari side of ``ctorgans demo``: canvas screenshots of the real viewer, and the viewer with the CT Organs
panel."""

from __future__ import annotations

from pathlib import Path

import napari

from .._demo.views import compose, panels
from .layers import image_layer_kwargs, labels_layer_kwargs


def viewer_screenshot(vol, maps: dict, png: Path, title: str = "") -> Path:
    """Canvas screenshots of the CT with each label map (name -> labels) on coronal slices that cut every organ,
    laid out with the organ legend (needs a display)."""
    from .panel import set_view

    viewer = napari.Viewer(show=True)
    try:
        viewer.window._qt_window.resize(900, 800)
        ct_layer = viewer.add_image(vol.array, **image_layer_kwargs(vol, name="CT"))
        layers = {name: viewer.add_labels(labels, **labels_layer_kwargs(vol, name=name)) for name, labels in
                  maps.items()}
        set_view(viewer, "coronal")
        shots, names = [], []
        for name, y in panels(maps):
            for other, layer in layers.items():
                layer.visible, layer.opacity = other == name, 0.6
            viewer.dims.set_point(1, ct_layer.data_to_world((0, y, 0))[1])
            viewer.reset_view()
            shots.append(viewer.screenshot(canvas_only=True, flash=False))
            names.append(f"{name}: coronal slice {y}")
        return compose(shots, names, maps, png, title)
    finally:
        viewer.close()


def run_gui() -> int:
    """Open napari with the real sample CT, its reference labels and the CT Organs panel."""
    viewer = napari.Viewer(title="napari-ctorgans demo")
    viewer.open_sample("napari-ctorgans", "abdomen")
    try:
        viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    except Exception as exc:  # keep the viewer usable if the panel fails
        print(f"could not dock the CT Organs panel: {exc}")
    napari.run()
    return 0
