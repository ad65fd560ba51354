"""The network alone: plain ``channels_last_3d`` torch vs the fused copy (the default) vs ``torch.compile``.

    python benchmarks/bench_compile.py [CHECKPOINT]     (default: the built-in starter model)

One process, the native chest's body box (96 x 136 x 168 at 3 mm, random input: the timing does not depend on it),
2 threads; the compile time of the first call is printed, then the median of 5 alternating passes of each variant
and the voxel agreement of its argmax with the plain path. ``torch.compile`` uses inductor with weight freezing and
static shapes (``dynamic=True`` fails in inductor's convolution fusion with this layout).
"""

from __future__ import annotations

import copy
import statistics
import sys
import time

import torch


def main(argv: list[str]) -> int:
    import torch._inductor.config as inductor

    from napari_ctorgans.infer.engine import prepare_model
    from napari_ctorgans.infer.predict import Predictor

    torch.set_num_threads(2)
    model = Predictor.coerce(argv[0] if argv else None).model
    cpu = torch.device("cpu")
    x = torch.rand(1, 1, 96, 136, 168).contiguous(memory_format=torch.channels_last_3d)
    variants = {"plain channels_last_3d": prepare_model(copy.deepcopy(model), cpu, fuse=False),
                "fused copy (default)": prepare_model(copy.deepcopy(model), cpu)}
    inductor.freezing = True
    compiled = torch.compile(prepare_model(copy.deepcopy(model), cpu, fuse=False), dynamic=False)
    t0 = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    print(f"torch.compile, first call (compiling): {time.perf_counter() - t0:.1f} s")
    variants["torch.compile (inductor, freezing)"] = compiled
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        ref = variants["plain channels_last_3d"](x).argmax(1)
        agree = {k: float((m(x).argmax(1) == ref).float().mean()) for k, m in variants.items()}
        for _ in range(5):
            for k, m in variants.items():
                t0 = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t0)
    base = statistics.median(times["plain channels_last_3d"])
    for k, t in times.items():
        med = statistics.median(t)
        print(f"{k:<36} {med:6.3f} s  x{base / med:4.2f}  agreement {agree[k]:.6f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
