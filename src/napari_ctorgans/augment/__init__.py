"""3D data augmentation: one fused pass per voxel on the CPU (Numba) or GPU (Numba-CUDA), plus a prefetch queue.

``AugmentParams`` holds the ranges, ``augment`` draws one transform from a seed and applies it to an image and its
labels, ``PrefetchQueue`` produces augmented training batches in background threads.
"""

from __future__ import annotations

from .core import augment
from .params import OUT_LABEL, OUT_VALUE_HU, AugmentParams
from .queue import PrefetchQueue
from .sampling import draw_transform

__all__ = ["AugmentParams", "augment", "PrefetchQueue", "draw_transform", "OUT_VALUE_HU", "OUT_LABEL"]

