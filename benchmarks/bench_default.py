"""The default ``ct.predict(vol)`` end to end, this checkout against a baseline commit, interleaved in one run.

Usage::

    python benchmarks/bench_default.py --baseline HEAD~3                     # native chest and the 800-slice stack
    python benchmarks/bench_default.py --baseline HEAD~3 --labelers none     # the network path alone
    python benchmarks/bench_default.py --baseline HEAD~3 --agree             # + Dice per organ on every shared scan
    python benchmarks/bench_default.py --scans native --stages               # where this checkout's time goes

Each run is a fresh Python process (imports not counted; read + predict counted, as a user's script does them)
whose peak resident memory is its own ``ru_maxrss`` (the interpreter and torch included). The baseline is the
``src`` folder of a commit, extracted with ``git archive`` into the cache and put first on ``sys.path``. Runs
alternate baseline / current for ``--repeat`` rounds, so a machine whose load changes treats both alike; the load
average is printed before and after each round, and the table gives the fastest run of each and the ratio.

``--agree`` predicts every scan of ``../shared/data/ct`` (and the stack) with both and prints the Dice per organ
between them; the change passes when every organ present in either map has Dice >= 0.99 (exit status 1
otherwise). The contrast abdomen (CC BY-NC-ND) is only predicted here, for the comparison: nothing is trained on it.
``--stages`` times the steps of this checkout's ``ct.predict`` (the CT check, the labellers, the network input,
the network, post-processing, the labels put back on the scan grid, the plausibility check).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
CACHE = Path(os.environ.get("CTORGANS_BENCH_CACHE", ROOT / ".runtime" / "bench_default"))
ORGANS = {1: "liver", 2: "bladder", 3: "lungs", 4: "kidneys", 5: "bone"}
#: steps of ct.predict timed by --stages: (module, function name)
STAGES = [("napari_ctorgans.ctcheck", "check_ct"), ("napari_ctorgans.infer.predict", "auto_label"),
          ("napari_ctorgans.infer.predict", "_network_input"), ("napari_ctorgans.infer.predict", "network_labels"),
          ("napari_ctorgans.infer.predict", "postprocess"), ("napari_ctorgans.infer.predict", "_to_scan"),
          ("napari_ctorgans.infer.predict", "_checked")]


def baseline_src(ref: str) -> Path:
    """The ``src`` folder of commit ``ref``, extracted once into the cache."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    out = CACHE / f"src-{sha[:12]}"
    if not (out / "src").exists():
        out.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", sha, "src"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def scans(names: list[str], slices: int) -> dict[str, Path]:
    from bench_large import DATA, make_scan

    every = {"native": DATA / "chest_native.nii.gz", "chest_3mm": DATA / "chest_3mm.nii.gz",
             "abdomen_3mm": DATA / "abdomen_3mm.nii.gz", "abdomen_dicom": DATA / "abdomen_dicom",
             "abdomen_contrast": DATA / "abdomen_contrast.nii.gz"}
    return {n: (make_scan(slices) if n == "large" else every[n]) for n in names}


# ---------------------------------------------------------------------------------------------- the child
def _stage_timers(times: dict) -> None:
    import importlib

    for mod_name, fn_name in STAGES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:  # an older commit without that step
            continue
        fn = getattr(mod, fn_name, None)
        if fn is None:
            continue

        def timed(*a, _fn=fn, _name=fn_name, **kw):
            t = time.perf_counter()
            try:
                return _fn(*a, **kw)
            finally:
                times[_name] = times.get(_name, 0.0) + time.perf_counter() - t

        setattr(mod, fn_name, timed)


def _child(src: str, scan: str, kwargs: dict, out: str | None, stages: bool) -> dict:
    sys.path.insert(0, src)
    import warnings

    import numpy as np

    import napari_ctorgans as ct
    import napari_ctorgans.infer  # noqa: F401  (torch and the network code imported before the clock)

    assert Path(ct.__file__).resolve().is_relative_to(Path(src).resolve()), ct.__file__
    times: dict[str, float] = {}
    if stages:
        _stage_timers(times)
    t0 = time.perf_counter()
    vol = ct.read_volume(scan)
    t_read = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = ct.predict(vol, **kwargs)
    total = time.perf_counter() - t0
    if out:
        np.save(out, labels)
    return {"read_s": t_read, "total_s": total, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
            "stages": times}


def run_child(src: Path, scan: Path, kwargs: dict, out: Path | None = None, stages: bool = False) -> dict:
    cmd = [sys.executable, __file__, "--child", str(src), "--scan", str(scan), "--kwargs", json.dumps(kwargs)]
    cmd += ["--out", str(out)] * bool(out) + ["--stages"] * stages
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": proc.stderr.strip()[-600:]}


# ---------------------------------------------------------------------------------------------- comparing
def dice_per_organ(a, b) -> dict[str, float]:
    import numpy as np

    out = {}
    for v, name in ORGANS.items():
        x, y = a == v, b == v
        n = int(x.sum()) + int(y.sum())
        if n:
            out[name] = 2.0 * int(np.count_nonzero(x & y)) / n
    return out


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def timing(variants: dict[str, Path], paths: dict[str, Path], kwargs: dict, repeat: int, stages: bool) -> None:
    for name, scan in paths.items():
        runs: dict[str, list[dict]] = {v: [] for v in variants}
        for r in range(repeat):
            before = _load()
            for v, src in variants.items():
                runs[v].append(run_child(src, scan, kwargs, stages=stages))
            print(f"# {name} round {r + 1}: load average {before} -> {_load()}; "
                  + "; ".join(f"{v} {runs[v][-1].get('total_s', float('nan')):.2f} s" for v in variants), flush=True)
        best = {v: min((x for x in rs if "error" not in x), key=lambda x: x["total_s"], default=rs[-1])
                for v, rs in runs.items()}
        for v, b in best.items():
            if "error" in b:
                print(f"{name:<12} {v:<9} failed: {b['error']}")
                continue
            first = next((x["total_s"] for x in best.values() if "total_s" in x), float("nan"))
            ratio = first / b["total_s"]
            st = " ".join(f"{k} {s:.2f}" for k, s in b["stages"].items())
            print(f"{name:<12} {v:<9} total {b['total_s']:6.2f} s (read {b['read_s']:.2f}) peak {b['peak_gb']:.2f} GB"
                  f"  speed-up vs the first {ratio:.2f}x  {st}", flush=True)


def agree(variants: dict[str, Path], paths: dict[str, Path], kwargs: dict) -> bool:
    import numpy as np

    ok = True
    names = list(variants)
    for name, scan in paths.items():
        maps = {}
        for v, src in variants.items():
            out = CACHE / f"labels-{v}-{name}.npy"
            res = run_child(src, scan, kwargs, out=out)
            if "error" in res:
                print(f"{name}: {v} failed: {res['error']}")
                return False
            maps[v] = np.load(out)
            out.unlink()
        d = dice_per_organ(maps[names[0]], maps[names[-1]])  # the first baseline against this checkout
        differ = int(np.count_nonzero(maps[names[0]] != maps[names[-1]]))
        low = {k: x for k, x in d.items() if x < 0.99}
        ok &= not low
        print(f"{name:<16} Dice {names[0]} vs {names[-1]}: " + ", ".join(f"{k} {x:.4f}" for k, x in d.items())
              + f"; {differ} voxels differ" + ("  BELOW 0.99" if low else "  ok"), flush=True)
    return ok


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", default=None,
                    help="git commits to compare with, comma-separated (default: this checkout only); --agree "
                         "compares the first with this checkout")
    ap.add_argument("--scans", default="native,large",
                    help="native, large, chest_3mm, abdomen_3mm, abdomen_dicom, abdomen_contrast")
    ap.add_argument("--slices", type=int, default=800)
    ap.add_argument("--labelers", default="auto", help="ct.predict's labelers ('none': the network path alone)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--stages", action="store_true", help="time the steps of ct.predict")
    ap.add_argument("--agree", action="store_true", help="Dice per organ against the baseline on every shared scan")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scan", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = _child(args.child, args.scan, json.loads(args.kwargs), args.out, args.stages)
        print("RESULT " + json.dumps(res))
        return 0
    kwargs = {} if args.labelers == "auto" else {"labelers": None if args.labelers == "none" else args.labelers}
    refs = [r.strip() for r in (args.baseline or "").split(",") if r.strip()]
    variants = {**{r: baseline_src(r) for r in refs}, "current": ROOT / "src"}
    print(f"ct.predict(vol, **{kwargs}); {os.cpu_count()} cores; load average {_load()}; "
          + ", ".join(f"{k}: {v}" for k, v in variants.items()), flush=True)
    names = [s.strip() for s in args.scans.split(",") if s.strip()]
    timing(variants, scans(names, args.slices), kwargs, args.repeat, args.stages)
    ok = True
    if args.agree and refs:
        variants = {refs[0]: variants[refs[0]], "current": variants["current"]}
        every = ["abdomen_3mm", "abdomen_dicom", "abdomen_contrast", "chest_3mm", "native", "large"]
        ok = agree(variants, scans(every, args.slices), kwargs)
    print(f"load average at the end: {_load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
