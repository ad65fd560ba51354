"""Data-parallel training on two CPU processes (Gloo, launched by torchrun).

``ct.train`` runs under ``torchrun`` on phantoms with a small U-Net that has batch norm (synchronised across
processes): two processes with a batch of 2 follow the loss curve of one process with a batch of 4, and a
two-process run killed mid-way resumes from its checkpoint (on one process) and reproduces the uninterrupted curve.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ctorgans import distributed as D

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_global_batch_items_split_the_single_process_batch():
    whole = D.global_batch_items(np.random.default_rng(7), 5, 6, rank_=0, world_size_=1)
    parts = [D.global_batch_items(np.random.default_rng(7), 5, 3, rank_=r, world_size_=2) for r in range(2)]
    assert parts[0] + parts[1] == whole
    assert parts[0] != parts[1]
    # the random stream advances by the same amount on every rank
    rngs = [np.random.default_rng(7) for _ in range(2)]
    for r in range(2):
        D.global_batch_items(rngs[r], 5, 3, rank_=r, world_size_=2)
    assert rngs[0].integers(1 << 30) == rngs[1].integers(1 << 30)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        D.global_batch_items(np.random.default_rng(0), 5, 0)
    with pytest.raises(ValueError, match="n_cases must be >= 1"):
        D.global_batch_items(np.random.default_rng(0), 0, 2)


def test_single_process_context_is_a_no_op(monkeypatch):
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    ctx = D.setup(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    model = torch.nn.Conv3d(1, 2, 1)
    assert ctx.wrap(model) is model and ctx.unwrap(model) is model
    assert ctx.mean(2.5) == 2.5 and ctx.mean_dict({"a": 1.0}) == {"a": 1.0}
    assert D.all_reduce_mean({"b": 2.0, "a": 1.0}) == {"a": 1.0, "b": 2.0}
    ctx.barrier()
    ctx.teardown()
    plain = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.BatchNorm3d(3))
    x = torch.randn(2, 1, 4, 5, 6)
    expected = plain(x)
    synced = D.convert_sync_batchnorm(plain)
    assert isinstance(synced[1], D.CPUSyncBatchNorm) and synced[1].weight is plain[1].weight
    torch.testing.assert_close(synced(x), expected)  # a single process: plain batch norm
    assert isinstance(D.convert_sync_batchnorm(plain, cpu=False)[1], torch.nn.SyncBatchNorm)


def test_setup_names_missing_torchrun_variables(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match="RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT are not set; launch with torchrun"):
        D.setup(device="cpu")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        D.setup(device="cpu")

TRAIN_WORKER = textwrap.dedent(
    r'''
    import json, os, signal, sys
    import torch
    import napari_ctorgans as ct

    out, iters, batch, die_at, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(1)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    cfg = ct.TrainConfig(
        model={"arch": "unet3d", "base_width": 4, "levels": 2, "norm": "batch", "num_classes": 6},
        iterations=iters, batch_size=batch, crop_size=(16, 16, 16), spacing=8.0, learning_rate=3e-3,
        lr_schedule="cosine", warmup=0, loss="cross_entropy", class_weighting="simple", augment_at=-1,
        checkpoint_every=2, validate_every=1000, foreground_prob=0.7, amp=False, device="cpu", seed=3,
        output_dir=os.path.join(out, "run"),
    )
    cases = [ct.make_phantom(seed=s, spacing=8.0) for s in range(3)]
    seen = []
    for status in ct.train(cfg, cases, resume=mode == "resume", overwrite=mode == "fresh"):
        seen.append([status.iteration, status.loss])
        if status.iteration == die_at and rank == world - 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of the run
    if rank == 0:
        with open(os.path.join(out, f"curve_{mode}.json"), "w") as fh:
            json.dump({"curve": seen, "world_size": world}, fh)
    '''
)


def _train(tmp: Path, *, nproc: int, iters: int, batch: int, die_at: int = -1, mode: str = "fresh"):
    script = tmp / "train_worker.py"
    script.write_text(TRAIN_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(script), str(tmp), str(iters),
           str(batch), str(die_at), mode]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CTORGANS_SYNC_BATCHNORM": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)


def _curve(tmp: Path, mode: str = "fresh") -> dict[int, float]:
    return {int(i): float(v) for i, v in json.loads((tmp / f"curve_{mode}.json").read_text())["curve"]}


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory) -> Path:
    """ct.train on one process with a batch of 4 for 6 iterations."""
    one = tmp_path_factory.mktemp("train_one")
    r = _train(one, nproc=1, iters=6, batch=4)
    assert r.returncode == 0, r.stderr[-3000:]
    return one


@pytest.mark.slow
def test_train_on_two_processes_matches_doubled_batch(tmp_path, train_reference):
    r = _train(tmp_path, nproc=2, iters=6, batch=2)
    assert r.returncode == 0, r.stderr[-3000:]
    ref, two = _curve(train_reference), _curve(tmp_path)
    assert sorted(two) == list(range(1, 7))
    np.testing.assert_allclose([two[i] for i in range(1, 7)], [ref[i] for i in range(1, 7)], rtol=1e-4, atol=1e-6)
    # only rank 0 wrote: one checkpoint, one config.json
    assert (tmp_path / "run" / "last.pt").exists() and (tmp_path / "run" / "config.json").exists()
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ck["iteration"] == 6 and not any(k.startswith("module.") for k in ck["weights"])


@pytest.mark.slow
def test_train_killed_mid_way_resumes_on_one_process(tmp_path, train_reference):
    killed = _train(tmp_path, nproc=2, iters=6, batch=2, die_at=3)
    assert killed.returncode != 0
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    # the last periodic checkpoint (2), or the one rank 0 writes when its peer's death stops the loop (3)
    assert ck["iteration"] in (2, 3)
    resumed = _train(tmp_path, nproc=1, iters=6, batch=4, mode="resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref, after = _curve(train_reference), _curve(tmp_path, "resume")
    assert sorted(after) == list(range(ck["iteration"] + 1, 7))
    np.testing.assert_allclose([after[i] for i in after], [ref[i] for i in after], rtol=1e-4, atol=1e-6)
