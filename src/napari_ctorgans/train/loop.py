"""The training loop: a generator that yields one :class:`TrainStatus` per iteration and stops when closed."""

from __future__ import annotations

import json
import math
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..organs import IGNORE_LABEL, ORGANS
from ..contract import ModelContract
from .checkpoint import read_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import Case, load_cases, random_crop
from .rundir import RunDir

__all__ = ["train", "TrainStatus", "window_image", "resolve_window", "validate", "learning_rate_at"]


@dataclass
class TrainStatus:
    """What the loop reports after each iteration (plain values only)."""

    iteration: int
    iterations: int
    loss: float
    lr: float
    augment_on: bool
    elapsed: float
    val_dice: dict[str, float] | None = None
    val_score: float | None = None
    checkpoint: str | None = None
    best: bool = False
    done: bool = False
    message: str = ""
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------- helpers
def resolve_window(config: TrainConfig) -> tuple[float, float]:
    """The fixed HU window used without augmentation and at prediction: the middle of the augmentation ranges."""
    from ..augment import AugmentParams

    p = AugmentParams.from_dict(config.augment) if config.augment else AugmentParams()
    return (float(np.mean(p.window_low)), float(np.mean(p.window_high)))


def window_image(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Network input for a whole volume: ``ct.augment`` with the identity transform and the fixed window."""
    from ..augment import AugmentParams, augment

    out = augment(np.asarray(image, dtype=np.float32), None, AugmentParams.none(window=tuple(window)), seed=0)
    return out[0] if isinstance(out, tuple) else out


def learning_rate_at(config: TrainConfig, iteration: int) -> float:
    """Learning rate of an iteration (1-based) under the config's schedule and warm-up."""
    lr0, total = config.learning_rate, config.iterations
    if config.warmup and iteration <= config.warmup:
        return lr0 * iteration / config.warmup
    t = min(max((iteration - config.warmup) / max(total - config.warmup, 1), 0.0), 1.0)
    lo = lr0 * config.lr_min_factor
    if config.lr_schedule == "constant":
        return lr0
    if config.lr_schedule == "cosine":
        return lo + (lr0 - lo) * 0.5 * (1 + math.cos(math.pi * t))
    if config.lr_schedule == "poly":
        return max(lr0 * (1 - t) ** 0.9, lo)
    return max(lr0 * 0.3 ** math.floor(3 * t if t < 1 else 2), lo)  # step: x0.3 at 1/3 and 2/3


def _device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(config.device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={config.device!r} but no CUDA GPU is available; use device='cpu' or 'auto'")
    return torch.device(config.device)


def _model_config(config: TrainConfig):
    from ..nn import MODEL_PRESETS, ModelConfig

    if isinstance(config.model, str):
        if config.model not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {config.model!r}; choose one of {sorted(MODEL_PRESETS)}")
        mc = MODEL_PRESETS[config.model]
    else:
        mc = ModelConfig.from_dict(dict(config.model))
    if mc.num_classes != config.num_classes:
        mc = mc.replace(num_classes=config.num_classes)
    return mc


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    from .. import metrics

    # voxels of several cases (ignored ones left out) as one flat 3D mask: a global Dice
    return float(metrics.dice(pred.reshape(1, 1, -1), ref.reshape(1, 1, -1)))


def validate(model: torch.nn.Module, cases: list[Case], config: TrainConfig, window, device,
             progress=None) -> dict[str, float]:
    """Per-organ Dice over all tiles of the validation cases (voxels marked ignore are left out).

    An organ's Dice is computed over the concatenation of the cases where it is labelled (global Dice).
    ``progress``, when given, is called as ``progress(tiles_done, tiles_total, "validation, case i of n")``.
    """
    from ..infer.sliding import sliding_window

    was_training = model.training
    model.eval()
    preds, refs = [], []
    try:
        for i, case in enumerate(cases):
            x = torch.from_numpy(window_image(case.image, window))[None, None].to(device)
            tiles = None if progress is None else (
                lambda done, total, what=f"validation, case {i + 1} of {len(cases)}": progress(done, total, what))
            probs = sliding_window(x, model, roi_size=config.crop_size, overlap=config.val_overlap,
                                   mode=config.val_mode, batch_size=1, device="cpu", progress=tiles)
            pred = probs[0].argmax(0).numpy().astype(np.uint8)
            keep = case.labels != IGNORE_LABEL
            preds.append(pred[keep])
            refs.append(case.labels[keep])
    finally:
        model.train(was_training)
    pred_all, ref_all = np.concatenate(preds), np.concatenate(refs)
    out: dict[str, float] = {}
    for value in range(1, config.num_classes):
        r = ref_all == value
        if not r.any():
            continue
        name = ORGANS[value].name if value in ORGANS else str(value)
        out[name] = _dice(pred_all == value, r)
    return out


class SkipRecalibration(Exception):
    """Raised by a ``progress`` callback to skip the batch-norm recalibration under way: the statistics the model
    had before it are put back (a GUI's "skip" while a stopped run finishes)."""


def recalibrate_batchnorm(model: torch.nn.Module, cases: list[Case], config: TrainConfig, window, device,
                          *, seed: Any, progress=None) -> bool:
    """Recompute the batch-norm statistics of ``model`` from ``config.bn_recalibration`` un-augmented crops.

    "Precise batch norm": with the weights fixed, the statistics are the plain average over the crops (momentum
    None) instead of running averages that lag behind the weights and come from augmented crops. The crops are
    drawn from their own generator (``seed``), so the training's random stream is untouched and a resumed run
    recalibrates identically. Returns False when the model has no batch norm or recalibration is off.
    ``progress``, when given, is called as ``progress(batches_done, batches_total, "batch norm")`` (first with 0
    batches done); when it raises :class:`SkipRecalibration`, the earlier statistics are put back and False returned.
    """
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not layers or config.bn_recalibration <= 0:
        return False
    rng = np.random.default_rng(seed)
    was_training = model.training
    momenta = [m.momentum for m in layers]
    kept = [{k: v.clone() for k, v in m.state_dict().items()} for m in layers] if progress is not None else None
    batches = max(1, -(-config.bn_recalibration // config.batch_size))
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    try:
        with torch.no_grad():
            if progress is not None:
                progress(0, batches, "batch norm")
            for b in range(batches):
                x, _ = _make_batch(cases, config, rng, False, None, window)
                model(x.to(device))
                if progress is not None:
                    progress(b + 1, batches, "batch norm")
    except SkipRecalibration:
        for m, state in zip(layers, kept):
            m.load_state_dict(state)
        return False
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
        model.train(was_training)
    return True


def _make_batch(cases, config, rng, augment_on, params, window, items=None):
    from ..augment import AugmentParams, augment

    crop = tuple(config.crop_size)
    context = tuple(int(math.ceil(c * 0.15)) for c in crop) if augment_on else None
    xs, ys = [], []
    fixed = AugmentParams.none(window=window)
    # [distributed] (case, crop seed, organ slot) items: this process's share of the global batch, drawn from ``rng``
    if items is None:
        from ..distributed import global_batch_items

        items = global_batch_items(rng, len(cases), config.batch_size, rank_=0, world_size_=1)
    # stratified organs: consecutive slots, so the crops of one batch are centred on different organs
    for case_index, seed, organ in items:
        case = cases[case_index]
        crop_rng = np.random.default_rng(seed)
        img, lab = random_crop(case, crop, crop_rng, foreground_prob=config.foreground_prob, context=context,
                               organ=organ, centre_organs=config.centre_organs)
        if augment_on:
            xi, yi = augment(img, lab, params, seed=seed, out_shape=crop)[:2]
        else:
            xi, yi = augment(img, lab, fixed, seed=seed)[:2]
        xs.append(np.asarray(xi, dtype=np.float32))
        ys.append(np.asarray(yi).astype(np.int64))
    return torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


# --------------------------------------------------------------------------------------------------- train
def train(config: TrainConfig | str | dict, train_cases: Any, val_cases: Any = None, *, resume: bool = False,
          overwrite: bool = False, cache_dir: Any = None, progress=None) -> Iterator[TrainStatus]:
    """Train a segmentation model; a generator with one :class:`TrainStatus` per iteration.

    Parameters
    ----------
    config : TrainConfig, preset name or dict
    train_cases : folder, case, or list of cases
        A case is a ``(Volume, labels)`` pair, a pair of file paths, or a :class:`Case`; a folder is read with
        :func:`find_cases` (CT-ORG or MSD/nnU-Net layout). Labels equal to 255 are ignored by the loss.
    val_cases : same, optional
        Validated (all tiles, per-organ Dice) every ``config.validate_every`` iterations and at the end.
    resume : bool
        Continue the run whose ``last.pt`` is in ``config.output_dir`` exactly where it stopped (weights, optimiser,
        random states, curriculum). The settings must be the run's own (its ``config.json``); only
        ``config.iterations`` may be raised to train longer (``output_dir``, ``device`` and ``checkpoint_every`` may
        change too).
    overwrite : bool
        Start a new run in an ``output_dir`` that already holds a run, replacing the whole run: its ``last.pt``,
        ``best.pt`` and ``config.json`` are moved aside when the new run starts and deleted once it has written a
        checkpoint (moved back if it writes none).
    cache_dir : str, optional
        Where resampled file cases are cached.
    progress : callable, optional
        Called as ``progress(done, total, what)`` from the thread running the generator during the long steps
        between two statuses: the batch-norm recalibration (``what="batch norm"``, crops batches) and the
        validation (``what="validation, case i of n"``, tiles). A GUI shows them instead of a silent wait.

    Yields
    ------
    TrainStatus

    Raises
    ------
    FileExistsError
        ``output_dir`` holds checkpoints and neither ``resume`` nor ``overwrite`` is set, or another process is
        training into it.
    RunConfigMismatch
        (a ValueError) ``resume=True`` with settings that differ from the run's; ``.fields`` names them.
    StepTooLarge
        (a MemoryError and a ValueError) One training step of ``crop_size`` x ``batch_size`` would need more memory
        than is available (the message gives the estimate and a crop size that fits).
    ValueError
        No training cases, an unknown preset, both ``resume`` and ``overwrite``.

    Notes
    -----
    Closing the generator (``gen.close()``, or breaking out of a ``for`` loop and dropping it) writes ``last.pt``
    once more, atomically, so a stopped run can be resumed. ``best.pt`` holds the weights with the best mean
    validation Dice.

    Examples
    --------
    >>> cfg = ct.TrainConfig.preset("cpu-quick", iterations=20, output_dir="runs/demo")  # doctest: +SKIP
    >>> for status in ct.train(cfg, [ct.make_phantom(seed=s) for s in range(3)]):  # doctest: +SKIP
    ...     print(status.iteration, status.loss)
    """
    config = _as_config(config)
    from .budget import check_step_memory

    check_step_memory(config)  # a step that cannot fit is refused now, with the numbers (an unknown GPU too)
    run_dir = RunDir(config.output_dir).open(resume=resume, overwrite=overwrite) if config.output_dir else None
    if resume and run_dir is None:
        raise ValueError("resume=True needs config.output_dir (the folder holding last.pt)")
    try:
        resume_from = run_dir.check_resume(config) if resume else None
        train_list = load_cases(train_cases, spacing=config.spacing, cache_dir=cache_dir)
        if not train_list:
            raise ValueError("train_cases is empty: give at least one (image, labels) case or a folder of cases")
        val_list = load_cases(val_cases, spacing=config.spacing, cache_dir=cache_dir)
    except BaseException:
        if run_dir is not None:
            run_dir.close()
        raise
    return _run(config, train_list, val_list, run_dir, resume_from, progress)


def _as_config(config: Any) -> TrainConfig:
    if isinstance(config, str):
        return TrainConfig.preset(config)
    if isinstance(config, dict):
        return TrainConfig.from_dict(config)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, a preset name or a dict, got {type(config).__name__}")
    return config


def _run(config: TrainConfig, cases: list[Case], val_cases: list[Case], run_dir: RunDir | None,
         resume_from: dict | None, progress=None) -> Iterator[TrainStatus]:
    try:
        yield from _loop(config, cases, val_cases, run_dir, resume_from, progress)
    finally:  # restores a replaced run when the new one wrote nothing, releases the folder's lock
        if run_dir is not None:
            run_dir.close()


def _case_notes(config: TrainConfig, cases: list[Case]) -> list[str]:
    """Warnings about the training cases, shown with the first status: organs no case labels, small cases."""
    notes: list[str] = []
    present = set().union(*(c.organs() for c in cases))
    missing = [ORGANS[v].name for v in range(1, config.num_classes) if v in ORGANS and v not in present]
    if missing:
        notes.append(f"no training case labels {', '.join(missing)}: the model cannot learn "
                     f"{'it' if len(missing) == 1 else 'them'} (add cases that label them)")
        warnings.warn(notes[-1], stacklevel=3)
    if any(min(np.asarray(c.shape) - np.asarray(config.crop_size)) < 0 for c in cases):
        notes.append("some cases are smaller than crop_size; their crops are padded with air")
    return notes


def _loss_function(config: TrainConfig, cases: list[Case]):
    from ..nn.losses import class_weights, get_loss, loss_name

    weights = class_weights([c.labels for c in cases], config.class_weighting, num_classes=config.num_classes)
    # the IOU and Dice scores are taken over the whole mini-batch: with the paper's convention a class absent from
    # one crop scores 0 whatever is predicted there, so per-crop scores never penalise its false positives
    loss_options = {"batch": True, **config.loss_options}
    if loss_name(config.loss) == "cross_entropy":
        loss_options.pop("cross_entropy_weight", None)  # a preset's extra term for the overlap losses
    return get_loss(config.loss, weighting=weights, **loss_options)


def _load_init(model: torch.nn.Module, config: TrainConfig, model_cfg) -> None:
    """Start from ``config.init_checkpoint``'s weights (fine-tuning), refused with advice when they do not fit."""
    from ..models import resolve_model

    ck = read_checkpoint(resolve_model(config.init_checkpoint))
    try:
        model.load_state_dict(ck["weights"])
    except RuntimeError as exc:
        raise ValueError(f"init_checkpoint {config.init_checkpoint} does not fit model {model_cfg.to_dict()}: "
                         f"{str(exc).splitlines()[0]}; use the same model preset and num_classes") from exc


def _step(net, opt, scaler, loss_fn, x: torch.Tensor, y: torch.Tensor, device: torch.device, use_amp: bool):
    """One optimiser step; returns the loss."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
        logits = net(x)  # [distributed] the DDP wrapper (the model itself in one process)
    loss = loss_fn(logits.float(), y)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss


def _curriculum(state: dict, config: TrainConfig, it: int) -> str:
    """Augmentation on at a set iteration, or once the training loss stops falling; the message when it starts."""
    if state["augment_on"]:
        return ""
    w = config.plateau_window
    if config.augment_at is not None:
        switch = config.augment_at >= 0 and it >= config.augment_at
    else:
        losses = state["losses"]
        switch = (len(losses) >= 2 * w and it % max(w // 2, 1) == 0
                  and np.mean(losses[-w:]) > np.mean(losses[-2 * w:-w]) * (1 - config.plateau_tolerance))
    if not switch:
        return ""
    state["augment_on"], state["augment_start"] = True, it
    return f"augmentation on from iteration {it}"


def _record_validation(state: dict, it: int, val_dice: dict) -> tuple[float, bool]:
    """Add a validation to the run's history; returns its score (mean Dice) and whether it is the best so far."""
    score = float(np.mean(list(val_dice.values()))) if val_dice else 0.0
    state["val_history"].append({"iteration": it, "dice": val_dice, "score": score})
    if state["best_score"] is None or score > state["best_score"]:
        state["best_score"], state["since_best"] = score, 0
        return score, True
    state["since_best"] += 1
    return score, False


def _loop(config: TrainConfig, cases: list[Case], val_cases: list[Case], run_dir: RunDir | None,
          ck: dict | None, progress=None) -> Iterator[TrainStatus]:
    from ..augment import AugmentParams
    from ..nn import build_model

    t0 = time.perf_counter()
    # denormal floats (tiny activations late in training) slow CPU kernels several-fold; flush them to zero
    torch.set_flush_denormal(True)
    device = _device(config)
    # [distributed] join torchrun's process group (nothing happens in a single process); one device per process
    from .. import distributed as _dist

    dist_ctx = _dist.setup(device=device)
    device = dist_ctx.device
    use_amp = bool(config.amp and device.type == "cuda")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model_cfg = _model_config(config)
    model = build_model(model_cfg).to(device)
    window = resolve_window(config)
    params = AugmentParams.from_dict(config.augment) if config.augment else AugmentParams()

    notes = _case_notes(config, cases)
    loss_fn = _loss_function(config, cases)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    state: dict[str, Any] = dict(iteration=0, losses=[], val_history=[], best_score=None, since_best=0,
                                 augment_on=config.augment_at == 0, augment_start=None,
                                 run_id=uuid.uuid4().hex, world_size=dist_ctx.world_size)
    last_path, best_path = (run_dir.last, run_dir.best) if run_dir is not None else (None, None)
    if ck is not None:  # resume: train() checked that the run's settings are these
        model.load_state_dict(ck["weights"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"]["torch"])
        rng.bit_generator.state = ck["rng"]["numpy"]
        state.update(ck["state"], world_size=dist_ctx.world_size)  # [distributed] the global batch is kept
    elif config.init_checkpoint:
        _load_init(model, config, model_cfg)

    contract = ModelContract(spacing=config.spacing, window=window, size_multiple=model_cfg.size_multiple,
                             organs={v: ORGANS[v].name for v in range(config.num_classes) if v in ORGANS})

    def payload() -> dict:
        return {
            "weights": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "model_config": model_cfg.to_dict(),
            "train_config": {**config.to_dict(), "window": list(window)},
            "contract": contract.to_dict(),  # what prediction needs, stored once (napari_ctorgans.contract)
            "iteration": state["iteration"],
            "val_dice": state["val_history"][-1]["dice"] if state["val_history"] else None,
            "best_score": state["best_score"],
            "run_id": state["run_id"],
            "optimizer": opt.state_dict(),
            "rng": dict(rng_done),  # [distributed] random state at the end of the last completed iteration
            "state": {k: (list(v) if isinstance(v, list) else v) for k, v in state.items()},
        }

    saved_at = state["iteration"]
    # [distributed] a crash inside an iteration (a lost process, out of memory) has already drawn that iteration's
    # batch: checkpoints keep the random state of the last completed iteration so a resume replays exactly
    rng_done = {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state}

    def save_last() -> str | None:
        nonlocal saved_at
        if last_path is None or not dist_ctx.is_main:  # [distributed] rank 0 writes
            return None
        save_checkpoint(last_path, payload())
        run_dir.saved()
        saved_at = state["iteration"]
        return str(last_path)

    if run_dir is not None and dist_ctx.is_main:  # [distributed] rank 0 writes
        run_dir.start()  # overwrite=True: the old run's files go aside until this run has written a checkpoint
        run_dir.write_config(json.dumps({**config.to_dict(), "window": list(window)}, indent=2) + "\n")
    # [distributed] DistributedDataParallel (synchronised batch norm when asked) around the same parameters;
    # ``model`` stays the plain module for checkpoints and validation
    net = dist_ctx.wrap(model, sync_batchnorm=_dist.sync_batchnorm_requested(config))
    model.train()
    stopped = False
    try:
        for it in range(state["iteration"] + 1, config.iterations + 1):
            lr = learning_rate_at(config, it)
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = _make_batch(cases, config, rng, state["augment_on"], params, window,
                               items=dist_ctx.batch_items(rng, len(cases), config.batch_size))  # [distributed]
            try:
                loss = _step(net, opt, scaler, loss_fn, x.to(device), y.to(device), device, use_amp)
            except (RuntimeError, MemoryError) as exc:
                if not _is_oom(exc):
                    raise
                raise MemoryError(
                    f"out of memory at iteration {it} with batch_size={config.batch_size} and crop_size="
                    f"{config.crop_size}; lower them (e.g. --crop-size 48) and resume from {last_path}"
                ) from exc
            loss_value = float(dist_ctx.mean(float(loss.detach())))  # [distributed] mean over processes
            state["iteration"] = it
            rng_done.update(torch=torch.get_rng_state(), numpy=rng.bit_generator.state)  # [distributed]
            state["losses"].append(loss_value)
            msg = _curriculum(state, config, it)
            val_dice = score = ckpt = None
            best = False
            validating = bool(val_cases) and (it % config.validate_every == 0 or it == config.iterations)
            if validating or it == config.iterations:
                # [distributed] each process recalibrates its own copy; rank 0 validates and saves its copy
                recalibrate_batchnorm(model, cases, config, window, device, seed=(config.seed, it), progress=progress)
            if validating:
                # [distributed] rank 0 validates; every process gets its result (same early-stop decision)
                val_dice = dist_ctx.broadcast(validate(model, val_cases, config, window, device, progress)
                                              if dist_ctx.is_main else None)
                score, best = _record_validation(state, it, val_dice)
                if best and best_path is not None and dist_ctx.is_main:  # [distributed] rank 0 writes
                    save_checkpoint(best_path, payload())
                    run_dir.saved()
                    ckpt = str(best_path)
            stop = bool(config.early_stopping and state["since_best"] >= config.early_stopping)
            if stop or it == config.iterations or it % config.checkpoint_every == 0:
                ckpt = save_last() or ckpt
            if stop:
                msg = (msg + "; " if msg else "") + (f"early stop: no better validation Dice in "
                                                     f"{config.early_stopping} validations")
            status = TrainStatus(
                iteration=it, iterations=config.iterations, loss=loss_value, lr=lr, augment_on=state["augment_on"],
                elapsed=time.perf_counter() - t0, val_dice=val_dice, val_score=score, checkpoint=ckpt, best=best,
                done=stop or it == config.iterations, message=msg, warnings=notes if it == 1 else [],
            )
            yield status
            if stop:
                return
    except GeneratorExit:  # stopped by the caller (the widget's Stop, ``close()``)
        stopped = True
        raise
    finally:
        # stopped early (generator closed) or failed: keep the progress made so far, written atomically
        if last_path is not None and state["iteration"] > saved_at:
            if stopped and not dist_ctx.distributed:  # a stopped run's checkpoint is used for prediction too
                recalibrate_batchnorm(model, cases, config, window, device, seed=(config.seed, state["iteration"]),
                                      progress=progress)
            save_last()
        dist_ctx.teardown()  # [distributed] leave the process group joined by setup
