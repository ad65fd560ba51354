"""Memory of one training step, estimated from the configuration before anything large is allocated.

A fully convolutional network keeps, for the backward pass, tensors whose sizes grow linearly with the crop's voxel
count. Their bytes per voxel are measured once on a tiny probe crop (the tensors autograd saves, counted with
``torch.autograd.graph.saved_tensors_hooks``, the loss included) and scaled to ``batch_size`` crops of
``crop_size``; the weights, their gradients and Adam's two moments add 16 bytes per parameter, counted on the meta
device (no memory). A configuration whose step needs more than the memory available is refused with the numbers
and a crop size that fits.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["StepMemory", "StepTooLarge", "estimate_step_memory", "check_step_memory", "available_memory",
           "parameter_count"]

#: bytes per parameter while training: weights, gradients, Adam's first and second moments (float32)
BYTES_PER_PARAMETER = 16
#: peak / saved tensors of one CPU step (gradient buffers of the backward pass, allocator slack): measured 1.07 to 1.5
#: for cpu-small, paper-unet and paper-inception on 32-96 voxel crops (peak RSS of one step)
BACKWARD_FACTOR = 1.3


class StepTooLarge(MemoryError, ValueError):
    """A training configuration whose step cannot fit in memory, refused before any work (a MemoryError, and a
    ValueError like the other refused settings)."""


@dataclass(frozen=True)
class StepMemory:
    """Estimated bytes of one training step."""

    parameters: int
    parameter_bytes: int
    activation_bytes: int
    batch_bytes: int

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activation_bytes + self.batch_bytes


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} B"


def parameter_count(model_config: Any) -> int:
    """Number of values in the state dict of the model a configuration describes (built on the meta device)."""
    from ..nn import build_model

    with torch.device("meta"):
        model = build_model(model_config)
    return int(sum(t.numel() for t in model.state_dict().values()))


def _padded(crop: tuple[int, int, int], multiple: int) -> int:
    return math.prod(-(-int(c) // multiple) * multiple for c in crop)


def _saved_bytes_per_voxel(model_config: Any, config: Any) -> float:
    """Bytes autograd keeps per input voxel for one crop: a forward pass and the loss on a probe crop."""
    from ..nn import build_model
    from ..nn.losses import get_loss, loss_name

    side = 2 * model_config.size_multiple  # exact multiples: every tensor's size is proportional to the voxels
    options = {"batch": True, **config.loss_options}
    if loss_name(config.loss) == "cross_entropy":
        options.pop("cross_entropy_weight", None)
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device.index or 0)] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            seen[(id(t), -1)] = t.numel() * t.element_size()
        return t

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the probe takes ~0.1 s
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's random stream is untouched
            model = build_model(model_config).train()
            loss_fn = get_loss(config.loss, **options)
            x = torch.zeros(1, model_config.in_channels, side, side, side)
            y = (torch.arange(side**3) % model_config.num_classes).reshape(1, side, side, side)
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss_fn(model(x).float(), y)
    finally:
        torch.set_num_threads(threads)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(n for (ptr, _), n in seen.items() if ptr not in params) / side**3


def estimate_step_memory(config: Any) -> StepMemory:
    """Estimate the memory of one training step of ``config`` (a :class:`TrainConfig`).

    Returns
    -------
    StepMemory
        Parameters and bytes of weights + optimiser, saved activations (scaled for the backward pass), and the
        batch of crops (with the augmentation's context margin).
    """
    from .loop import _model_config

    mc = _model_config(config)
    n_params = parameter_count(mc)
    param_bytes = n_params * BYTES_PER_PARAMETER
    crop = tuple(int(c) for c in config.crop_size)
    voxels = _padded(crop, mc.size_multiple)
    if param_bytes > available_memory(config):  # too large to build a probe model: activations not measured
        activation = 0
    else:
        activation = int(_saved_bytes_per_voxel(mc, config) * voxels * config.batch_size * BACKWARD_FACTOR)
    with_context = math.prod(c + 2 * math.ceil(0.15 * c) for c in crop)  # crops are cut with a margin to augment
    batch = config.batch_size * with_context * (4 + 1 + 4 + 8)  # image, labels, augmented image, int64 labels
    return StepMemory(n_params, param_bytes, activation, batch)


def available_memory(config: Any) -> int:
    """Bytes free for training: the GPU's free memory on CUDA, else the system's available memory."""
    from .loop import _device

    device = _device(config)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil  # installed with dask.distributed; not a declared dependency of its own
    except ImportError:  # pragma: no cover
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return int(psutil.virtual_memory().available)


def check_step_memory(config: Any) -> StepMemory:
    """Refuse a configuration whose training step does not fit in memory.

    Raises
    ------
    StepTooLarge
        (a MemoryError and a ValueError) With the estimate, the memory available, and a crop size that fits.
    """
    est = estimate_step_memory(config)
    free = available_memory(config)
    if est.total <= free:
        return est
    crop = tuple(int(c) for c in config.crop_size)
    where = "GPU memory" if _is_cuda(config) else "memory"
    head = (f"crop_size={crop} with batch_size={config.batch_size} needs about {_size(est.total)} for one training "
            f"step (activations {_size(est.activation_bytes)}, crops {_size(est.batch_bytes)}, "
            f"{est.parameters:,} parameters with gradients and optimiser {_size(est.parameter_bytes)}), but "
            f"{_size(free)} of {where} is available")
    if est.parameter_bytes >= free / 2:
        raise StepTooLarge(f"{head}; the model alone is too large: choose a smaller model (e.g. model='cpu-small')")
    side = suggest_crop_side(config, est, free)
    raise StepTooLarge(f"{head}; lower crop_size to about ({side}, {side}, {side}) or batch_size "
                      f"(e.g. --crop-size {side}), or train on a machine with more memory")


def suggest_crop_side(config: Any, est: StepMemory, free: int) -> int:
    """The largest cubic crop (a multiple of the model's size multiple) whose step fits in half of ``free``."""
    from .loop import _model_config

    multiple = _model_config(config).size_multiple
    per_voxel = (est.activation_bytes + est.batch_bytes) / max(math.prod(config.crop_size), 1)
    room = free / 2 - est.parameter_bytes  # the other half: the cases, validation, the rest of the process
    side = int((room / per_voxel) ** (1 / 3)) if per_voxel > 0 and room > 0 else 0
    return max(multiple, side // multiple * multiple)


def _is_cuda(config: Any) -> bool:
    from .loop import _device

    return _device(config).type == "cuda"
