"""Neural networks for organ segmentation: model configuration, the two architectures, and the losses.

``ModelConfig`` and ``build_model`` make a 3D U-Net (``arch="unet3d"``, 003) or the paper's inception FCN
(``arch="inception_fcn"``, Rister et al. Table I); ``MODEL_PRESETS`` holds named configurations. The losses live in
:mod:`napari_ctorgans.nn.losses` (importing this package does not import them eagerly).
"""

from __future__ import annotations

from . import losses
from .config import MODEL_PRESETS, ModelConfig, build_model, count_parameters

__all__ = ["ModelConfig", "build_model", "MODEL_PRESETS", "count_parameters", "losses"]
