"""The whole starter recipe (both stages) on phantoms of another anatomy version, to measure a generator change.

    python benchmarks/starter_anatomy.py ANATOMY [RUNS]       (ANATOMY: a key of synth.ANATOMY_VERSIONS)
    python benchmarks/eval_real.py RUNS/anatomy-ANATOMY/s2/last.pt

Stage 1 is the ``starter`` preset and stage 2 ``starter-refine`` from its ``last.pt``, on
``starter_cases(anatomy=ANATOMY)``: only the phantoms differ from the shipped recipe. About 40 min on 2 CPU cores.
"""

from __future__ import annotations

import sys
import time

from napari_ctorgans.synth import ANATOMY_VERSIONS
from napari_ctorgans.train import TrainConfig, train
from napari_ctorgans.train.starter import starter_cases


def main(argv: list[str]) -> int:
    if not argv or not argv[0].isdigit() or int(argv[0]) not in ANATOMY_VERSIONS:
        print(f"usage: starter_anatomy.py {{{','.join(map(str, ANATOMY_VERSIONS))}}} [RUNS]", file=sys.stderr)
        return 2
    anatomy, runs = int(argv[0]), argv[1] if len(argv) > 1 else "runs"
    out = f"{runs}/anatomy-{anatomy}"
    t0 = time.time()
    cases = starter_cases(anatomy=anatomy)
    print(f"{len(cases)} cases in {time.time() - t0:.0f} s", flush=True)
    stages = [("starter", {}), ("starter-refine", {"init_checkpoint": f"{out}/s1/last.pt"})]
    for i, (preset, extra) in enumerate(stages, 1):
        cfg = TrainConfig.preset(preset, output_dir=f"{out}/s{i}", **extra)
        for state in train(cfg, cases, overwrite=True):
            if state.iteration % 250 == 0:
                print(f"stage {i} iteration {state.iteration} loss {state.loss:.3f} ({time.time() - t0:.0f} s)",
                      flush=True)
    print(f"done in {time.time() - t0:.0f} s: {out}/s2/last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
