"""End-to-end prediction: ``ct.predict`` against MONAI at the training patch and against the previous default.

Usage::

    python benchmarks/bench_predict.py --checkpoint /path/to/cpu-quick/last.pt      # both scans, all methods
    python benchmarks/bench_predict.py --scans native --methods fast,monai           # a quicker subset
    python benchmarks/bench_predict.py --engines                                     # + ONNX Runtime / OpenVINO

End to end = read the scan, resample to the working spacing, window, network, argmax, post-process, labels on the
scan's own grid. Each method runs in a fresh process; peak memory is that process's peak resident size
(``RUSAGE_CHILDREN`` of a wrapper that runs only it). Methods, with the same checkpoint and post-processing:

- ``fast``: ``ct.predict`` with its defaults (body box, tiles chosen for inference, one pass when it fits).
- ``unfused``: the same without the fused CPU inference copy (``prepare_model(..., fuse=False)``): plain
  ``channels_last_3d`` torch modules.
- ``monai``: what a MONAI user writes: ``ct.resample`` to the working spacing, the window, MONAI's
  ``sliding_window_inference`` at the training patch with MONAI's default overlap 0.25, argmax, post-process,
  nearest-neighbour back.
- ``openvino``: ``ct.predict(..., engine="openvino")``, the same path with the network on OpenVINO.
- ``old``: this project's previous default: the training crop as tile, overlap 0.5, Gaussian blending, whole scan.

The network's achieved GFLOP/s (multiply-adds x 2 counted by ``torch.utils.flop_counter`` per voxel, times the
voxels computed) is printed twice: ``GFLOP/s`` counts the model's own arithmetic (the same work for every method),
``exec`` what the fused copy really executes (its decoders need 28 % fewer multiply-adds for the cpu-small U-Net,
:func:`executed_flops_per_voxel`); ``% mm`` is ``exec`` next to a 4096 x 4096 ``torch.mm`` on the same cores in the
same run. Without ``--checkpoint`` a short ``cpu-quick`` run on phantoms is trained once into the cache (its
weights do not change the timing). Record ``uptime`` with the numbers: on a shared machine re-run when it is
quiet, or pass ``--repeat 3`` (the fastest of three fresh runs per method; ``torch.mm`` is measured again at the end).
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
CACHE = Path(os.environ.get("CTORGANS_BENCH_CACHE", ROOT / ".runtime" / "bench_predict"))


def make_checkpoint() -> Path:
    out = CACHE / "cpu-quick-short" / "last.pt"
    if out.exists():
        return out
    import napari_ctorgans as ct

    cfg = ct.TrainConfig.preset("cpu-quick", iterations=100, output_dir=str(out.parent))
    for _ in ct.train(cfg, [ct.make_phantom(seed=s) for s in range(4)], overwrite=True):
        pass
    return out


def matmul_gflops(threads: int, n: int = 4096) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.rand(n, n), torch.rand(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(3))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_voxel(model) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 1, 64, 64, 64)
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops() / 64**3


def executed_flops_per_voxel(model) -> float:
    """Multiply-adds x 2 per voxel that the fused inference copy of ``model`` really executes (its decoders run the
    upsampling and the first convolution as one composed kernel, fewer than the model's own count)."""
    import torch

    from napari_ctorgans.infer.engine import prepare_model
    from napari_ctorgans.infer.fuse import _FusedConvReLU, _FusedUp

    fused = prepare_model(model, torch.device("cpu"))
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, _FusedUp):
            macs.append(mod.wc.numel() * inp[0][0, 0].numel() + mod.wb.numel() * inp[1][0, 0].numel())
        elif isinstance(mod, _FusedConvReLU):
            macs.append(mod.w.numel() * out[0, 0].numel())
        elif isinstance(mod, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            macs.append(mod.weight.numel() * (out if isinstance(mod, torch.nn.Conv3d) else inp[0])[0, 0].numel())

    kinds = (_FusedUp, _FusedConvReLU, torch.nn.Conv3d, torch.nn.ConvTranspose3d)
    # only modules that run fire: the fused blocks' own convolutions are weights, not called
    handles = [m.register_forward_hook(hook) for m in fused.modules() if isinstance(m, kinds)]
    with torch.inference_mode():
        fused(torch.zeros(1, 1, 64, 64, 64).contiguous(memory_format=torch.channels_last_3d))
    for h in handles:
        h.remove()
    return 2 * sum(macs) / 64**3


# ---------------------------------------------------------------------------------------------- the child
def _child(method: str, scan: Path, checkpoint: Path, threads: int) -> dict:
    import numpy as np
    import torch

    import napari_ctorgans as ct
    import napari_ctorgans.infer  # noqa: F401

    P = sys.modules["napari_ctorgans.infer.predict"]  # the module (the package binds the function's name)

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    vol = ct.read_volume(scan)
    t_read = time.perf_counter() - t0
    pred = P.Predictor.from_checkpoint(checkpoint)
    fpv = flops_per_voxel(pred.model)
    net = {"seconds": 0.0, "voxels": 0}
    if method == "unfused":
        plain = P.prepare_model
        P.prepare_model = lambda model, device, **_: plain(model, device, fuse=False)
    if method in ("fast", "unfused", "openvino", "old"):
        inner = P.network_labels

        def timed(model, x, plan, **kw):  # the network step of ct.predict, timed
            t = time.perf_counter()
            out = inner(model, x, plan, **kw)
            net["seconds"] += time.perf_counter() - t
            passes = plan.passes * (1 if plan.whole else int(np.prod(plan.roi)))
            net["voxels"] += int(np.prod(x.shape)) if plan.whole else passes
            return out

        P.network_labels = timed
        t1 = time.perf_counter()
        if method in ("fast", "unfused", "openvino"):
            labels = ct.predict(vol, pred, threads=threads, engine="openvino" if method == "openvino" else "torch",
                                labelers=None)
        else:
            labels = ct.predict(vol, pred, roi_size=pred.roi_size, overlap=0.5, mode="gaussian", crop_to_body=False,
                                threads=threads, labelers=None)
    else:
        from monai.inferers import sliding_window_inference

        t1 = time.perf_counter()
        work = ct.resample(vol, pred.spacing, kind="image")
        x = torch.from_numpy(pred.contract.window_array(work.array))[None, None]
        model = pred.model.eval()
        t = time.perf_counter()
        with torch.inference_mode():
            probs = sliding_window_inference(x, pred.roi_size, 1, model, overlap=0.25)
        net["seconds"] = time.perf_counter() - t
        from monai.data.utils import dense_patch_slices

        n_tiles = len(dense_patch_slices(x.shape[2:], pred.roi_size, [max(int(r * 0.75), 1) for r in pred.roi_size]))
        net["voxels"] = n_tiles * int(np.prod(pred.roi_size))
        lab = P.postprocess(probs[0].argmax(0).to(torch.uint8).numpy())
        labels = np.asarray(ct.resample(work.with_array(lab), kind="labels", like=vol).array)
    t_pred = time.perf_counter() - t1
    fused = method in ("fast", "old")
    efpv = executed_flops_per_voxel(pred.model) if fused else fpv
    return {"read_s": t_read, "predict_s": t_pred, "total_s": t_read + t_pred, "network_s": net["seconds"],
            "executed_gflop": net["voxels"] * efpv / 1e9, "network_gflop": net["voxels"] * fpv / 1e9,
            "labels": {int(v): int((labels == v).sum()) for v in np.unique(labels) if v}}


def _wrapper(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    result = {"returncode": proc.returncode,
              "peak_gb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[7:]))
    if proc.returncode:
        result["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    print("MEASURE " + json.dumps(result), flush=True)


def measure(method: str, scan: Path, checkpoint: Path, threads: int) -> dict:
    child = [sys.executable, __file__, "--child", method, "--scan", str(scan), "--checkpoint", str(checkpoint),
             "--threads", str(threads)]
    proc = subprocess.run([sys.executable, __file__, "--wrap", json.dumps(child)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("MEASURE "):
            return json.loads(line[8:])
    return {"error": proc.stderr.strip()[-300:]}


def engines(checkpoint: Path, scan: Path, threads: int) -> None:
    """The network alone on the scan's body box: tuned torch vs ONNX Runtime vs OpenVINO (same weights)."""
    import numpy as np
    import torch

    import napari_ctorgans as ct
    from napari_ctorgans.infer.engine import prepare_model
    from napari_ctorgans.infer.plan import body_box
    from napari_ctorgans.resampling import Grid, resample_streamed

    torch.set_num_threads(threads)
    pred = ct.Predictor.from_checkpoint(checkpoint)
    vol = ct.read_volume(scan)
    src, work = Grid.of(vol), Grid.working(vol, pred.spacing)
    lo, hi = body_box(vol.array, src, work)
    x = pred.contract.window_array(resample_streamed(vol.array, src, work.crop(lo, hi)))
    pad = [(0, (-s) % 8) for s in x.shape]
    x = np.pad(x, pad)[None, None]
    xt = torch.from_numpy(x)
    plain = pred.model.eval()
    with torch.inference_mode():
        ref = plain(xt).argmax(1)
    rows = {}
    with torch.inference_mode():
        rows["torch"] = min(_timed(lambda: plain(xt)) for _ in range(2))
    xc = xt.contiguous(memory_format=torch.channels_last_3d)
    agree = {}
    for name, fuse in (("torch channels_last_3d", False), ("torch fused (default)", True)):
        tuned = prepare_model(ct.Predictor.from_checkpoint(checkpoint).model, torch.device("cpu"), fuse=fuse)
        with torch.inference_mode():
            tuned(xc)
            rows[name] = min(_timed(lambda: tuned(xc)) for _ in range(2))
            agree[name] = float((tuned(xc).argmax(1) == ref).float().mean())
    CACHE.mkdir(parents=True, exist_ok=True)
    onnx = CACHE / "model.onnx"
    torch.onnx.export(plain, (xt,), str(onnx), input_names=["x"], output_names=["y"], dynamo=False,
                      dynamic_axes={"x": {2: "d", 3: "h", 4: "w"}, "y": {2: "d", 3: "h", 4: "w"}})
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
        sess.run(None, {"x": x})
        rows["onnxruntime"] = min(_timed(lambda: sess.run(None, {"x": x})) for _ in range(2))
        agree["onnxruntime"] = float((np.argmax(sess.run(None, {"x": x})[0], 1) == ref.numpy()).mean())
    except ImportError:
        rows["onnxruntime"] = float("nan")
    try:
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(onnx)), "CPU", {"INFERENCE_NUM_THREADS": threads})
        compiled(x)
        rows["openvino"] = min(_timed(lambda: compiled(x)) for _ in range(2))
        agree["openvino"] = float((np.argmax(compiled(x)[0], 1) == ref.numpy()).mean())
    except ImportError:
        rows["openvino"] = float("nan")
    print(f"\nnetwork alone on the body box {tuple(x.shape[2:])}, {threads} threads:")
    for name, sec in rows.items():
        print(f"  {name:<24} {sec:7.2f} s  x{rows['torch'] / sec:4.2f} vs plain torch   "
              f"voxel agreement {agree.get(name, 1.0):.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None, help="a cpu-quick checkpoint (default: train a short one)")
    ap.add_argument("--scans", default="native,large", help="native (512x512x141) and/or large (512x512x800)")
    ap.add_argument("--methods", default="fast,monai,old")
    ap.add_argument("--slices", type=int, default=800)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=1, help="runs per method (fresh processes); the fastest is kept")
    ap.add_argument("--engines", action="store_true", help="also time the network under ONNX Runtime/OpenVINO")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--wrap", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--scan", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.wrap:
        _wrapper(json.loads(args.wrap))
        return 0
    if args.child:
        print("RESULT " + json.dumps(_child(args.child, Path(args.scan), Path(args.checkpoint), args.threads)))
        return 0
    from bench_large import DATA, make_scan

    ckpt = Path(args.checkpoint) if args.checkpoint else make_checkpoint()
    scans = {"native": DATA / "chest_native.nii.gz", "large": None}
    load = os.getloadavg()
    mm = matmul_gflops(args.threads)
    print(f"checkpoint {ckpt}; {args.threads} threads; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"torch.mm 4096^2: {mm:.0f} GFLOP/s")
    print(f"{'scan':<8} {'method':<8} {'total s':>8} {'network s':>9} {'GFLOP/s':>8} {'exec':>8} {'% mm':>5} "
          f"{'peak GB':>8} {'vs fast':>8}  organs (voxels)")
    for name in [s.strip() for s in args.scans.split(",") if s.strip()]:
        scan = scans[name] if name == "native" else make_scan(args.slices)
        fast_total = None
        for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
            runs = [measure(method, scan, ckpt, args.threads) for _ in range(max(1, args.repeat))]
            r = min(runs, key=lambda m: m.get("total_s", float("inf")))
            if "error" in r:
                print(f"{name:<8} {method:<8} failed: {r['error']}")
                continue
            gf = r["network_gflop"] / max(r["network_s"], 1e-9)
            ex = r["executed_gflop"] / max(r["network_s"], 1e-9)
            fast_total = r["total_s"] if method == "fast" else fast_total
            ratio = f"{r['total_s'] / fast_total:7.1f}x" if fast_total else "       -"
            print(f"{name:<8} {method:<8} {r['total_s']:8.1f} {r['network_s']:9.1f} {gf:8.1f} {ex:8.1f} "
                  f"{100 * ex / mm:5.0f} {r['peak_gb']:8.2f} {ratio}  {r['labels']}", flush=True)
    if args.engines:
        engines(ckpt, scans["native"], args.threads)
    print(f"load average at the end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}; "
          f"torch.mm 4096^2 at the end: {matmul_gflops(args.threads):.0f} GFLOP/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
