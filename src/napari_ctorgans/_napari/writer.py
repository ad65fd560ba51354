"""napari writer: Labels layers saved in the geometry of the CT they belong to."""

from __future__ import annotations

import numpy as np

from ..volume import Volume
from .layers import GEOMETRY_KEY


def write_labels(path: str, data, meta: dict) -> list[str]:
    """Save a Labels layer (napari's save dialog has already confirmed the file name)."""
    from ..io import write_labels as _write

    arr = np.asarray(data)
    geometry = (meta.get("metadata") or {}).get(GEOMETRY_KEY)
    if geometry and tuple(geometry.get("shape", arr.shape)) == arr.shape:
        like = Volume.from_geometry(np.zeros((1, 1, 1), np.uint8), {**geometry})
        like = Volume(np.broadcast_to(np.uint8(0), arr.shape), like.spacing, like.origin, like.direction,
                      like.source_orientation)
    else:
        scale = meta.get("scale", (1.0, 1.0, 1.0))
        translate = meta.get("translate", (0.0, 0.0, 0.0))
        like = Volume(np.broadcast_to(np.uint8(0), arr.shape), tuple(scale)[-3:], tuple(translate)[-3:])
    out = _write(path, arr, like=like, overwrite=True)
    return [str(out)]
