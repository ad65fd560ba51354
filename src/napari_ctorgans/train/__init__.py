"""Training: configuration and presets, cases and datasets, the training loop (a generator), checkpoints."""

from __future__ import annotations

from .budget import StepMemory, StepTooLarge, estimate_step_memory
from .checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from .config import TRAIN_PRESETS, TrainConfig
from .data import Case, auto_labelled_case, find_cases, load_case, load_cases, random_crop
from .loop import TrainStatus, learning_rate_at, train, validate
from .rundir import RunConfigMismatch

__all__ = [
    "TrainConfig", "TRAIN_PRESETS", "train", "TrainStatus", "validate", "learning_rate_at",
    "Case", "load_case", "load_cases", "find_cases", "auto_labelled_case", "random_crop",
    "load_checkpoint", "read_checkpoint", "save_checkpoint", "CheckpointError", "RunConfigMismatch",
    "estimate_step_memory", "StepMemory", "StepTooLarge",
]
