"""Faults in the file readers and writers, reproduced on real files: full disks, bit flips, truncations,
broken NIfTI geometry, values that do not fit, and the napari reader on misleading names."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import napari_ctorgans as ct
from conftest import ROOT, data_file

LIMIT = 64 * 1024  # bytes: far below any of the label files written under it

# A second process: ignore SIGXFSZ so that writing past the file-size limit fails with EFBIG (as a full disk
# fails with ENOSPC) instead of killing the process, then try to overwrite each previous file.
_CHILD = r"""
import json, resource, signal, sys, warnings
import numpy as np
import napari
from napari.plugins import _initialize_plugins
import napari_ctorgans as ct
from napari_ctorgans._napari.layers import labels_layer_kwargs

_initialize_plugins()
like = ct.read_volume(sys.argv[1])
noisy = np.random.default_rng(0).integers(0, 6, like.shape).astype(np.uint8)  # compresses badly
kwargs = labels_layer_kwargs(like.with_array(noisy))
layer = napari.layers.Labels(noisy, **{k: kwargs[k] for k in ("name", "scale", "translate", "metadata")})
big = napari.layers.Labels(noisy.astype(np.int64) * 2**33, **{k: kwargs[k] for k in ("scale", "metadata")})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
out = {}
for target in sys.argv[3:]:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if target.endswith(".json"):  # a sidecar through the same verified helper
                ct.io.write_bytes_atomic(target, b"[" + b"0, " * 100_000 + b"0]", overwrite=True)
            elif "napari" in target:  # napari's own Save: layer.save through the plugin's writer
                (big if "big" in target else layer).save(target, plugin="napari-ctorgans")
            else:
                ct.write_labels(target, noisy, like=like, overwrite=True)
        out[target] = "no error " + " | ".join(str(w.message) for w in caught)
    except Exception as exc:
        out[target] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


def _previous_files(folder: Path, suffixes) -> dict[Path, bytes]:
    ref = ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz"))
    like = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    files = {}
    for suffix in suffixes:
        path = ct.write_labels(folder / f"labels{suffix}", ref.array, like=like)
        files[path] = path.read_bytes()
    return files


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "tests")}


@pytest.mark.slow  # a second process imports napari: ~5 s of CPU, over 10 s on a loaded machine
def test_file_size_limit_never_replaces_the_previous_file(tmp_path):
    """ITK's NIfTI writer prints "NWAD" and returns: the verified write must still refuse, keeping the old file."""
    files = _previous_files(tmp_path, [".nii.gz", ".nii", ".nrrd", ".mha"])
    for name in ("napari.nii.gz", "napari_big.nii.gz"):  # napari's Save, and labels that do not fit
        files[tmp_path / name] = files[tmp_path / "labels.nii.gz"]
        (tmp_path / name).write_bytes(files[tmp_path / name])
    files[tmp_path / "sidecar.json"] = b'{"previous": true}\n'
    (tmp_path / "sidecar.json").write_bytes(files[tmp_path / "sidecar.json"])
    run = subprocess.run([sys.executable, "-c", _CHILD, str(data_file("abdomen_3mm.nii.gz")), str(LIMIT),
                          *map(str, files)], capture_output=True, text=True, timeout=120, env=_child_env())
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    big = files.pop(tmp_path / "napari_big.nii.gz")
    message = results.pop(str(tmp_path / "napari_big.nii.gz"))
    assert message.startswith("RuntimeError: could not save") and "above the largest label" in message, message
    assert (tmp_path / "napari_big.nii.gz").read_bytes() == big
    for path, before in files.items():
        message = results[str(path)]
        assert message.startswith("OSError: could not write"), message
        assert str(path) in message and "file-size limit" in message and "the previous file is unchanged" in message
        assert path.read_bytes() == before, f"{path} changed"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in files), "napari_big.nii.gz"])


@pytest.mark.slow  # labels a real CT in a second process
def test_cli_label_exits_nonzero_under_a_file_size_limit(tmp_path):
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(data_file("abdomen_3mm_ctorg.nii.gz").read_bytes())
    before = out.read_bytes()
    code = (
        "import resource, signal, sys\n"
        "from napari_ctorgans.cli import main\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    run = subprocess.run([sys.executable, "-c", code, "label", str(data_file("abdomen_3mm.nii.gz")), "-o", str(out),
                          "--organs", "lungs", "--overwrite", "--no-progress"],
                         capture_output=True, text=True, timeout=180, env=_child_env())
    assert run.returncode == 1, (run.stdout, run.stderr)
    assert "wrote" not in run.stdout
    assert f"ctorgans label: error: could not write {out}" in run.stderr
    assert "the previous file is unchanged" in run.stderr
    assert out.read_bytes() == before


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                 capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def test_full_tmpfs_never_replaces_the_previous_file(small_tmpfs):
    files = _previous_files(small_tmpfs, [".nii.gz", ".mha"])
    with open(small_tmpfs / "filler", "wb") as fh:  # fill the disk
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    like = ct.read_volume(data_file("abdomen_3mm.nii.gz"))
    noisy = np.random.default_rng(1).integers(0, 6, like.shape).astype(np.uint8)
    for path, before in files.items():
        with pytest.raises(OSError, match="could not write .*the previous file is unchanged") as info:
            ct.write_labels(path, noisy, like=like, overwrite=True)
        assert str(path) in str(info.value)
        assert path.read_bytes() == before
    (small_tmpfs / "filler").unlink()
    assert sorted(p.name for p in small_tmpfs.iterdir()) == sorted(p.name for p in files)
    path = next(iter(files))
    ct.write_labels(path, noisy, like=like, overwrite=True)  # with space again, the write goes through
    np.testing.assert_array_equal(ct.read_labels(path).array, noisy)


def _flip(data: bytes, positions) -> list[bytes]:
    out = []
    for k, pos in enumerate(positions):
        b = bytearray(data)
        b[int(pos)] ^= 1 << (k % 8)
        out.append(bytes(b))
    return out


@pytest.mark.parametrize("name,refused", [("abdomen_3mm.nii.gz", 15), ("abdomen_3mm_ctorg.nii.gz", 13)])
def test_every_bit_flip_in_a_gzip_nifti_is_refused_or_harmless(tmp_path, name, refused, abdomen_3mm,
                                                                abdomen_3mm_labels):
    """Each flip is refused by the gzip CRC, or it changed nothing: in a label map's long runs of zeros a flipped
    deflate distance can copy the same zeros from elsewhere, and the voxels read back identical."""
    data = data_file(name).read_bytes()
    read, original = (ct.read_labels, abdomen_3mm_labels) if "ctorg" in name else (ct.read_volume, abdomen_3mm)
    # 16 flips spread over the deflate data and the CRC/size trailer; in the CT the first one lands in the gzip
    # header's file name field, which no CRC covers and no reader uses
    positions = list(np.linspace(10, len(data) - 10, 14).astype(int)) + [len(data) - 6, len(data) - 2]
    outcomes = []
    for k, flipped in enumerate(_flip(data, positions)):
        path = tmp_path / f"flip{k:02d}_{name}"
        path.write_bytes(flipped)
        try:
            vol = read(path)
        except ValueError as exc:
            assert "truncated or damaged" in str(exc) and str(path) in str(exc), exc
            assert "copy or download it again" in str(exc)
            outcomes.append("refused")
            continue
        np.testing.assert_array_equal(vol.array, original.array)  # never a silently different volume
        assert vol.same_grid(original, atol=1e-6)
        outcomes.append("identical")
    assert outcomes.count("refused") == refused, outcomes


def test_every_bit_flip_in_a_compressed_mha_is_refused(tmp_path, abdomen_3mm):
    whole = ct.write_volume(tmp_path / "ct.mha", abdomen_3mm, compress=True)
    data = whole.read_bytes()
    start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    for k, flipped in enumerate(_flip(data, np.linspace(start, len(data) - 1, 16).astype(int))):
        path = tmp_path / f"flip{k:02d}.mha"
        path.write_bytes(flipped)
        with pytest.raises(ValueError, match="truncated or damaged.*compressed data") as info:
            ct.read_volume(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("suffix,compress,cuts", [
    (".nii", False, (1, 100, 350, 10_000)),  # cut by up to ~350 bytes used to read zeros (header not counted)
    (".nii.gz", False, (1, 8, 1000)),
    (".mha", False, (1, 350, 10_000)),
    (".mha", True, (1, 1000)),
    (".nrrd", True, (1, 1000)),
])
def test_truncated_files_are_refused(tmp_path, abdomen_3mm, suffix, compress, cuts):
    whole = ct.write_volume(tmp_path / f"whole{suffix}", abdomen_3mm, compress=compress)
    data = whole.read_bytes()
    for cut in cuts:
        path = tmp_path / f"cut{cut}{suffix}"
        path.write_bytes(data[:-cut])
        with pytest.raises(ValueError, match="truncated or damaged") as info:
            ct.read_volume(path)
        assert str(path) in str(info.value) and "No such file" not in str(info.value)
    np.testing.assert_array_equal(ct.read_volume(whole).array, abdomen_3mm.array)


def test_empty_file_says_empty(tmp_path):
    for name in ("empty.nii.gz", "empty.nii", "empty.mha"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(ValueError, match=r"truncated or damaged \(the file is empty \(0 bytes\)\)"):
            ct.read_volume(tmp_path / name)


def _nifti1(name="abdomen_3mm.nii.gz") -> bytearray:
    return bytearray(gzip.decompress(data_file(name).read_bytes()))


def _write_nii(path: Path, raw: bytes) -> Path:
    path.write_bytes(gzip.compress(bytes(raw), compresslevel=1) if path.name.endswith(".gz") else bytes(raw))
    return path


@pytest.mark.parametrize("value", [0.0, np.nan, np.inf])
def test_nifti_zero_nan_inf_spacing_is_refused(tmp_path, value):
    raw = _nifti1()
    struct.pack_into("<f", raw, 76 + 4 * 3, value)  # pixdim[3], the slice thickness
    path = _write_nii(tmp_path / "spacing.nii", raw)
    with pytest.raises(ValueError, match=r"pixdim\[1:4\] = \(3.0, 3.0, (0.0|nan|inf)\)") as info:
        ct.read_volume(path)
    assert str(path) in str(info.value) and "set_zooms" in str(info.value)


def test_nifti_tiny_spacing_is_refused_not_an_overflow(tmp_path):
    raw = _nifti1()
    struct.pack_into("<f", raw, 76 + 4 * 3, 1e-30)
    path = _write_nii(tmp_path / "tiny.nii.gz", raw)
    with pytest.raises(ValueError, match="spacing .* must lie between 0.0001 and 10000 mm") as info:
        ct.read_volume(path)
    assert str(path) in str(info.value)


def test_nifti_nan_origin_is_refused_and_an_unused_qform_is_ignored(tmp_path, abdomen_3mm):
    raw = _nifti1()
    assert struct.unpack_from("<hh", raw, 252) == (0, 2)  # the sform alone places the voxels
    bad_sform = bytearray(raw)
    struct.pack_into("<f", bad_sform, 280 + 4 * 3, np.nan)  # srow_x[3], the x origin
    path = _write_nii(tmp_path / "nan_origin.nii", bad_sform)
    with pytest.raises(ValueError, match=r"NaN or infinite values in srow_x/y/z \(sform\)") as info:
        ct.read_volume(path)
    assert str(path) in str(info.value)
    bad_qform = bytearray(raw)
    struct.pack_into("<f", bad_qform, 268, np.nan)  # qoffset_x of the unused qform (qform_code 0)
    vol = ct.read_volume(_write_nii(tmp_path / "nan_qoffset.nii", bad_qform))
    assert vol.same_grid(abdomen_3mm, atol=1e-4)
    np.testing.assert_array_equal(vol.array, abdomen_3mm.array)
    qform_only = bytearray(bad_qform)
    struct.pack_into("<hh", qform_only, 252, 1, 0)  # now the NaN qform is the one that counts
    path = _write_nii(tmp_path / "nan_qform.nii", qform_only)
    with pytest.raises(ValueError, match=r"NaN or infinite values in quatern_b/c/d, qoffset_x/y/z \(qform\)"):
        ct.read_volume(path)


def test_nifti2_reads_like_the_nifti1_it_was_made_from(tmp_path, abdomen_3mm):
    """ITK says "Unable to determine ImageIO reader" for NIfTI-2 (as for an empty file): it is read anyway."""
    one = _nifti1()
    dims = struct.unpack_from("<8h", one, 40)
    datatype, bitpix = struct.unpack_from("<hh", one, 70)
    pixdim, vox_offset = struct.unpack_from("<8f", one, 76), int(struct.unpack_from("<f", one, 108)[0])
    two = bytearray(544)
    struct.pack_into("<i", two, 0, 540)
    two[4:12] = b"n+2\0\r\n\x1a\n"
    struct.pack_into("<hh8q", two, 12, datatype, bitpix, *dims)
    struct.pack_into("<8dq", two, 104, *pixdim, 544)
    struct.pack_into("<dd", two, 176, *struct.unpack_from("<ff", one, 112))  # scl_slope, scl_inter
    struct.pack_into("<ii6d12d", two, 344, 1, 1, *struct.unpack_from("<6f12f", one, 256))
    for name in ("nifti2.nii.gz", "nifti2.nii"):
        vol = ct.read_volume(_write_nii(tmp_path / name, two + one[vox_offset:]))
        np.testing.assert_array_equal(vol.array, abdomen_3mm.array)
        assert vol.same_grid(abdomen_3mm, atol=1e-6) and vol.source_orientation == abdomen_3mm.source_orientation
        assert vol.path == str(tmp_path / name)
    cut = _write_nii(tmp_path / "cut2.nii", (two + one[vox_offset:])[:-100])
    with pytest.raises(ValueError, match="truncated or damaged"):
        ct.read_volume(cut)


def test_nifti_pixdim_disagreeing_with_the_sform_warns(tmp_path, abdomen_3mm):
    raw = _nifti1()
    struct.pack_into("<f", raw, 76 + 4 * 3, 2.0)  # the sform still says 3 mm slices
    path = _write_nii(tmp_path / "disagree.nii", raw)
    with pytest.warns(UserWarning, match=re.escape("pixdim gives the voxel spacing (3.0, 3.0, 2.0) mm (x, y, z) "
                                                   "but the sform's axes are (3.0, 3.0, 3.0) mm long")):
        vol = ct.read_volume(path)
    assert vol.spacing == (2.0, 3.0, 3.0)


def test_labels_that_do_not_fit_are_refused(tmp_path, abdomen_3mm):
    ref = ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz")).array
    target = tmp_path / "labels.nii.gz"
    big = ref.astype(np.int64)
    big[0, 0, 0] = 2**32 + 3  # used to be written as 3
    with pytest.raises(ValueError, match=r"value 4294967299, above the largest label a file stores \(2147483647\)"):
        ct.write_labels(target, big, like=abdomen_3mm)
    assert not target.exists()
    fits = ref.astype(np.int64)
    fits[0, 0, 0] = 70_000
    np.testing.assert_array_equal(ct.read_labels(ct.write_labels(target, fits, like=abdomen_3mm)).array, fits)
    for value, dtype in ((2**40, np.int64), (1e12, np.float64)):  # read as 0 / reported as "negative values"
        image = sitk.GetImageFromArray(ref.astype(dtype))
        image.CopyInformation(sitk.ReadImage(str(data_file("abdomen_3mm_ctorg.nii.gz"))))
        image[0, 0, 0] = value
        path = tmp_path / f"huge_{dtype.__name__}.nii.gz"
        sitk.WriteImage(image, str(path))
        with pytest.raises(ValueError, match=re.escape(f"holds the label value {value:g}, above the largest")) as info:
            ct.read_labels(path)
        assert str(path) in str(info.value) and "negative" not in str(info.value)


def test_mhd_never_replaces_an_unrelated_raw_file(tmp_path, abdomen_3mm):
    ref = ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz")).array
    unrelated = tmp_path / "labels.raw"
    unrelated.write_bytes(b"someone else's raw data")
    with pytest.raises(FileExistsError, match="labels.raw exists and is not the data file of .*labels.mhd"):
        ct.write_labels(tmp_path / "labels.mhd", ref, like=abdomen_3mm, compress=False)
    assert unrelated.read_bytes() == b"someone else's raw data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.raw"]
    own = tmp_path / "own" / "labels.mhd"
    ct.write_labels(own, ref, like=abdomen_3mm, compress=False)
    ct.write_labels(own, ref * 0, like=abdomen_3mm, compress=False, overwrite=True)  # its own data file: fine
    assert ct.read_labels(own).array.max() == 0


def test_napari_reader_decides_from_content_not_name(tmp_path, abdomen_3mm, abdomen_3mm_labels):
    from napari_ctorgans._napari.reader import get_reader

    for name, source, kind in (("liver_mask.nii.gz", "abdomen_3mm.nii.gz", "image"),
                               ("ct_seg.nii.gz", "abdomen_3mm.nii.gz", "image"),
                               ("unlabelled_ct.nii.gz", "abdomen_3mm_ctorg.nii.gz", "labels")):
        path = tmp_path / name
        path.write_bytes(data_file(source).read_bytes())
        [(data, kwargs, layer_type)] = get_reader(str(path))(str(path))
        assert layer_type == kind, name
        expected = abdomen_3mm if kind == "image" else abdomen_3mm_labels
        np.testing.assert_array_equal(data, expected.array)
        np.testing.assert_allclose(kwargs["scale"], expected.spacing)


def test_written_files_are_verified_not_trusted(tmp_path, abdomen_3mm):
    """The write helper compares the voxels it reads back with the array it meant to write."""
    from napari_ctorgans.io._verify import array_digest, scan

    labels = (abdomen_3mm.array > 200).astype(np.uint8) * 5
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd"):
        path = ct.write_labels(tmp_path / f"l_{uuid.uuid4().hex[:6]}{suffix}", labels, like=abdomen_3mm)
        image = sitk.ReadImage(str(path))
        assert scan(path, digest=True).digest == array_digest(sitk.GetArrayViewFromImage(image)), suffix
