"""The network step of a prediction, tuned per device: threads, memory layout, mixed precision, batching.

Measured on a 2-core AVX2 CPU (docs/benchmarks.md, "Prediction"): ``channels_last_3d`` runs the small U-Net's 3D
convolutions about 1.5x faster than the default layout with the same labels, and fusing batch norm, ReLU and the
skip concatenation into the convolutions (:mod:`.fuse`) gains about 1.5x more; bf16 autocast on that CPU (no native
bf16 units) was more than ten times slower, so the CPU path stays float32. On CUDA the tiles run under float16
autocast, several per forward pass, and are stitched on the GPU (on the CPU when its memory is short).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..resampling import _worker_count
from .fuse import fuse_for_cpu
from .plan import TilePlan
from .sliding import _mirror_axes, check_model_output, sliding_window

__all__ = ["resolve_device", "cpu_threads", "prepare_model", "network_labels", "ENGINES"]

#: network engines: torch (default) or OpenVINO (optional, CPU, one pass over the whole box; ``pip install openvino``)
ENGINES = ("torch", "openvino")


def resolve_device(device: Any) -> torch.device:
    """The device a prediction runs on: None gives CUDA when available, else the CPU.

    Raises
    ------
    ValueError
        ``device="cuda"`` (or ``"cuda:N"``) on a machine without a usable CUDA GPU; the message says to use
        ``device="cpu"`` or leave it unset.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but no CUDA GPU is available here; pass device='cpu' "
                         "or leave device unset (CUDA when available, else the CPU)")
    return dev


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Use ``threads`` torch threads (default: every core this process may use) inside the block."""
    n = _worker_count(threads)
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(previous)


def prepare_model(model: torch.nn.Module, device: torch.device, *, fuse: bool = True) -> torch.nn.Module:
    """The model on ``device`` in eval mode; on the CPU in the ``channels_last_3d`` layout (faster 3D convs) and,
    with ``fuse``, as a fused inference copy (:func:`~napari_ctorgans.infer.fuse.fuse_for_cpu`)."""
    model = model.to(device).eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last_3d)
        if fuse:
            model = fuse_for_cpu(model, getattr(model, "multiple", 8))
    return model


def _forward(model, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if device.type == "cpu":
        return model(x.contiguous(memory_format=torch.channels_last_3d)).float()
    with torch.autocast("cuda", dtype=torch.float16):
        return model(x).float()


def _whole(model, x: torch.Tensor, device: torch.device, tta, need_probs: bool) -> torch.Tensor:
    """One pass over the whole box (per flip): class probabilities, or logits when only the argmax is needed."""
    flips = _mirror_axes(tta)
    acc = None
    for axes in flips:
        dims = [a + 2 for a in axes]
        inp = torch.flip(x, dims) if dims else x
        out = check_model_output(_forward(model, inp, device), inp)
        if len(flips) > 1 or need_probs:
            out = torch.softmax(out, dim=1)
        if dims:
            out = torch.flip(out, dims)
        acc = out if acc is None else acc.add_(out)
    return acc / len(flips) if len(flips) > 1 else acc


def check_engine(engine: str, plan: TilePlan, device: torch.device, tta, need_probs: bool) -> None:
    """Refuse an engine that cannot run this prediction, with the reason and the fix."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "openvino":
        if device.type != "cpu" or not plan.whole or tta or need_probs:
            raise ValueError("engine='openvino' runs one pass over the whole body box on the CPU, without TTA or "
                             "probabilities; use engine='torch' for tiles, CUDA, tta or return_probabilities")
        try:
            import openvino  # noqa: F401
        except ImportError:
            raise ValueError("engine='openvino' needs the openvino package: pip install openvino, "
                             "or use engine='torch'") from None


def _openvino_logits(model: torch.nn.Module, x: torch.Tensor, multiple: int, threads: int) -> torch.Tensor:
    """Logits from OpenVINO: the model exported to ONNX once (dynamic sizes, multiples of ``multiple``)."""
    import tempfile

    import openvino as ov

    pads = [(-s) % multiple for s in x.shape[2:]]
    xp = torch.nn.functional.pad(x, [0, pads[2], 0, pads[1], 0, pads[0]]).contiguous()
    key = ("_ctorgans_openvino", threads)
    compiled = getattr(model, "_ctorgans_openvino", {}).get(key)
    if compiled is None:
        with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
            path = f"{tmp}/model.onnx"
            plain = model.to(memory_format=torch.contiguous_format)
            torch.onnx.export(plain, (xp[..., :multiple * 2, :multiple * 2, :multiple * 2],), path,
                              input_names=["x"], output_names=["y"], dynamo=False,
                              dynamic_axes={"x": {2: "d", 3: "h", 4: "w"}, "y": {2: "d", 3: "h", 4: "w"}})
            core = ov.Core()
            compiled = core.compile_model(core.read_model(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
        model._ctorgans_openvino = {key: compiled}  # type: ignore[attr-defined]
    out = torch.from_numpy(compiled(xp.numpy())[0])
    return out[:, :, :x.shape[2], :x.shape[3], :x.shape[4]]


def _check_finite(t: torch.Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` (``{count}``, ``{total}`` filled in) when ``t`` holds NaN or infinite values."""
    with torch.inference_mode():
        if bool(torch.isfinite(t).all()):
            return
        count = int((~torch.isfinite(t)).sum())
    raise ValueError(message.format(count=count, total=t.numel()))


def network_labels(model: torch.nn.Module, x: torch.Tensor, plan: TilePlan, *, device: torch.device,
                   overlap: float, mode: str, batch_size: int | None, tta, need_probs: bool,
                   progress: Callable[[int, int], Any] | None = None, engine: str = "torch",
                   size_multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (uint8, on the CPU) and, when ``need_probs``, the probabilities of a windowed box ``x`` (1, 1, D, H, W).

    The whole box runs as one pass when ``plan.whole``; otherwise :func:`sliding_window` with ``plan.roi``,
    stitched on the model's device (``batch_size`` tiles per pass; default 1 on the CPU, 4 on CUDA).

    Raises
    ------
    ValueError
        ``x`` or the model's scores hold NaN or infinite values (a damaged scan or model), instead of returning
        labels made from them.
    """
    _check_finite(x, "the CT given to predict holds {count} NaN or infinite voxel values (after windowing) of "
                     "{total}; fill them first (e.g. np.nan_to_num(volume.array, nan=-1024)) or read the scan again")
    if engine == "openvino":
        scores = _openvino_logits(model, x, size_multiple, torch.get_num_threads())
        if progress is not None:
            progress(1, 1)
    elif plan.whole:
        with torch.inference_mode():
            scores = _whole(model, x, device, tta, need_probs)
        if progress is not None:
            progress(1, 1)
    else:
        batch = int(batch_size or (4 if device.type == "cuda" else 1))
        scores = sliding_window(x, lambda t: _forward(model, t, device), roi_size=plan.roi, overlap=overlap,
                                mode=mode, batch_size=batch, sw_device=device, device=device, progress=progress,
                                tta=tta)
    _check_finite(scores, f"the model ({type(model).__name__}) gave NaN or infinite scores for {{count}} of {{total}} "
                          "values; its weights are damaged or its training diverged, and its labels would be empty or "
                          "random: use another checkpoint (e.g. best.pt of an earlier run) or train it again")
    with torch.inference_mode():
        labels = scores[0].argmax(0).to("cpu", torch.uint8)
    probs = scores[0].float().cpu() if need_probs else None
    return labels, probs


