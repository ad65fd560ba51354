"""Training throughput of the ``cpu-quick`` step: the default memory layout against ``channels_last_3d``.

Usage::

    python benchmarks/bench_train_step.py                   # 30 steps per variant, 3 alternating rounds
    python benchmarks/bench_train_step.py --steps 10 --rounds 1 --threads 1

The real ``cpu-quick`` configuration: the cpu-small U-Net (batch norm), batch 4 of 32^3 crops drawn and augmented
by the training loop's own batch maker from phantoms 0-3, the preset's loss (IOU over the batch + 0.5 x
cross-entropy, class weights from the cases) and Adam at the preset's learning rate. The batches are made once,
before timing, so both variants see the same inputs; the time to make one batch (the same for both) is printed
apart, and "iterations/s" counts batch + step. Variants, with the same initial weights:

- ``default``: the training step as ``train/loop.py`` runs it (contiguous layout, torch's default thread count);
- ``channels_last_3d``: model and batch in the ``channels_last_3d`` layout, every core this process may use.

Each round times ``--steps`` steps of each variant from the same weights (after one warm-up step), alternating so
that a change of load hits both; the median round is reported, with the largest relative difference of the losses
between the variants (float tolerance: the layout changes only the order of the convolution sums). Record
``uptime`` with the numbers.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time

import numpy as np
import torch


def setup(steps: int):
    """The cpu-quick model, loss, optimiser settings and ``steps + 1`` batches made by the training loop."""
    import napari_ctorgans as ct
    from napari_ctorgans.augment import AugmentParams
    from napari_ctorgans.nn import build_model
    from napari_ctorgans.nn.losses import class_weights, get_loss
    from napari_ctorgans.train import loop
    from napari_ctorgans.train.data import load_cases

    config = ct.TrainConfig.preset("cpu-quick")
    cases = load_cases([ct.make_phantom(seed=s) for s in range(4)], spacing=config.spacing)
    torch.manual_seed(config.seed)
    model = build_model(loop._model_config(config))
    weights = class_weights([c.labels for c in cases], config.class_weighting, num_classes=config.num_classes)
    loss_fn = get_loss(config.loss, weighting=weights, **{"batch": True, **config.loss_options})
    window = loop.resolve_window(config)
    params = AugmentParams.from_dict(config.augment) if config.augment else AugmentParams()
    rng = np.random.default_rng(config.seed)
    t0 = time.perf_counter()
    batches = [loop._make_batch(cases, config, rng, True, params, window) for _ in range(steps + 1)]
    batch_s = (time.perf_counter() - t0) / len(batches)
    return config, model, loss_fn, batches, batch_s


def run_steps(config, model0, loss_fn, batches, channels_last: bool, threads: int) -> tuple[float, list[float]]:
    """Seconds for the steps after the first (warm-up) one, and every step's loss."""
    torch.set_num_threads(threads)
    model = copy.deepcopy(model0).train()
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    losses = []
    t0 = 0.0
    for i, (x, y) in enumerate(batches):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(x.contiguous(memory_format=fmt))
        loss = loss_fn(logits.float(), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return time.perf_counter() - t0, losses


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads of the channels_last_3d variant (default: every core)")
    args = ap.parse_args(argv)
    torch.set_flush_denormal(True)  # as the training loop does
    default_threads = torch.get_num_threads()
    config, model0, loss_fn, batches, batch_s = setup(args.steps)
    load = os.getloadavg()
    print(f"cpu-quick: batch {config.batch_size} x {tuple(config.crop_size)}, {args.steps} timed steps x "
          f"{args.rounds} rounds; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"making one batch (augmentation, same for both): {batch_s * 1e3:.0f} ms")
    variants = {"default": (False, default_threads), "channels_last_3d": (True, args.threads)}
    times: dict[str, list[float]] = {k: [] for k in variants}
    losses: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (cl, threads) in variants.items():
            sec, loss = run_steps(config, model0, loss_fn, batches, cl, threads)
            times[name].append(sec)
            losses.setdefault(name, loss)
    ref = np.asarray(losses["default"])
    print(f"{'variant':<18} {'threads':>7} {'step ms':>8} {'steps/s':>8} {'it/s (+batch)':>13} {'ratio':>6} "
          f"{'max rel. loss diff':>18}")
    base = None
    for name, (cl, threads) in variants.items():
        step = statistics.median(times[name]) / args.steps
        base = base or step
        diff = float(np.max(np.abs(np.asarray(losses[name]) - ref) / np.abs(ref)))
        print(f"{name:<18} {threads:7d} {step * 1e3:8.1f} {1 / step:8.2f} {1 / (step + batch_s):13.2f} "
              f"{base / step:5.2f}x {diff:18.2e}")
    print(f"first losses default {ref[:3].round(5).tolist()}, channels_last_3d "
          f"{np.asarray(losses['channels_last_3d'][:3]).round(5).tolist()}")
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
