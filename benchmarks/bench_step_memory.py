"""The training-step memory estimate (``napari_ctorgans.train.estimate_step_memory``) against a measured step.

Usage::

    python benchmarks/bench_step_memory.py [--threads 2]

Each configuration runs in its own process: the model and Adam are warmed up on a tiny crop, then one training step
(forward, loss, backward, optimiser step) on ``batch_size`` random crops of ``crop_size``; the measurement is the
peak resident memory of that step above the memory before it (``ru_maxrss`` minus the RSS before the step). The
estimate it is compared with is the part of the estimate that the step allocates: the saved activations (scaled
for the backward pass) and the batch of crops (the weights and optimiser state exist before the step). A ratio
above 1 means the estimate is conservative; ``train()`` refuses a configuration only when the whole estimate
exceeds the memory available.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CONFIGS = [("cpu-small", 32, 4), ("cpu-small", 64, 2), ("cpu-small", 96, 2), ("paper-unet", 64, 1),
           ("paper-inception", 64, 1)]

_CHILD = r"""
import json, resource, sys
import psutil, torch
from napari_ctorgans.nn import build_model
from napari_ctorgans.nn.losses import get_loss
from napari_ctorgans.train import TrainConfig, estimate_step_memory

model_name, crop, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
cfg = TrainConfig(model=model_name, crop_size=crop, batch_size=batch, device="cpu", loss="iou")
est = estimate_step_memory(cfg)
model = build_model(model_name)
opt = torch.optim.Adam(model.parameters())
loss_fn = get_loss("iou", batch=True)
warm = loss_fn(model(torch.randn(2, 1, 16, 16, 16)), torch.randint(0, 6, (2, 16, 16, 16)))
warm.backward(); opt.step(); opt.zero_grad()
x, y = torch.randn(batch, 1, crop, crop, crop), torch.randint(0, 6, (batch, crop, crop, crop))
rss = psutil.Process().memory_info().rss
loss_fn(model(x), y).backward(); opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate_step": est.activation_bytes + est.batch_bytes, "estimate_total": est.total,
                  "measured_step": peak - rss, "parameters": est.parameters}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"{'model':16} {'crop':>5} {'batch':>5} {'estimate MiB':>13} {'measured MiB':>13} {'ratio':>6}")
    for model, crop, batch in CONFIGS:
        out = subprocess.run([sys.executable, "-c", _CHILD, model, str(crop), str(batch), str(args.threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        est, got = r["estimate_step"] / 2**20, r["measured_step"] / 2**20
        print(f"{model:16} {crop:5d} {batch:5d} {est:13.0f} {got:13.0f} {est / got:6.2f}")


if __name__ == "__main__":
    main()
