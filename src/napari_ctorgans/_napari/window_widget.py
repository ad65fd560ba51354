"""A small dock widget that switches the CT display window (only contrast limits change, never the HU)."""

from __future__ import annotations

from magicgui import magic_factory

from .layers import WINDOWS


def _apply(layer, window: str) -> None:
    layer.contrast_limits = WINDOWS[window]
    layer.metadata["ct_window"] = window


@magic_factory(
    call_button="Apply window",
    window={"choices": list(WINDOWS)},
    auto_call=True,
)
def ct_window_widget(image: "napari.layers.Image", window: str = "soft tissue") -> None:  # noqa: F821
    """Show a CT layer with a soft-tissue, lung, bone or liver window."""
    if image is not None:
        _apply(image, window)
