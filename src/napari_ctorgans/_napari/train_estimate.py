"""How long a training run should take on this machine, shown beside the Train tab's Start button.

One training step (forward, loss, backward, optimiser step) of the configured network on a batch of random crops
of the configured size is timed (crops smaller than the configured ones do not help: a small network's step is
mostly overhead, 8.5 s for 16^3 crops against 13.8 s for 32^3 on a loaded 2-core machine); the estimate is that
time multiplied by the iterations. It
leaves out the validations and the batch-norm recalibration, and the machine's load at the time of the measurement
goes into it: the label says it is an estimate. The measurement is Qt-free (it runs in a worker thread: torch
releases the GIL) and cached per network, crop and batch size.
"""

from __future__ import annotations

import time

#: (model, crop, batch, loss) -> seconds per step measured in this session
_MEASURED: dict[tuple, float] = {}


def _key(config) -> tuple:
    return (repr(config.model), tuple(int(c) for c in config.crop_size), int(config.batch_size), str(config.loss))


def step_seconds(config, *, repeats: int = 2) -> float:
    """Seconds of one training step of ``config`` (a TrainConfig) on this machine's CPU: the mean of ``repeats``
    steps (the first one included: it costs about as much as the others); cached per network, crop size, batch
    size and loss."""
    key = _key(config)
    if key in _MEASURED:
        return _MEASURED[key]
    import torch

    from ..nn import build_model
    from ..nn.losses import get_loss
    from ..train.loop import _model_config

    mc = _model_config(config)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is untouched
        model = build_model(mc).train()
        params = [p for p in model.parameters() if p.requires_grad]
        loss_fn = get_loss(config.loss, batch=True)
        shape = (int(config.batch_size), mc.in_channels, *(int(c) for c in config.crop_size))
        x = torch.randn(shape)
        y = torch.randint(0, mc.num_classes, (shape[0], *shape[2:]))
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for p in params:
                p.grad = None
            loss_fn(model(x).float(), y).backward()
            with torch.no_grad():  # a plain update: torch.optim's first use imports torch's compiler stack
                for p in params:  # (about 1.5 s holding the interpreter), which would freeze the viewer
                    p.add_(p.grad, alpha=-1e-4)
            times.append(time.perf_counter() - t0)
    _MEASURED[key] = sum(times) / repeats
    return _MEASURED[key]


def duration_text(seconds: float) -> str:
    """``"about 38 min"``, ``"about 2 h 10 min"``, ``"about 40 s"``."""
    seconds = max(1, int(round(seconds)))
    if seconds >= 3600:
        return f"about {seconds // 3600} h {round(seconds % 3600 / 60):02d} min"
    if seconds >= 60:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds} s"


def estimate_text(config, seconds_per_step: float) -> str:
    """The label beside Start: the run's estimated time, and how it was obtained."""
    total = seconds_per_step * int(config.iterations)
    return (f"estimated time: {duration_text(total)} for {int(config.iterations)} iterations "
            f"({seconds_per_step:.2f} s per step measured here; validation not included)")
