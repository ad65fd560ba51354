"""Data-parallel training with ``torch.distributed``: the few calls the training loop makes.

Run any training script (or ``ctorgans train``) under ``torchrun``::

    torchrun --nproc-per-node 4 -m napari_ctorgans.cli train ...

``torchrun`` sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` reads them and joins the process group (NCCL when every process has a GPU, Gloo on CPU). Without
them everything here degrades to a single process and costs nothing.

The loop uses a :class:`DistContext` at five points:

1. ``ctx = setup(device=config.device)``: join the group, pick this process's device.
2. ``model = ctx.wrap(model, sync_batchnorm=...)``: DistributedDataParallel (optionally SyncBatchNorm first);
   ``ctx.unwrap(model)`` gives the plain module for ``state_dict``.
3. ``items = ctx.batch_items(rng, n_cases, batch_size)``: every process draws the *global* batch of
   ``batch_size * world_size`` (case, crop seed, organ slot) items from the same random stream and keeps its own
   slice: the processes see different cases and crops, and together exactly the crops one process with the global
   batch would see. The stream stays identical on all ranks, so the rank-0 random state in a checkpoint resumes all.
4. ``loss = ctx.mean(loss)`` / ``ctx.mean_dict(metrics)``: averages across processes (the loss curve of the
   global batch); ``ctx.broadcast(obj)`` shares a rank-0 decision (validation, early stop).
5. ``if ctx.is_main: save_checkpoint(...)``; ``ctx.barrier()``; ``ctx.teardown()`` at the end.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistContext",
    "setup",
    "env_world_size",
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "barrier",
    "all_reduce_mean",
    "global_batch_items",
    "convert_sync_batchnorm",
    "CPUSyncBatchNorm",
    "sync_batchnorm_requested",
    "broadcast_object",
    "cleanup",
]

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def env_world_size() -> int:
    """``WORLD_SIZE`` as set by ``torchrun`` (1 when not launched by it)."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1")), 1)
    except ValueError:
        raise ValueError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not an integer; launch with torchrun "
                         "or unset it") from None


def is_distributed() -> bool:
    """Whether a process group with more than one process is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on rank 0: the process that writes checkpoints, logs and files."""
    return rank() == 0


def barrier() -> None:
    """Wait for all processes (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def all_reduce_mean(value: Any, *, device: Any = None) -> Any:
    """Average a number, a tensor or a dict of numbers across processes (unchanged in a single process).

    Dict keys missing on some ranks are not allowed: every rank must pass the same keys (sorted internally).
    """
    if isinstance(value, Mapping):
        keys = sorted(value)
        if not keys:
            return {}
        vec = all_reduce_mean(torch.tensor([float(value[k]) for k in keys], dtype=torch.float64), device=device)
        return {k: float(v) for k, v in zip(keys, vec.tolist())}
    if not is_distributed():
        return value
    is_tensor = isinstance(value, torch.Tensor)
    t = value.detach().clone() if is_tensor else torch.tensor(float(value), dtype=torch.float64)
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device()) \
            if dist.get_backend() == "nccl" else torch.device("cpu")
    orig_device = t.device
    t = t.to(device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t = t / dist.get_world_size()
    return t.to(orig_device) if is_tensor else float(t)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from ``src`` to every process; returns it everywhere."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def global_batch_items(rng: np.random.Generator, n_cases: int, batch_size: int, *, rank_: int | None = None,
                       world_size_: int | None = None) -> list[tuple[int, int, int]]:
    """This process's share of a global batch: ``batch_size`` items (case index, crop seed, organ slot).

    All processes draw the whole global batch (``batch_size * world_size`` items) from ``rng`` in the same
    order, so ``rng`` stays identical everywhere, and process ``r`` keeps items ``r*batch_size`` to
    ``(r+1)*batch_size - 1``. With one process this is exactly the batch of a single run of the global size.
    The organ slots are consecutive numbers from a random start: crop ``j`` of the global batch is centred on
    organ ``slot % n_organs`` of its case, so the crops of one batch cover different organs (stratified).
    """
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    r = rank() if rank_ is None else int(rank_)
    w = world_size() if world_size_ is None else int(world_size_)
    items = []
    for _ in range(batch_size * w):
        case = int(rng.integers(n_cases))
        seed = int(rng.integers(2**31 - 1))
        items.append((case, seed))
    start = int(rng.integers(1 << 16))
    items = [(c, s, start + j) for j, (c, s) in enumerate(items)]
    return items[r * batch_size:(r + 1) * batch_size]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of each process's input is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = x.clone()
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class CPUSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the global batch, on CPU (Gloo) as well as on GPU.

    ``torch.nn.SyncBatchNorm`` refuses CPU modules under DistributedDataParallel; this layer all-reduces the
    per-channel sums and sums of squares (with autograd, so the gradient flows through the statistics of every
    process, as in ``SyncBatchNorm``). Outside training or without a process group it is plain batch norm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected an input with a channel axis (N, C, ...), got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        c = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        count = torch.tensor([x.numel() / c], dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1).clamp_min(1)), alpha=m)
        shape = (1, c) + (1,) * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm(model: torch.nn.Module, *, cpu: bool | None = None) -> torch.nn.Module:
    """Replace every BatchNorm layer by a synchronised one (statistics over the global batch).

    On GPU this is ``torch.nn.SyncBatchNorm``; on CPU (``cpu=True``, default: when the model's parameters are on
    the CPU) :class:`CPUSyncBatchNorm`, since ``SyncBatchNorm`` only runs on GPU modules.
    """
    if cpu is None:
        p = next(model.parameters(), None)
        cpu = p is None or p.device.type == "cpu"
    if not cpu:
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert_cpu(model)


def _convert_cpu(module: torch.nn.Module) -> torch.nn.Module:
    out = module
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        if module.affine:
            with torch.no_grad():
                out.weight = module.weight
                out.bias = module.bias
        if module.track_running_stats:
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
    for name, child in module.named_children():
        out.add_module(name, _convert_cpu(child))
    return out


def sync_batchnorm_requested(config: Any = None) -> bool:
    """Whether batch norm should be synchronised: ``config.sync_batchnorm`` or ``CTORGANS_SYNC_BATCHNORM=1``."""
    if config is not None and bool(getattr(config, "sync_batchnorm", False)):
        return True
    return os.environ.get("CTORGANS_SYNC_BATCHNORM", "0").strip().lower() in ("1", "true", "yes", "on")


def cleanup() -> None:
    """Leave the process group (if one was joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------- context
@dataclass
class DistContext:
    """What the training loop needs to know about the processes it runs in."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module, *, sync_batchnorm: bool = False) -> torch.nn.Module:
        """Move the model to this process's device and wrap it in DistributedDataParallel (when distributed)."""
        model = model.to(self.device)
        if not self.distributed:
            return model
        if sync_batchnorm:
            model = convert_sync_batchnorm(model, cpu=self.device.type != "cuda")
        ids = [self.device.index] if self.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids,
                                                         output_device=ids[0] if ids else None)

    @staticmethod
    def unwrap(model: torch.nn.Module) -> torch.nn.Module:
        """The plain module inside a DistributedDataParallel wrapper (for ``state_dict`` and validation)."""
        return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model

    def batch_items(self, rng: np.random.Generator, n_cases: int, batch_size: int) -> list[tuple[int, int, int]]:
        """This process's (case index, crop seed, organ slot) items; see :func:`global_batch_items`."""
        return global_batch_items(rng, n_cases, batch_size, rank_=self.rank, world_size_=self.world_size)

    def mean(self, value: Any) -> Any:
        """Average across processes (a number, a tensor or a dict of numbers)."""
        if not self.distributed:
            return value
        return all_reduce_mean(value, device=self.device if self.backend == "nccl" else torch.device("cpu"))

    def mean_dict(self, values: Mapping[str, float] | None) -> dict[str, float] | None:
        return None if values is None else self.mean(dict(values))

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's value of ``obj`` on every process."""
        return broadcast_object(obj) if self.distributed else obj

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def teardown(self) -> None:
        """Leave the process group if :func:`setup` joined it."""
        if self.owns_group:
            cleanup()
            self.owns_group = False


def _pick_device(requested: str | torch.device | None, local_rank: int, backend: str | None) -> torch.device:
    req = "auto" if requested is None else str(requested)
    if req == "auto":
        req = "cuda" if torch.cuda.is_available() else "cpu"
    if req.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={requested!r} but no CUDA GPU is available; use device='cpu' or 'auto'")
        if backend is not None:  # one GPU per process: the local rank picks it
            index = local_rank % torch.cuda.device_count()
            torch.cuda.set_device(index)
            return torch.device("cuda", index)
        return torch.device(req)
    return torch.device(req)


def setup(*, device: str | torch.device | None = "auto", backend: str | None = None,
          timeout_s: float = 1800.0) -> DistContext:
    """Join the process group described by ``torchrun``'s environment variables, or run as a single process.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"} or torch.device
        ``"auto"``: this process's GPU (``cuda:LOCAL_RANK``) when there are GPUs, else the CPU.
    backend : {"nccl", "gloo"}, optional
        Default: NCCL when the device is a GPU, Gloo on CPU.
    timeout_s : float
        How long collective operations wait for the slowest process.

    Returns
    -------
    DistContext
        ``world_size == 1`` (and nothing initialised) when ``WORLD_SIZE`` is unset or 1.

    Raises
    ------
    ValueError
        ``WORLD_SIZE > 1`` but the other variables torchrun sets are missing, or an unknown backend.
    """
    n = env_world_size()
    if dist.is_available() and dist.is_initialized():  # the caller already joined a group
        r, w = dist.get_rank(), dist.get_world_size()
        lr = int(os.environ.get("LOCAL_RANK", r))
        be = dist.get_backend()
        return DistContext(r, w, lr, _pick_device(device, lr, be), be, owns_group=False)
    if n == 1:
        return DistContext(device=_pick_device(device, 0, None))
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise ValueError(f"WORLD_SIZE={n} but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                         "launch with torchrun (e.g. torchrun --nproc-per-node 2 ...) or unset WORLD_SIZE")
    r, lr = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    want_cuda = (device in (None, "auto") and torch.cuda.is_available()) or str(device).startswith("cuda")
    if backend is None:
        backend = "nccl" if want_cuda else "gloo"
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend must be 'nccl' (GPUs) or 'gloo' (CPU), got {backend!r}")
    dev = _pick_device(device, lr, backend)
    dist.init_process_group(backend=backend, init_method="env://", rank=r, world_size=n,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return DistContext(r, n, lr, dev, backend, owns_group=True)
