"""Writers under real faults, round two: two processes racing for one new file name, a writer killed with SIGKILL
in the middle of a write, and a folder the user cannot write to."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import napari_ctorgans as ct
from conftest import ROOT, data_file
from napari_ctorgans.io import _tempdir

# A writer process: reads the real CT crop and its labels, turns them into its own label map (writer 1 relabels the
# liver as kidney), says "ready", then writes one new file per line read from stdin, with overwrite=False, and
# prints what happened. Both writers get the line at the same moment, so both race for the same name.
_RACER = r"""
import hashlib, sys
import numpy as np
import napari_ctorgans as ct
ct_file, labels_file, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
vol = ct.read_volume(ct_file)
crop = (slice(30, 70), slice(20, 80), slice(20, 90))
like = ct.Volume(vol.array[crop], spacing=vol.spacing, origin=vol.origin, direction=vol.direction)
labels = ct.read_labels(labels_file).array[crop]
if k == 1:
    labels = np.where(labels == 1, 4, labels).astype(labels.dtype)
print("ready", hashlib.sha256(labels.tobytes()).hexdigest(), flush=True)
for line in sys.stdin:
    try:
        ct.write_labels(line.strip(), labels, like=like, overwrite=False)
        print("ok", flush=True)
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace("\n", " "), flush=True)
"""


def _start(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "tests")})


def _digest(path: Path) -> str:
    return hashlib.sha256(ct.read_labels(path).array.tobytes()).hexdigest()


@pytest.mark.slow  # two writer processes start (~3 s each, in parallel), then race 4 times
def test_two_writers_racing_for_one_name_exactly_one_wins(tmp_path):
    files = str(data_file("abdomen_3mm.nii.gz")), str(data_file("abdomen_3mm_ctorg.nii.gz"))
    racers = [_start(_RACER, *files, str(k)) for k in (0, 1)]
    try:
        ready = [p.stdout.readline().split() for p in racers]
        assert all(r and r[0] == "ready" for r in ready), [p.stderr.read() for p in racers]
        digests = [r[1] for r in ready]
        assert digests[0] != digests[1]
        for trial in range(4):
            target = tmp_path / f"organs_{trial}.nii.gz"
            for p in racers:  # the same line to both, back to back: they start writing together
                p.stdin.write(f"{target}\n")
            for p in racers:
                p.stdin.flush()
            answers = [p.stdout.readline().strip() for p in racers]
            winners = [k for k, a in enumerate(answers) if a == "ok"]
            assert len(winners) == 1, answers
            loser = answers[1 - winners[0]]
            assert loser.startswith(f"FileExistsError {target} already exists; pass overwrite=True"), loser
            assert _digest(target) == digests[winners[0]]  # the file holds the winner's labels, whole
    finally:
        for p in racers:
            p.stdin.close()
            p.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"organs_{t}.nii.gz" for t in range(4)]


# A writer that never stops: the same label map over and over (overwrite=True), so that a temporary folder of
# write_labels is there nearly all the time when it is killed.
_LOOPER = r"""
import sys
import napari_ctorgans as ct
vol = ct.read_volume(sys.argv[1])
labels = ct.read_labels(sys.argv[2]).array
print("ready", flush=True)
while True:
    ct.write_labels(sys.argv[3], labels, like=vol, overwrite=True)
"""

# A writer holding its temporary folder open (a long write still in progress).
_HOLDER = r"""
import sys, time
from napari_ctorgans.io import atomic_output
with atomic_output(sys.argv[1], overwrite=True) as tmp:
    tmp.write_bytes(b"partial")
    print("holding", tmp.parent, flush=True)
    time.sleep(120)
"""


def _kill_inside_a_write(folder: Path) -> Path:
    files = str(data_file("abdomen_3mm.nii.gz")), str(data_file("abdomen_3mm_ctorg.nii.gz"))
    for _ in range(5):
        p = _start(_LOOPER, *files, str(folder / "organs.nii.gz"))
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        deadline = time.monotonic() + 30
        while not list(folder.glob(".ctorgans-*")) and time.monotonic() < deadline:
            time.sleep(0.002)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        p.stdin.close()
        left = list(folder.glob(".ctorgans-*"))
        if left:
            assert left[0].name.startswith(f".ctorgans-{p.pid}@")
            return left[0]
    pytest.fail("the writer was never killed inside a write in 5 tries")


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.slow  # three writer processes in turn (~3 s each)
def test_sigkill_leftovers_are_cleaned_on_the_next_write_but_not_a_live_write(tmp_path, abdomen_3mm,
                                                                               abdomen_3mm_labels):
    leftover = _kill_inside_a_write(tmp_path)
    small = abdomen_3mm_labels.array[40:44]
    like = ct.Volume(abdomen_3mm.array[40:44], spacing=abdomen_3mm.spacing, origin=abdomen_3mm.origin)
    ct.write_labels(tmp_path / "a.nii.gz", small, like=like)
    assert leftover.exists(), "a leftover younger than a few minutes is kept (its write may still be running)"

    holder = _start(_HOLDER, str(tmp_path / "held.nii.gz"))
    try:
        line = holder.stdout.readline().split()
        assert line and line[0] == "holding", holder.stderr.read()
        held = Path(line[1])
        _age(leftover, _tempdir.STALE_AFTER_S + 60)
        _age(held, _tempdir.STALE_AFTER_S + 60)
        ct.write_labels(tmp_path / "b.nii.gz", small, like=like)
        assert not leftover.exists(), "the killed writer's leftover is removed by the next write"
        assert held.exists() and (held / "held.nii.gz").read_bytes() == b"partial", "a live write is left alone"
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdin.close()
    assert np.array_equal(ct.read_labels(tmp_path / "b.nii.gz").array, small)
    if (tmp_path / "organs.nii.gz").exists():  # the last whole write of the killed writer, if it finished one
        assert ct.read_labels(tmp_path / "organs.nii.gz").shape == abdomen_3mm.shape


# Write into a folder the user may not write to. Run as root (who may write anywhere), the process drops to the
# unprivileged user "nobody" once everything is imported.
_READ_ONLY = r"""
import os, sys
import numpy as np
import napari_ctorgans as ct
from napari_ctorgans.io import _write, _tempdir
vol = ct.read_volume(sys.argv[1])
labels = np.zeros(vol.shape, np.uint8)
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)
for target in sys.argv[2:]:
    try:
        ct.write_labels(target, labels, like=vol)
        print("no error")
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace("\n", " "))
"""


@pytest.mark.slow  # one child process (~3 s)
def test_read_only_folder_error_names_the_file_asked_for(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    tmp_path.chmod(0o755)
    folder.chmod(0o555)
    targets = [folder / "organs.nii.gz", folder / "sub" / "organs.nii.gz"]
    try:
        run = subprocess.run([sys.executable, "-c", _READ_ONLY, str(data_file("abdomen_3mm.nii.gz")),
                              *map(str, targets)], capture_output=True, text=True, timeout=120)
    finally:
        folder.chmod(0o755)
    assert run.returncode == 0, run.stderr
    answers = run.stdout.strip().splitlines()
    assert len(answers) == 2, run.stdout
    for target, answer in zip(targets, answers):
        assert answer.startswith(f"PermissionError cannot write {target}: Permission denied in the "
                                 f"folder {target.parent}"), answer
        assert "choose a folder you can write to" in answer and ".ctorgans-" not in answer, answer
    assert list(folder.iterdir()) == []


def test_leftovers_without_an_owner_wait_a_day(tmp_path, abdomen_3mm):
    """Folders of the earlier naming (no process in the name) or of another machine cannot be probed: kept a day."""
    like = ct.Volume(abdomen_3mm.array[40:42], spacing=abdomen_3mm.spacing, origin=abdomen_3mm.origin)
    old, recent, foreign = (tmp_path / n for n in (".ctorgans-k2j4x9_a", ".ctorgans-q8w1zz0b",
                                                   ".ctorgans-123@elsewhere.example-ab12cd34"))
    for folder, age in ((old, 2 * _tempdir.FOREIGN_STALE_AFTER_S), (recent, 3600), (foreign, 3600)):
        folder.mkdir()
        (folder / "organs.nii.gz").write_bytes(b"partial")
        _age(folder, age)
    ct.write_labels(tmp_path / "a.nii.gz", np.zeros(like.shape, np.uint8), like=like)
    assert not old.exists() and recent.exists() and foreign.exists()
