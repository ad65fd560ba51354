"""Sample data: the real abdomen CT shipped with the package and the procedural CT phantom, with their labels."""

from __future__ import annotations

from .layers import image_layer_kwargs, labels_layer_kwargs


def phantom_sample():
    from ..phantom import make_phantom

    vol, labels = make_phantom(seed=0)
    return [
        (vol.array, image_layer_kwargs(vol, name="CT phantom"), "image"),
        (labels, labels_layer_kwargs(vol, name="phantom labels"), "labels"),
    ]


def abdomen_sample():
    """The real abdomen CT that ships with the package, with its reference labels (TotalSegmentator v2)."""
    from ..samples import load_sample

    vol, labels = load_sample("abdomen")
    return [
        (vol.array, image_layer_kwargs(vol, name="CT abdomen (sample)"), "image"),
        (labels, labels_layer_kwargs(vol, name="reference labels"), "labels"),
    ]
