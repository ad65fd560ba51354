"""Inference: sliding-window probabilities and whole-volume prediction to a label map."""

from __future__ import annotations

from .sliding import SlidingWindowInferer, importance_map, sliding_window, tile_starts

__all__ = ["sliding_window", "SlidingWindowInferer", "importance_map", "tile_starts", "predict", "Predictor"]


def __getattr__(name):
    if name in ("predict", "Predictor", "postprocess"):
        from . import predict as _predict

        return getattr(_predict, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
