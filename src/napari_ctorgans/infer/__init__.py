"""Inference: sliding-window probabilities and whole-volume prediction to a label map."""

from __future__ import annotations

from .sliding import SlidingWindowInferer, importance_map, sliding_window, tile_starts

# bind the function last: ``napari_ctorgans.infer.predict`` is the function ``ct.predict`` (the module stays
# importable as ``napari_ctorgans.infer.predict`` through sys.modules)
from .predict import KEEP_COMPONENTS, Predictor, postprocess  # noqa: E402  isort: skip
from .predict import predict  # noqa: E402  isort: skip

__all__ = [
    "sliding_window", "SlidingWindowInferer", "importance_map", "tile_starts", "predict", "Predictor", "postprocess",
    "KEEP_COMPONENTS",
]
