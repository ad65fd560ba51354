"""Cohort faults: clashing output names, sidecars of another input, symlink loops, outputs over the inputs, and a
second process trying to reach the local cluster.

One secured local cluster (``napari_ctorgans._dask_cluster.secure_local_cluster``, one worker) serves the module;
this process reaches it through the Dask TLS configuration, the way docs/cluster.md tells users to reach a secured
shared ``--scheduler`` cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import napari_ctorgans as ct
from napari_ctorgans.cli import main
from napari_ctorgans.cohort import find_inputs, is_complete, run_cohort, sidecar_path

from conftest import data_file

pytest.importorskip("distributed")
pytest.importorskip("cryptography")


def _phantom(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ct.write_volume(path, ct.make_phantom(seed=seed, spacing=6.0)[0], overwrite=True)
    return path


def _digest(path: Path) -> tuple[str, int]:
    """Content hash and modification time of a file, or of every file of a folder."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest(), max(f.stat().st_mtime_ns for f in files)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory):
    """The cohort's own local cluster, and this process's Dask config holding its credentials (files, 0600)."""
    import dask

    from napari_ctorgans._dask_cluster import secure_local_cluster

    with secure_local_cluster(1) as cluster:
        sec = cluster.security
        creds = tmp_path_factory.mktemp("creds")
        for name, text in (("ca.pem", sec.tls_ca_file), ("cert.pem", sec.tls_client_cert),
                           ("key.pem", sec.tls_client_key)):
            (creds / name).write_text(text)
            (creds / name).chmod(0o600)
        with dask.config.set({"distributed.comm.require-encryption": True,
                              "distributed.comm.tls.ca-file": str(creds / "ca.pem"),
                              "distributed.comm.tls.client.cert": str(creds / "cert.pem"),
                              "distributed.comm.tls.client.key": str(creds / "key.pem")}):
            yield cluster


def _run(inputs, cluster, **kwargs):
    return run_cohort(inputs, scheduler=cluster.scheduler_address, progress=False, **kwargs)


# ------------------------------------------------------------------------------------------- name collisions
def test_output_name_collisions_refused_before_any_work(tmp_path, capsys):
    """scan.nii.gz beside scan.nrrd, abd1.nii.gz beside a DICOM folder abd1/: refused with every clash listed,
    before a cluster starts; nothing is written."""
    scans = tmp_path / "scans"
    _phantom(scans / "scan.nii.gz", 0)
    _phantom(scans / "scan.nrrd", 1)
    _phantom(scans / "abd1.nii.gz", 2)
    shutil.copytree(data_file("abdomen_dicom"), scans / "abd1")
    before = _tree(tmp_path)
    with pytest.raises(ValueError) as err:
        run_cohort(scans, progress=False)  # no scheduler: the check comes before the local cluster
    msg = str(err.value)
    assert "2 output(s) would be shared by several scans" in msg
    assert f"{scans / 'scan_labels.nii.gz'} from {scans / 'scan.nii.gz'} and {scans / 'scan.nrrd'}" in msg
    assert f"{scans / 'abd1_labels.nii.gz'} from {scans / 'abd1.nii.gz'} and {scans / 'abd1'}" in msg
    assert "rename one scan of each group" in msg and "nothing was written" in msg
    assert _tree(tmp_path) == before

    # the CLI says the same and exits 1
    assert main(["label", str(scans), "--no-progress"]) == 1
    assert "would be shared by several scans" in capsys.readouterr().err


# -------------------------------------------------------------------------------------------- outputs over inputs
def test_output_equal_to_the_input_is_refused_and_the_ct_kept(tmp_path, capsys):
    """-o equal to the input with --overwrite (directly, through a link, or inside a DICOM folder) and a cohort
    output that is another input: refused for label and predict; every CT byte-identical."""
    scan = _phantom(tmp_path / "scan.nii.gz", 0)
    os.symlink(scan, tmp_path / "alias.nii.gz")
    series = tmp_path / "series"
    shutil.copytree(data_file("abdomen_dicom"), series)
    kept = {p: _digest(p) for p in (scan, series)}
    cases = [["label", str(scan), "-o", str(scan), "--overwrite"],
             ["label", str(scan), "-o", str(tmp_path / "alias.nii.gz"), "--overwrite"],
             ["label", str(series), "-o", str(series / "labels.nii.gz"), "--overwrite"],
             ["predict", str(scan), "-c", str(tmp_path / "any.pt"), "-o", str(scan), "--overwrite"]]
    for argv in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "would replace or write into an input (the CT would be lost)" in err, (argv, err)
        assert "choose another output (-o) name or folder" in err and "nothing was written" in err
    assert f"{scan} is the input {scan} itself" in str(_refusal(scan, scan))
    assert f"lies inside the DICOM series folder {series}" in str(_refusal(series, series / "x.nii.gz"))
    # a cohort whose list holds a scan and a file named like its output
    other = _phantom(tmp_path / "scan_labels.nii.gz", 1)
    kept[other] = _digest(other)
    listing = tmp_path / "list.txt"
    listing.write_text("scan.nii.gz\nscan_labels.nii.gz\n")
    with pytest.raises(ValueError, match=r"scan_labels.nii.gz is the input .*scan_labels.nii.gz itself"):
        run_cohort(listing, overwrite=True, progress=False)
    # a cohort with -o inside a DICOM input folder
    with pytest.raises(ValueError, match="inside the DICOM series folder"):
        run_cohort([series, scan], output_dir=series, overwrite=True, progress=False)
    assert {p: _digest(p) for p in kept} == kept and sorted(os.listdir(series)) == sorted(
        os.listdir(data_file("abdomen_dicom")))


def _refusal(scan, out):
    from napari_ctorgans._cli.cohort import refuse_output_over_input

    with pytest.raises(ValueError) as err:
        refuse_output_over_input(scan, out)
    return err.value


# ------------------------------------------------------------------------------------------------ symlink loops
@pytest.mark.slow  # about 10 s: the first task of the module's cluster (the worker imports and compiles)
def test_symlink_loops_find_each_scan_once(tmp_path, secure_cluster):
    """folder/loop -> folder and folder/sub/up -> folder: each scan found, labelled and written exactly once."""
    folder = tmp_path / "scans"
    _phantom(folder / "a.nii.gz", 0)
    _phantom(folder / "sub" / "b.nii.gz", 1)
    os.symlink(folder, folder / "loop")
    os.symlink(folder, folder / "sub" / "up", target_is_directory=True)
    scans, _ = find_inputs(folder)
    assert sorted(scans) == [folder / "a.nii.gz", folder / "sub" / "b.nii.gz"]
    out = tmp_path / "out"
    summary = _run(folder, secure_cluster, output_dir=out)
    assert sorted((Path(r.input).name, r.status) for r in summary) == [("a.nii.gz", "ok"), ("b.nii.gz", "ok")], \
        str(summary)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.nii.gz")) == ["a_labels.nii.gz",
                                                                            "sub/b_labels.nii.gz"]


# --------------------------------------------------------------------------------------------------- sidecars
def test_sidecar_of_another_input_or_a_changed_input_is_redone(tmp_path, secure_cluster):
    """Two cohorts with one output folder: s2/a.nii.gz finds the output of s1/a.nii.gz and redoes it; a changed
    input is redone; a user's own file in an output's place is kept unless overwrite."""
    s1, s2, out = tmp_path / "s1", tmp_path / "s2", tmp_path / "out"
    _phantom(s1 / "a.nii.gz", 0)
    _phantom(s2 / "a.nii.gz", 3)
    target = out / "a_labels.nii.gz"
    assert [r.status for r in _run(s1, secure_cluster, output_dir=out)] == ["ok"]
    first = target.read_bytes()
    source = json.loads(sidecar_path(target).read_text())["source"]
    assert source["realpath"] == str((s1 / "a.nii.gz").resolve()) and source["size"] > 0
    assert is_complete(target, s1 / "a.nii.gz") and not is_complete(target, s2 / "a.nii.gz")

    assert [r.status for r in _run(s2, secure_cluster, output_dir=out)] == ["ok"]  # not "skipped"
    assert target.read_bytes() != first
    assert json.loads(sidecar_path(target).read_text())["source"]["realpath"] == str((s2 / "a.nii.gz").resolve())
    assert [r.status for r in _run(s2, secure_cluster, output_dir=out)] == ["skipped"]
    # the input changes (rewritten with another scan): redone
    _phantom(s2 / "a.nii.gz", 4)
    assert [r.status for r in _run(s2, secure_cluster, output_dir=out)] == ["ok"]

    # a file no cohort run wrote (no sidecar) sits where the output goes: kept, the scan reported
    own = _phantom(s1 / "a_labels.nii.gz", 5)  # e.g. labels the user corrected by hand
    kept = _digest(own)
    row = _run(s1, secure_cluster)[0]
    assert row.status == "failed" and f"{own} exists and was not written by a cohort run" in row.error
    assert "move it away, or pass overwrite=True (CLI: --overwrite)" in row.error and _digest(own) == kept
    assert _run(s1, secure_cluster, overwrite=True)[0].status == "ok" and is_complete(own, s1 / "a.nii.gz")


# ------------------------------------------------------------------------------------------- cluster access
_INTRUDER = r"""
import json, socket, ssl, sys
from distributed import Client
from distributed.security import Security

host, port, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ports = json.loads(sys.argv[4])
out = {}

def attempt(name, fn):
    try:
        out[name] = "connected: " + repr(fn())
    except BaseException as exc:
        out[name] = "refused: " + type(exc).__name__

def own_credentials():  # a client with credentials of its own (another self-signed key)
    with Client(f"tls://{host}:{port}", security=Security.temporary(), timeout=3) as c:
        return c.run(lambda: open(marker, "w").write("pwned"))

def plain():  # no credentials at all
    with Client(f"tcp://{host}:{port}", timeout=3) as c:
        return c.run(lambda: open(marker, "w").write("pwned"))

def tls_without_certificate():
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=3) as raw, ctx.wrap_socket(raw) as s:
        s.sendall(b"\x00" * 8)
        data = s.recv(64)
        if not data:
            raise ConnectionError("closed")
        return data

def http(p):  # any answer that starts like HTTP counts as a served HTTP port
    with socket.create_connection((host, p), timeout=3) as s:
        s.sendall(b"GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n")
        data = s.recv(64)
        if not data.startswith(b"HTTP/"):
            raise ConnectionError(repr(data[:20]))
        return data

attempt("own credentials", own_credentials)
attempt("no credentials", plain)
attempt("TLS without a certificate", tls_without_certificate)
for p in ports:
    attempt(f"HTTP on {p}", lambda p=p: http(p))
print(json.dumps(out))
"""


def _listening(pid: int) -> set[int]:
    import psutil

    return {c.laddr.port for c in psutil.Process(pid).net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN}


def test_second_process_cannot_reach_the_local_cluster_and_no_http_is_served(tmp_path, secure_cluster):
    """Another process (without this run's credentials, or with its own) cannot connect nor run code; the worker
    process listens on its TLS port only, and no port of the cluster answers HTTP (8787 included)."""
    from distributed import Client

    address = secure_cluster.scheduler_address
    assert address.startswith("tls://127.0.0.1:")
    host, port = address[len("tls://"):].rsplit(":", 1)
    with Client(secure_cluster) as client:  # this process holds the credentials
        assert client.submit(sum, [1, 2]).result() == 3
        (worker, info), = client.scheduler_info()["workers"].items()
        worker_pid = client.run(os.getpid)[worker]
        worker_http = client.run(lambda dask_worker: dask_worker.http_server.port)[worker]
    worker_port = int(worker.rsplit(":", 1)[1])
    assert _listening(worker_pid) == {worker_port}  # no HTTP server in the worker process
    nanny_port = int(info["nanny"].rsplit(":", 1)[1])
    scheduler_http = secure_cluster.scheduler.http_server.port
    ports = sorted({int(port), worker_port, nanny_port, scheduler_http, worker_http, 8787})
    assert not {scheduler_http, 8787} & _listening(os.getpid())

    marker = tmp_path / "pwned.txt"
    proc = subprocess.run([sys.executable, "-c", _INTRUDER, host, port, str(marker), json.dumps(ports)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(outcome) == 3 + len(ports)
    assert all(v.startswith("refused: ") for v in outcome.values()), outcome
    assert not marker.exists()
