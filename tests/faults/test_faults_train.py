"""Faults in training runs and checkpoints, on a tiny real run trained on the real abdomen CT: hostile and damaged
checkpoints, runs that mix (overwrite, resume with other settings, two processes), kills and a full disk while a
checkpoint is written, a training step too large for memory, and the messages of wrong configurations."""

from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from conftest import ROOT, data_file
from napari_ctorgans.train import (
    Case, CheckpointError, RunConfigMismatch, TrainConfig, load_case, load_checkpoint, read_checkpoint,
    save_checkpoint, train,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACING = 6.0
RUN_FILES = ("last.pt", "best.pt", "config.json")


def tiny_config(output_dir, **changes) -> TrainConfig:
    base = dict(model="cpu-small", iterations=2, batch_size=1, crop_size=(16, 16, 16), spacing=SPACING,
                validate_every=2, checkpoint_every=1000, augment_at=-1, seed=3, bn_recalibration=0,
                output_dir=str(output_dir))
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def cases():
    """The real abdomen CT with its reference labels at 6 mm, and a 16^3 validation crop of it (four organs)."""
    case = load_case((data_file("abdomen_3mm.nii.gz"), data_file("abdomen_3mm_ctorg.nii.gz")), spacing=SPACING,
                     cache_dir=False)
    window = (slice(36, 52), slice(20, 36), slice(12, 28))
    val = Case(case.image[window].copy(), case.labels[window].copy(), case.spacing, "val")
    return case, val


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, cases):
    """A finished tiny run with validation: last.pt, best.pt, config.json (never modified by the tests)."""
    folder = tmp_path_factory.mktemp("runs") / "a"
    statuses = list(train(tiny_config(folder), [cases[0]], [cases[1]]))
    assert statuses[-1].done and all((folder / n).is_file() for n in RUN_FILES)
    return folder


def copy_run(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in RUN_FILES:
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != ".train.lock"}


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------- hostile checkpoints
def test_config_describing_a_huge_model_is_refused_before_anything_is_allocated(tmp_path, run_a):
    raw = torch.load(run_a / "last.pt", weights_only=True)
    raw["model_config"].update(base_width=3000, levels=7)  # 3.7e12 parameters described, 0.4M stored
    hostile = tmp_path / "hostile.pt"
    torch.save(raw, hostile)
    before, t0 = maxrss_mb(), time.perf_counter()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(hostile)
    elapsed, grown = time.perf_counter() - t0, maxrss_mb() - before
    assert str(hostile) in str(err.value)
    assert "describes 3,710,319,177,032 parameters but the file holds 409,772 weights" in str(err.value)
    assert "use last.pt/best.pt from a training run, or train again" in str(err.value)
    assert grown < 200 and elapsed < 5, (grown, elapsed)  # the loader used to reach 6.9 GB here
    with pytest.raises(CheckpointError, match="describes 3,710,319,177,032 parameters"):
        ct.predict(ct.Volume(np.zeros((8, 8, 8), np.float32), spacing=(6.0,) * 3), str(hostile))


def test_nan_and_infinite_weights_are_refused(tmp_path, run_a):
    for bad in (float("nan"), float("inf")):
        raw = torch.load(run_a / "best.pt", weights_only=True)
        raw["weights"]["up.1.conv2.0.weight"].view(-1)[:3] = bad
        path = tmp_path / f"diverged-{bad}.pt"
        torch.save(raw, path)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        assert str(path) in str(err.value)
        assert "NaN or infinite values in 1 tensors ('up.1.conv2.0.weight' (3 values))" in str(err.value)
        assert "use best.pt or an earlier checkpoint, or train again with a lower learning_rate" in str(err.value)


def test_flipped_bytes_inside_the_zip_are_refused_by_their_crc(tmp_path, run_a):
    data = bytearray((run_a / "last.pt").read_bytes())
    with zipfile.ZipFile(run_a / "last.pt") as zf:  # the largest tensor's bytes
        member = max((m for m in zf.infolist() if "/data/" in m.filename), key=lambda m: m.file_size)
    name_len, extra_len = struct.unpack_from("<HH", data, member.header_offset + 26)  # the local header's own
    start = member.header_offset + 30 + name_len + extra_len
    for k in range(5):
        data[start + 40 + 997 * k] ^= 0x04
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(bytes(data))
    changed = tensors(torch.load(flipped, weights_only=True))  # torch alone reads it without a word
    original = tensors(torch.load(run_a / "last.pt", weights_only=True))
    assert sum(int((a.reshape(-1).view(torch.uint8) != b.reshape(-1).view(torch.uint8)).sum())
               for a, b in zip(changed, original)) == 5  # five bytes of values silently changed
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(flipped)
    assert f"checkpoint {flipped} is corrupted: the CRC of its member {member.filename!r}" in str(err.value)
    assert "train again" in str(err.value)


def tensors(obj) -> list[torch.Tensor]:
    """Every tensor in a loaded checkpoint (weights and optimiser state), in a fixed order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors(v)]
    return []


class _Opens:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):  # would create the file if the loader unpickled objects
        return (open, (self.path, "w"))


def test_pickle_payload_is_still_refused_and_never_runs(tmp_path, run_a):
    marker = tmp_path / "pwned"
    raw = torch.load(run_a / "last.pt", weights_only=True)
    raw["model_config"]["note"] = _Opens(marker)
    evil = tmp_path / "evil.pt"
    torch.save(raw, evil)
    with pytest.raises(CheckpointError, match=f"refusing to load {evil}: it holds objects other than tensors"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_safetensors_round_trip_gives_identical_weights_and_refuses_damage(tmp_path, run_a):
    model_pt, info_pt = load_checkpoint(run_a / "best.pt")
    path = save_checkpoint(tmp_path / "model.safetensors", read_checkpoint(run_a / "best.pt"))
    assert not zipfile.is_zipfile(path) and b"pickle" not in path.read_bytes()[:8]
    header = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
    assert {"model_config", "train_config", "weights_sha256"} <= set(header["__metadata__"])
    model_st, info_st = load_checkpoint(path)
    a, b = model_pt.state_dict(), model_st.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)
    assert info_pt.keys() - {"state"} == info_st.keys()  # the resuming state stays in .pt files
    for key in info_pt.keys() - {"state", "path"}:  # the configurations, organ table, scores: identical
        assert info_st[key] == info_pt[key], key
    assert "optimizer" not in read_checkpoint(path)  # weights only: resuming needs last.pt
    damaged = bytearray(path.read_bytes())
    damaged[-100] ^= 0x01
    bad = tmp_path / "damaged.safetensors"
    bad.write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match=f"checkpoint {bad} is corrupted: its weights do not match the SHA-256"):
        load_checkpoint(bad)


# ------------------------------------------------------------------------------------------------ runs that mix
def test_overwrite_replaces_the_whole_run(tmp_path, run_a, cases):
    folder = copy_run(run_a, tmp_path / "run")
    old = snapshot(folder)
    gen = train(tiny_config(folder, iterations=1, seed=5), [cases[0]], overwrite=True)
    assert snapshot(folder) == old  # nothing removed before the new run starts
    statuses = list(gen)
    assert statuses[-1].done
    assert sorted(p.name for p in folder.iterdir()) == [".train.lock", "config.json", "last.pt"]  # no stale best.pt
    new = read_checkpoint(folder / "last.pt")
    assert new["run_id"] != read_checkpoint(run_a / "last.pt")["run_id"] and new["iteration"] == 1
    assert json.loads((folder / "config.json").read_text())["seed"] == 5


def test_resume_refuses_changed_settings_naming_each_field(tmp_path, run_a, cases):
    folder = copy_run(run_a, tmp_path / "run")
    old = snapshot(folder)
    base = tiny_config(folder)
    changed = base.replace(learning_rate=0.01, loss="dice", crop_size=(24, 24, 24), seed=4, spacing=5.0)
    with pytest.raises(RunConfigMismatch) as err:
        train(changed, [cases[0]], resume=True)
    assert isinstance(err.value, ValueError)
    assert err.value.fields == ("crop_size", "spacing", "learning_rate", "loss", "seed")
    assert ("learning_rate 0.001 -> 0.01, loss 'iou' -> 'dice'" in str(err.value)
            and "crop_size [16, 16, 16] -> [24, 24, 24], spacing 6.0 -> 5.0" in str(err.value))
    assert f"ctorgans train --config {folder / 'config.json'} --resume" in str(err.value)
    for field, value in [("learning_rate", 0.01), ("loss", "dice"), ("crop_size", (24, 24, 24)), ("seed", 4),
                         ("spacing", 5.0), ("iterations", 1)]:
        with pytest.raises(RunConfigMismatch) as err:
            train(base.replace(**{field: value}), [cases[0]], resume=True)
        assert err.value.fields == (field,)
    assert "(iterations may only grow)" in str(err.value)
    assert snapshot(folder) == old  # nothing rewritten, config.json included
    # iterations may grow (and where checkpoints go and how often may change)
    gen = train(base.replace(iterations=3, checkpoint_every=7), [cases[0]], resume=True)
    with pytest.raises(FileExistsError, match=f"output_dir {folder} is in use by another training run .process "
                                              f"{os.getpid()}"):
        train(base.replace(iterations=3), [cases[0]], resume=True)  # one run per folder at a time
    assert [s.iteration for s in gen] == [3]
    assert read_checkpoint(folder / "last.pt")["iteration"] == 3


def test_resume_keeps_the_global_batch_across_process_counts():
    """batch_size is per process under torchrun: 2 processes x 2 crops resume as 1 x 4, not as 1 x 2."""
    from napari_ctorgans.train.rundir import config_changes

    stored = tiny_config("run", batch_size=2).to_dict()
    assert config_changes(stored, tiny_config("run", batch_size=4), stored_world_size=2, world_size=1) == {}
    assert config_changes(stored, tiny_config("run", batch_size=2), stored_world_size=2, world_size=1) == {
        "batch_size": ("2 x 2 processes", 2)}
    assert config_changes(stored, tiny_config("moved", batch_size=2, device="cpu", checkpoint_every=5)) == {}


_CHILD = r"""
import os, resource, signal, sys
from pathlib import Path
import torch
import napari_ctorgans as ct
from napari_ctorgans.train import TrainConfig, load_case, save_checkpoint, train

folder = Path(sys.argv[1])
weights = {"w": torch.randn(300_000)}  # 1.2 MB
# a full disk: writes past the file-size limit fail (EFBIG) instead of killing the process
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))
try:
    save_checkpoint(folder / "last.pt", {"weights": weights, "model_config": {}})
    print("saved")
except OSError as exc:
    print("refused", exc.errno, "any previous last.pt is intact" in str(exc))
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
print(sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")))
sys.stdout.flush()

# a new run replacing this one (overwrite=True) is killed while it writes its first checkpoint
class Kill:
    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)

case = load_case((sys.argv[2], sys.argv[3]), spacing=6.0, cache_dir=False)
config = TrainConfig(model="cpu-small", iterations=5, batch_size=1, crop_size=16, spacing=6.0, augment_at=-1,
                     checkpoint_every=1000, validate_every=1000, bn_recalibration=0, output_dir=str(folder))
gen = train(config, [case], overwrite=True)
next(gen)
save_checkpoint(folder / "last.pt", {"weights": weights, "model_config": {}, "kill": Kill()})
"""


def test_kill_and_full_disk_while_a_checkpoint_is_written_lose_nothing(tmp_path, run_a, cases):
    folder = copy_run(run_a, tmp_path / "run")
    old = snapshot(folder)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(folder), str(data_file("abdomen_3mm.nii.gz")),
                            str(data_file("abdomen_3mm_ctorg.nii.gz"))], capture_output=True, text=True,
                           timeout=300, env=env)
    assert child.returncode == -9, child.stderr  # killed
    assert child.stdout.splitlines()[:2] == ["refused 27 True", "[]"]  # EFBIG, and no temporary file left behind
    left = sorted(p.name for p in folder.iterdir())
    assert ".replaced-run" in left and [n for n in left if n.startswith(".last.pt.") and n.endswith(".tmp")]
    # the next start in the folder puts the old run back and removes the dead write's temporary file
    with pytest.raises(FileExistsError, match="already holds checkpoints of another run .last.pt, best.pt"):
        train(tiny_config(folder), [cases[0]])
    assert sorted(p.name for p in folder.iterdir()) == sorted([".train.lock", *RUN_FILES])
    assert snapshot(folder) == old


# ------------------------------------------------------------------------------------------------ runaway work
def test_a_training_step_too_large_for_memory_is_refused_with_the_numbers(tmp_path, cases, capsys):
    from napari_ctorgans.cli import main
    from napari_ctorgans.train.budget import available_memory, check_step_memory

    config = tiny_config(tmp_path / "run", crop_size=4096, batch_size=4)
    before, t0 = maxrss_mb(), time.perf_counter()
    with pytest.raises(MemoryError) as err:
        train(config, [cases[0]])
    assert isinstance(err.value, ValueError)  # caught where settings are refused (the Train widget's status line)
    assert maxrss_mb() - before < 200 and time.perf_counter() - t0 < 10
    message = str(err.value)
    free_gib = available_memory(config) / 2**30
    assert message.startswith("crop_size=(4096, 4096, 4096) with batch_size=4 needs about ")
    needed = float(message.split("needs about ")[1].split(" GiB")[0])
    assert needed > 10_000  # tens of TiB of activations for 4 crops of 4096^3
    assert f"GiB of memory is available" in message and abs(
        float(message.split("but ")[1].split(" GiB")[0]) - free_gib) < max(1.0, 0.2 * free_gib)
    side = int(message.split("lower crop_size to about (")[1].split(",")[0])
    assert side % 8 == 0 and 16 <= side < 4096
    check_step_memory(config.replace(crop_size=side))  # the suggested crop fits
    assert not (tmp_path / "run").exists()  # refused before the folder was touched
    args = ["train", "--case", str(data_file("abdomen_3mm.nii.gz")), str(data_file("abdomen_3mm_ctorg.nii.gz")),
            "--output-dir", str(tmp_path / "cli"), "--crop-size", "4096"]
    assert main(args) == 1
    assert "ctorgans train: error: crop_size=(4096, 4096, 4096) with batch_size=4 needs about" in \
        capsys.readouterr().err


# ------------------------------------------------------------------------------------------- config messages
@pytest.mark.parametrize("changes, exc, message", [
    (dict(learning_rate="1e-3"), TypeError, "TrainConfig field 'learning_rate' must be a number, got '1e-3' (str) "
                                            "(a JSON string: write the number without quotes)"),
    (dict(iterations="100"), TypeError, "TrainConfig field 'iterations' must be an integer, got '100' (str)"),
    (dict(batch_size=2.5), TypeError, "TrainConfig field 'batch_size' must be an integer, got 2.5 (float)"),
    (dict(amp="yes"), TypeError, "TrainConfig field 'amp' must be true or false, got 'yes' (str)"),
    (dict(early_stopping="3"), TypeError, "TrainConfig field 'early_stopping' must be an integer or null"),
    (dict(crop_size="64"), TypeError, "crop_size must be an int or 3 ints (z, y, x), got the string '64'"),
    (dict(val_overlap=1.0), ValueError, "val_overlap must be in [0, 1), got 1.0; the fraction by which validation "
                                        "tiles overlap; 0.25 is usual"),
    (dict(early_stopping=-1), ValueError, "early_stopping must be a number of validations >= 1, got -1; use None "
                                          "(JSON null) to switch early stopping off"),
    (dict(loss="focal"), ValueError, "TrainConfig field 'loss': unknown loss 'focal'"),
    (dict(model="unet3d"), ValueError, "TrainConfig field 'model': unknown model preset 'unet3d'"),
    (dict(augment={"rotation": 5}), ValueError, "TrainConfig field 'augment': unknown augmentation parameter(s) "
                                                "['rotation']"),
])
def test_config_messages_name_the_field(changes, exc, message):
    with pytest.raises(exc) as err:
        TrainConfig(**changes)
    assert message in str(err.value)


def test_config_files_name_the_file_and_line_and_a_runs_config_json_reads_back(tmp_path, run_a, capsys):
    from napari_ctorgans.cli import main

    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "iterations": 10,\n  "loss": "iou"\n  "seed": 1\n}\n')
    with pytest.raises(ValueError, match=f"{broken}: not valid JSON at line 4, column 3: Expecting ',' delimiter"):
        TrainConfig.from_json(broken)
    typed = tmp_path / "typed.json"
    typed.write_text(json.dumps({"learning_rate": "0.001"}))
    with pytest.raises(TypeError, match=f"{typed}: TrainConfig field 'learning_rate' must be a number"):
        TrainConfig.from_json(typed)
    stopping = tmp_path / "stopping.json"
    stopping.write_text(json.dumps({"early_stopping": -1}))
    base = ["train", "--case", "ct.nii.gz", "labels.nii.gz", "--output-dir", str(tmp_path / "out")]
    assert main([*base, "--config", str(broken)]) == 1
    assert f"{broken}: not valid JSON at line 4" in capsys.readouterr().err
    assert main([*base, "--config", str(stopping)]) == 1  # used to stop after one iteration and exit 0
    assert f"{stopping}: early_stopping must be a number of validations >= 1" in capsys.readouterr().err
    # the run's own config.json (with its derived "window") is a TrainConfig again
    again = TrainConfig.from_json(run_a / "config.json")
    assert again == tiny_config(run_a)
    edited = json.loads((run_a / "config.json").read_text())
    edited["window"] = [-100.0, 100.0]
    with pytest.raises(ValueError, match="'window' .* does not agree with the window .* of the augmentation ranges"):
        TrainConfig.from_dict(edited)


def test_cli_trains_on_image_and_labels_files_and_resumes_from_the_runs_config(tmp_path, capsys):
    from napari_ctorgans.cli import build_parser, main

    ct_file, lab_file = data_file("abdomen_3mm.nii.gz"), data_file("abdomen_3mm_ctorg.nii.gz")
    out = tmp_path / "run"
    tiny = tmp_path / "tiny.json"
    tiny_config(out, iterations=1).replace(output_dir=None).to_json(tiny)
    args = ["train", "--case", str(ct_file), str(lab_file), "--output-dir", str(out), "--config", str(tiny),
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    assert "trained 1 iterations" in capsys.readouterr().out and (out / "last.pt").is_file()
    assert not (out / "best.pt").exists()  # no validation cases: no best.pt, as the help says
    # the run's own config.json fed back, one iteration more
    assert main(["train", "--case", str(ct_file), str(lab_file), "--output-dir", str(out), "--config",
                 str(out / "config.json"), "--iterations", "2", "--resume", "--cache-dir",
                 str(tmp_path / "cache")]) == 0
    assert read_checkpoint(out / "last.pt")["iteration"] == 2
    assert main(["train", "--output-dir", str(out)]) == 1
    assert "no training cases: give --cases FOLDER and/or --case CT LABELS" in capsys.readouterr().err
    # a folder of scans beside their NAME_labels.nii.gz (as ctorgans label writes them) is a cases folder too
    folder = tmp_path / "labelled"
    folder.mkdir()
    (folder / "abdomen.nii.gz").write_bytes(ct_file.read_bytes())
    (folder / "abdomen_labels.nii.gz").write_bytes(lab_file.read_bytes())
    from napari_ctorgans.train import find_cases

    assert find_cases(folder) == [(folder / "abdomen.nii.gz", folder / "abdomen_labels.nii.gz")]
    helps = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "best.pt (the best validation Dice) when validation cases are given" in " ".join(helps.split())
    assert "cpu-quick 0, from the start" in " ".join(helps.split())
