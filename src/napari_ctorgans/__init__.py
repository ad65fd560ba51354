"""napari-ctorgans: organ segmentation in CT, scriptable and inside napari.

The public API is importable from the top level without Qt::

    import napari_ctorgans as ct
    vol = ct.read_volume("scan.nii.gz")

Names are imported lazily on first use, so ``import napari_ctorgans`` is cheap and never
pulls in torch, numba or napari until they are needed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from ._version import __version__

# public name -> (module, attribute or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    # data
    "Volume": (".volume", "Volume"),
    "read_volume": (".io", "read_volume"),
    "read_labels": (".io", "read_labels"),
    "write_labels": (".io", "write_labels"),
    "write_volume": (".io", "write_volume"),
    "write_dicom_seg": (".io.dicom_seg", "write_dicom_seg"),
    "write_rtstruct": (".io.rtstruct", "write_rtstruct"),
    "list_dicom_series": (".io", "list_dicom_series"),
    "resample": (".resampling", "resample"),
    "gaussian_sigmas": (".resampling", "gaussian_sigmas"),
    "make_phantom": (".phantom", "make_phantom"),
    "load_sample": (".samples", "load_sample"),
    "make_random_phantom": (".synth", "make_random_phantom"),
    "ORGANS": (".organs", "ORGANS"),
    "Organ": (".organs", "Organ"),
    "organ_statistics": (".stats", "organ_statistics"),
    "organ_report": (".report", "organ_report"),
    "check_ct": (".ctcheck", "check_ct"), "NotCTError": (".ctcheck", "NotCTError"), "padding_mask": (".padding", "padding_mask"),
    "write_report_png": (".report", "write_report_png"),
    # labelling
    "morphology": (".morphology", None),
    "label_lungs": (".labelers", "label_lungs"),
    "label_bones": (".labelers", "label_bones"),
    "label_body": (".labelers", "label_body"),
    "auto_label": (".labelers", "auto_label"),
    "grow_region": (".labelers", "grow_region"),
    "split_lungs": (".labelers", "split_lungs"),
    "segment_prompts": (".interactive", "segment_prompts"),
    "PromptResult": (".interactive", "PromptResult"),
    # augmentation
    "AugmentParams": (".augment", "AugmentParams"),
    "augment": (".augment", "augment"),
    "PrefetchQueue": (".augment", "PrefetchQueue"),
    # learning
    "ModelConfig": (".nn", "ModelConfig"),
    "build_model": (".nn", "build_model"),
    "MODEL_PRESETS": (".nn", "MODEL_PRESETS"),
    "losses": (".nn.losses", None),
    "metrics": (".metrics", None),
    # training and prediction
    "TrainConfig": (".train", "TrainConfig"),
    "TRAIN_PRESETS": (".train", "TRAIN_PRESETS"),
    "train": (".train", "train"),
    "load_checkpoint": (".train", "load_checkpoint"),
    "save_checkpoint": (".train", "save_checkpoint"),
    "CheckpointError": (".train", "CheckpointError"),
    "RunConfigMismatch": (".train", "RunConfigMismatch"),
    "sliding_window": (".infer", "sliding_window"),
    "SlidingWindowInferer": (".infer", "SlidingWindowInferer"),
    "predict": (".infer", "predict"),
    "plausible": (".plausibility", "plausible"),
    "find_landmarks": (".landmarks", "find_landmarks"),
    "uncertainty": (".infer.uncertainty", "uncertainty"),
    "next_region": (".infer.regions", "next_region"),
    "rank_scans": (".infer.rank", "rank_scans"),
    "compare_models": (".infer.compare", "compare_models"),
    "holdout_check": (".train.holdout", "holdout_check"),
    "Predictor": (".infer", "Predictor"),
    "models": (".models", None),
    "starter_path": (".models", "starter_path"),
    # scale-out
    "run_cohort": (".cohort", "run_cohort"),
    "distributed": (".distributed", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'napari_ctorgans' has no attribute {name!r}") from None
    module = importlib.import_module(module_name, __name__)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


# Public functions that share their name with the sub-package implementing them (``ct.augment`` lives in
# ``napari_ctorgans.augment``, ``ct.train`` in ``napari_ctorgans.train``). Importing such a sub-package makes
# Python bind it as an attribute of this package; keep the public name bound to the function instead.
# (Import the implementation modules with ``from napari_ctorgans.augment import ...``.)
_FUNCTION_OVER_SUBPACKAGE = {name for name, (mod, attr) in _LAZY.items() if attr == name and mod == f".{name}"}


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FUNCTION_OVER_SUBPACKAGE and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
