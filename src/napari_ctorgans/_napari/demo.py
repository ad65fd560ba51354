"""The napari side of ``ctorgans demo``: coronal + axial canvas screenshots and the viewer with the CT Organs panel."""

from __future__ import annotations

from pathlib import Path

import napari

from .layers import image_layer_kwargs, labels_layer_kwargs


def viewer_screenshot(vol, labels, png: Path) -> None:
    """A coronal (head up) and an axial canvas screenshot of the CT with its labels, side by side (needs a display)."""
    import imageio.v3 as iio
    import numpy as np

    from .._cli.demo import best_slices
    from .panel import set_view

    viewer = napari.Viewer(show=True)
    try:
        viewer.window._qt_window.resize(1000, 800)
        ct_layer = viewer.add_image(vol.array, **image_layer_kwargs(vol, name="CT"))
        lab = viewer.add_labels(labels, **labels_layer_kwargs(vol, name="labels"))
        lab.opacity = 0.6
        y, z = best_slices(labels)
        shots = []
        for view, axis, index in (("coronal", 1, y), ("axial", 0, z)):
            set_view(viewer, view)
            world = ct_layer.data_to_world(tuple(index if a == axis else 0 for a in range(3)))
            viewer.dims.set_point(axis, world[axis])
            viewer.reset_view()
            shots.append(viewer.screenshot(canvas_only=True, flash=False))
        height = max(s.shape[0] for s in shots)
        shots = [np.pad(s, ((0, height - s.shape[0]), (0, 0), (0, 0))) for s in shots]
        picture = np.concatenate(shots, axis=1)
        picture[..., 3] = 255  # the padding is opaque black, like the canvas
        iio.imwrite(png, picture)
    finally:
        viewer.close()


def run_gui() -> int:
    """Open napari with the phantom sample and the CT Organs panel (one tab per step of the loop)."""
    viewer = napari.Viewer(title="napari-ctorgans demo")
    viewer.open_sample("napari-ctorgans", "phantom")
    try:
        viewer.window.add_plugin_dock_widget("napari-ctorgans", "CT Organs panel")
    except Exception as exc:  # keep the viewer usable if the panel fails
        print(f"could not dock the CT Organs panel: {exc}")
    napari.run()
    return 0
