"""The starter recipe on phantoms of other anatomy versions, to measure a generator change.

    python benchmarks/starter_anatomy.py ANATOMY[,ANATOMY...] [RUNS] [--from-starter] [--then ANATOMY[,...]]
    python benchmarks/eval_real.py RUNS/anatomy-ANATOMY/s2/last.pt

ANATOMY: keys of synth.ANATOMY_VERSIONS; several (``2,3``) train on ``STARTER_PHANTOMS`` phantoms of each.
Without ``--from-starter``: both stages, ``starter`` then ``starter-refine`` from its ``last.pt``, on
``starter_cases(anatomy=...)`` (about 40 min on 2 CPU cores). With it: one ``starter-refine`` stage from the
shipped starter's weights (copied to RUNS/.../init/ first, so the checkpoint names a file that stays), written to
RUNS/anatomy-ANATOMY-from-starter/s2 (about 10 min). ``--then``: one more ``starter-refine`` stage from stage 2's
``last.pt`` (``starter-adapt``) on the phantoms of those versions, written to s3 (about 7 min more).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from napari_ctorgans.models import starter_path
from napari_ctorgans.synth import ANATOMY_VERSIONS
from napari_ctorgans.train import TrainConfig, train
from napari_ctorgans.train.starter import starter_cases


def _versions(arg: str) -> list[int] | None:
    parts = arg.split(",")
    if not all(p.isdigit() and int(p) in ANATOMY_VERSIONS for p in parts):
        return None
    return [int(p) for p in parts]


def _stage(i: int, cfg: TrainConfig, cases, t0: float) -> None:
    for state in train(cfg, cases, overwrite=True):
        if state.iteration % 250 == 0:
            print(f"stage {i} iteration {state.iteration} loss {state.loss:.3f} ({time.time() - t0:.0f} s)",
                  flush=True)


def main(argv: list[str]) -> int:
    from_starter = "--from-starter" in argv
    argv = [a for a in argv if a != "--from-starter"]
    then = None
    if "--then" in argv:
        i = argv.index("--then")
        then, argv = (_versions(argv[i + 1]) if i + 1 < len(argv) else None), argv[:i] + argv[i + 2:]
    versions = _versions(argv[0]) if argv else None
    if not versions or then == []:
        keys = ",".join(map(str, ANATOMY_VERSIONS))
        print(f"usage: starter_anatomy.py {{{keys}}}[,...] [RUNS] [--from-starter] [--then V[,...]]", file=sys.stderr)
        return 2
    runs = argv[1] if len(argv) > 1 else "runs"
    out = f"{runs}/anatomy-{'-'.join(map(str, versions))}" + ("-from-starter" if from_starter else "")
    t0 = time.time()
    cases = starter_cases(anatomy=versions)
    print(f"{len(cases)} cases in {time.time() - t0:.0f} s", flush=True)
    if from_starter:
        init = Path(out) / "init" / "starter.safetensors"
        init.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(starter_path(), init)
        stages = [(2, "starter-refine", {"init_checkpoint": str(init)})]
    else:
        stages = [(1, "starter", {}), (2, "starter-refine", {"init_checkpoint": f"{out}/s1/last.pt"})]
    for i, preset, extra in stages:
        _stage(i, TrainConfig.preset(preset, output_dir=f"{out}/s{i}", **extra), cases, t0)
    if then:
        cases = starter_cases(anatomy=then)
        cfg = TrainConfig.preset("starter-adapt", output_dir=f"{out}/s3", init_checkpoint=f"{out}/s2/last.pt")
        _stage(3, cfg, cases, t0)
    print(f"done in {time.time() - t0:.0f} s: {out}/s{3 if then else 2}/last.pt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
