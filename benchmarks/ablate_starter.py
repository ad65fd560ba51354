"""Short runs of the starter recipe with one setting changed, on the starter cases, to see what lets it fit.

    python benchmarks/ablate_starter.py VARIANT [ITERATIONS]
    python benchmarks/eval_real.py --fit runs/ablate-VARIANT/last.pt

VARIANT: ``base`` (the ``starter`` preset), ``noaug`` (no augmentation on top of the phantoms' randomisation) or
``ce-fg05`` (unweighted cross-entropy, half the crops centred on an organ) or ``sqrt-fg05`` (as ``ce-fg05`` with
square-root class weights). The run goes to
``runs/ablate-VARIANT``; the cosine schedule is compressed to ITERATIONS (default 500).
"""

from __future__ import annotations

import sys
import time

from napari_ctorgans.train import TrainConfig, train
from napari_ctorgans.train.starter import starter_cases

VARIANTS = {
    "base": {},
    "noaug": {"augment_at": -1},
    "ce-fg05": {"class_weighting": "uniform", "foreground_prob": 0.5},
    "sqrt-fg05": {"class_weighting": "sqrt", "foreground_prob": 0.5},
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in VARIANTS:
        print(f"usage: ablate_starter.py {{{','.join(VARIANTS)}}} [ITERATIONS]", file=sys.stderr)
        return 2
    name, iters = argv[0], int(argv[1]) if len(argv) > 1 else 500
    cfg = TrainConfig.preset("starter", iterations=iters, output_dir=f"runs/ablate-{name}", checkpoint_every=iters,
                             **VARIANTS[name])
    t0 = time.time()
    for state in train(cfg, starter_cases(), overwrite=True):
        if state.iteration % 100 == 0:
            print(f"{name} iteration {state.iteration} loss {state.loss:.3f} ({time.time() - t0:.0f} s)", flush=True)
    print(f"{name}: {iters} iterations in {time.time() - t0:.0f} s; runs/ablate-{name}/last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
