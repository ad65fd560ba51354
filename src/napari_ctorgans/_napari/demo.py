"""The napari side of ``ctorgans demo``: a canvas screenshot and the interactive viewer with every widget docked."""

from __future__ import annotations

from pathlib import Path

import napari

from .layers import image_layer_kwargs, labels_layer_kwargs


def viewer_screenshot(vol, labels, png: Path) -> None:
    """Render the CT with its labels at a chest level and save the canvas as a PNG (needs a display)."""
    import imageio.v3 as iio

    viewer = napari.Viewer(show=True)
    try:
        viewer.add_image(vol.array, **image_layer_kwargs(vol, name="CT"))
        lab = viewer.add_labels(labels, **labels_layer_kwargs(vol, name="labels"))
        lab.opacity = 0.5
        viewer.dims.set_point(0, vol.origin[0] + vol.spacing[0] * int(vol.shape[0] * 0.7))
        viewer.reset_view()
        iio.imwrite(png, viewer.screenshot(canvas_only=True, flash=False))
    finally:
        viewer.close()


def run_gui() -> int:
    """Open napari with the phantom sample and dock every widget of the plugin."""
    from npe2 import PluginManager

    viewer = napari.Viewer(title="napari-ctorgans demo")
    viewer.open_sample("napari-ctorgans", "phantom")
    manifest = PluginManager.instance().get_manifest("napari-ctorgans")
    for widget in manifest.contributions.widgets or []:
        try:
            viewer.window.add_plugin_dock_widget("napari-ctorgans", widget.display_name)
        except Exception as exc:  # keep the viewer usable if one widget fails
            print(f"could not dock {widget.display_name}: {exc}")
    napari.run()
    return 0
