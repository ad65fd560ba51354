"""Preview layers: shown by a widget for a while, marked in their metadata (``layers.PREVIEW_KEY``) so no widget
offers them as a CT or labels, and added or removed without moving the camera or the slice shown."""

from __future__ import annotations

import numpy as np

from .layers import PREVIEW_KEY, is_preview, organ_kwargs


def _camera(viewer):
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 keeps the camera there
    return scene.camera if scene is not None else viewer.camera


class camera_kept:  # noqa: N801 - used as a context manager
    """Keeps the camera and the slice shown while preview layers come and go (napari would refit the view)."""

    def __init__(self, viewer):
        self.viewer = viewer

    def __enter__(self):
        cam = _camera(self.viewer)
        self.saved = (tuple(cam.center), cam.zoom, tuple(cam.angles), tuple(self.viewer.dims.point))
        return self

    def __exit__(self, *exc):
        center, zoom, angles, point = self.saved
        cam = _camera(self.viewer)
        cam.center, cam.zoom, cam.angles = center, zoom, angles
        if len(point) == self.viewer.dims.ndim:
            self.viewer.dims.point = point
        return False


def put_preview(viewer, name: str, data: np.ndarray, scale, translate, *, labels: bool = False):
    """Show ``data`` in the preview layer ``name`` (added the first time); returns the layer.

    A layer of the user's that has the name is never touched: the preview then goes to ``"<name> (preview)"``.
    """
    for candidate in (name, f"{name} (preview)"):
        layer = viewer.layers[candidate] if candidate in viewer.layers else None
        if layer is not None and is_preview(layer):
            layer.data = data
            layer.scale, layer.translate = scale, translate
            return layer
        if layer is None:
            name = candidate
            break
    else:
        raise ValueError(f"layers named {name!r} and {name + ' (preview)'!r} are the user's: rename one")
    if labels:
        kwargs = organ_kwargs()
        kwargs["metadata"][PREVIEW_KEY] = True
        return viewer.add_labels(data, name=name, scale=scale, translate=translate, opacity=0.5, **kwargs)
    return viewer.add_image(data, name=name, colormap="gray", contrast_limits=(0.0, 1.0), scale=scale,
                            translate=translate, metadata={PREVIEW_KEY: True})


def remove_previews(viewer) -> int:
    """Remove every preview layer from ``viewer`` (the camera stays); returns how many."""
    previews = [ly for ly in viewer.layers if is_preview(ly)]
    if previews:
        with camera_kept(viewer):
            for layer in previews:
                viewer.layers.remove(layer)
    return len(previews)
