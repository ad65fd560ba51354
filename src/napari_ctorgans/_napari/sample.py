"""Sample data: the procedural CT phantom with its organ labels."""

from __future__ import annotations

from .layers import image_layer_kwargs, labels_layer_kwargs


def phantom_sample():
    from ..phantom import make_phantom

    vol, labels = make_phantom(seed=0)
    return [
        (vol.array, image_layer_kwargs(vol, name="CT phantom"), "image"),
        (labels, labels_layer_kwargs(vol, name="phantom labels"), "labels"),
    ]
