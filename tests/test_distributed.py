"""Data-parallel training on two CPU processes (Gloo, launched by torchrun).

The worker script below uses the helpers of ``napari_ctorgans.distributed`` exactly as the training loop does
(setup, wrap with SyncBatchNorm, global-batch sampling of cases and crop seeds, loss averaging, rank-0
checkpoints, teardown) on crops of real phantoms, with a small 3D network that has batch norm.
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

WORKER = textwrap.dedent(
    r'''
    import json, os, signal, sys
    import numpy as np
    import torch
    import napari_ctorgans as ct
    from napari_ctorgans import distributed as D

    out, steps, batch, die_at, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(1)
    ctx = D.setup(device="cpu")
    cases = []
    for seed in range(3):
        vol, lab = ct.make_phantom(seed=seed, spacing=12.0)
        img = np.clip((vol.array.astype(np.float32) + 1000.0) / 1000.0, 0, 2)
        cases.append((img, np.minimum(lab, 3).astype(np.int64)))
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv3d(1, 6, 3, padding=1), torch.nn.BatchNorm3d(6), torch.nn.ReLU(),
        torch.nn.Conv3d(6, 4, 1),
    )
    model = ctx.wrap(net, sync_batchnorm=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(123)
    losses, start = [], 0
    ckpt = os.path.join(out, "last.pt")
    if resume == "resume":
        state = torch.load(ckpt, weights_only=False)
        ctx.unwrap(model).load_state_dict(state["weights"])
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        losses, start = state["losses"], state["iteration"]
    crop = 8
    for it in range(start + 1, steps + 1):
        xs, ys = [], []
        for case_index, seed in ctx.batch_items(rng, len(cases), batch):
            img, lab = cases[case_index]
            r = np.random.default_rng(seed)
            z, y, x = (int(r.integers(0, s - crop + 1)) for s in img.shape)
            xs.append(img[z:z + crop, y:y + crop, x:x + crop])
            ys.append(lab[z:z + crop, y:y + crop, x:x + crop])
        x_t = torch.from_numpy(np.stack(xs))[:, None].to(ctx.device)
        y_t = torch.from_numpy(np.stack(ys)).to(ctx.device)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x_t), y_t)
        loss.backward()
        opt.step()
        losses.append(ctx.mean(float(loss.detach())))
        if ctx.is_main and it % 2 == 0:
            tmp = ckpt + ".tmp"
            torch.save({"weights": ctx.unwrap(model).state_dict(), "optimizer": opt.state_dict(),
                        "rng": rng.bit_generator.state, "losses": losses, "iteration": it}, tmp)
            os.replace(tmp, ckpt)
        ctx.barrier()
        if it == die_at and ctx.rank == ctx.world_size - 1:
            os.kill(os.getpid(), signal.SIGKILL)  # a crash in the middle of the run
    rank_mean = ctx.mean(float(ctx.rank))  # a collective: every rank calls it
    if ctx.is_main:
        with open(os.path.join(out, "losses.json"), "w") as fh:
            json.dump({"losses": losses, "world_size": ctx.world_size, "rank_checks": rank_mean}, fh)
    ctx.teardown()
    '''
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(tmp: Path, *, nproc: int, steps: int, batch: int, die_at: int = -1, resume: bool = False):
    script = tmp / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(script), str(tmp), str(steps),
           str(batch), str(die_at), "resume" if resume else "fresh"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)


def _losses(tmp: Path) -> list[float]:
    return json.loads((tmp / "losses.json").read_text())["losses"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """One process, global batch of 4, 8 steps: the curve the other runs must reproduce."""
    one = tmp_path_factory.mktemp("one_process")
    r1 = _run(one, nproc=1, steps=8, batch=4)
    assert r1.returncode == 0, r1.stderr[-3000:]
    return one


@pytest.mark.slow
def test_two_processes_match_one_process_with_doubled_batch(tmp_path, reference_run):
    one, two = reference_run, tmp_path / "two"
    two.mkdir()
    r2 = _run(two, nproc=2, steps=8, batch=2)
    assert r2.returncode == 0, r2.stderr[-3000:]
    info = json.loads((two / "losses.json").read_text())
    assert info["world_size"] == 2 and info["rank_checks"] == pytest.approx(0.5)  # all_reduce mean of 0 and 1
    a, b = _losses(one), _losses(two)
    assert len(a) == len(b) == 8
    assert a[-1] < a[0]  # it learns
    np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-5)


@pytest.mark.slow
def test_killed_run_resumes_from_checkpoint_on_another_process_count(tmp_path, reference_run):
    ref, run = reference_run, tmp_path / "run"
    run.mkdir()
    killed = _run(run, nproc=2, steps=8, batch=2, die_at=5)
    assert killed.returncode != 0 and not (run / "losses.json").exists()
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["iteration"] == 4  # the last checkpoint before the crash
    # resume the two-process run as a single process with the same global batch
    resumed = _run(run, nproc=1, steps=8, batch=4, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    np.testing.assert_allclose(_losses(run), _losses(ref), rtol=2e-4, atol=1e-5)


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
