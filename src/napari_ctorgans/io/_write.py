"""Writers: label maps (and volumes) in the geometry of the file they belong to, written atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..volume import Volume
from ._sitk import LABEL_MAX, SUPPORTED_SUFFIXES, label_dtype, to_sitk
from ._tempdir import exists_error, make_tempdir, place
from ._verify import Damaged, array_digest, scan

_WRITABLE = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _check_mhd_data_file(path: Path, compress: bool) -> None:
    """A ``.mhd`` header comes with a data file of the same stem: never replace one that is not its own."""
    data = path.with_suffix(".zraw" if compress else ".raw")
    if not data.exists():
        return
    owner = None
    if path.is_file():
        with open(path, "rb") as fh:
            for line in fh.read(1 << 16).decode("latin-1").splitlines():
                key, _, value = line.partition("=")
                if key.strip() == "ElementDataFile":
                    owner = value.strip()
    if owner != data.name:
        raise FileExistsError(
            f"{data} exists and is not the data file of {path}; writing {path.name} would replace it. "
            f"Move {data.name} away or choose another name"
        )


def _verify_written(tmp: Path, image: sitk.Image, digest: str) -> None:
    """The temporary file must announce the image's grid and hold exactly its voxels; else raise Damaged."""
    info = sitk.ImageFileReader()
    info.SetFileName(str(tmp))
    info.ReadImageInformation()
    same = info.GetSize() == image.GetSize() and info.GetPixelID() == image.GetPixelID() and all(
        np.allclose(a, b, rtol=1e-5, atol=1e-4)
        for a, b in ((info.GetSpacing(), image.GetSpacing()), (info.GetOrigin(), image.GetOrigin()),
                     (info.GetDirection(), image.GetDirection()))
    )
    if not same:
        raise Damaged("its header does not read back as written")
    found = scan(tmp, digest=True).digest
    if found is None:  # a layout scan() does not follow: read the whole image back
        found = array_digest(sitk.GetArrayViewFromImage(sitk.ReadImage(str(tmp))))
    if found != digest:
        raise Damaged("its voxels do not read back as written")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, exc: Exception) -> OSError:
    text = str(exc).strip()
    reason = text.splitlines()[-1] if text else type(exc).__name__
    free = shutil.disk_usage(path.parent).free
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    return OSError(
        f"could not write {path}: {reason}. {free / 1e6:.0f} MB free in {path.parent}; the disk may be full or a "
        f"quota or file-size limit (ulimit -f) reached: free some space or choose another folder ({kept})"
    )


@contextmanager
def atomic_output(path: str | os.PathLike, *, overwrite: bool = False,
                  verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """The one way files are written: into a temporary folder beside ``path``, verified, then renamed into place.

    With ``overwrite=False`` the name is taken atomically (a hard link of the verified file): of two writers
    racing for one new name, exactly one succeeds and the other gets :class:`FileExistsError`. Leftover
    temporary folders of killed writes are removed first (see :mod:`._tempdir`).

    The block writes the file at the yielded temporary path (and any companion files beside it, such as the data
    file of a ``.mhd``). When it ends, ``verify(tmp)`` must return (raise :class:`Damaged` or ``OSError`` when the
    file is not what was meant), every file is flushed to disk, the companions are moved, and the file itself is
    renamed over ``path`` last. A crash, a full disk or a writer that fails without raising never leaves a partial
    file under the final name, and never replaces the previous one.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    PermissionError
        The folder cannot be written to (read-only, not the user's); the message names ``path``.
    OSError
        Writing or verification failed; the message names the file, the free space and the fix.
    """
    path = Path(path)
    if os.path.exists(path) and not overwrite:  # (False where the folder cannot be searched: refused below)
        raise exists_error(path)
    tmpdir = make_tempdir(path)
    placed: list[Path] = []
    try:
        tmp = tmpdir / path.name
        try:
            yield tmp
            if not tmp.is_file():
                raise Damaged("the writer produced no file")
            if verify is not None:
                verify(tmp)
            for written in tmpdir.iterdir():
                _fsync(written)
        except (RuntimeError, OSError, Damaged) as exc:
            raise _write_error(path, exc) from None
        for extra in tmpdir.iterdir():  # companions first: the file that names them comes last
            if extra.name != path.name:
                place(extra, path.parent / extra.name, overwrite=overwrite)
                if not overwrite:
                    placed.append(path.parent / extra.name)
        place(tmp, path, overwrite=overwrite)
        placed.clear()
        try:
            _fsync(path.parent)  # make the rename itself durable
        except OSError:  # pragma: no cover - file systems without directory fsync
            pass
    finally:
        for companion in placed:  # the file itself was not placed: take back the companions placed for it
            companion.unlink(missing_ok=True)
        shutil.rmtree(tmpdir, ignore_errors=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` through :func:`atomic_output`, verified by reading the bytes back (sidecars, CSV, JSON)."""
    digest = hashlib.sha256(data).hexdigest()

    def same(tmp: Path) -> None:
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != digest:
            raise Damaged(f"it reads back as {tmp.stat().st_size} bytes that differ from the {len(data)} written")

    with atomic_output(path, overwrite=overwrite, verify=same) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def _atomic_write(image: sitk.Image, path: Path, *, overwrite: bool, compress: bool) -> Path:
    """Write an image through :func:`atomic_output`, verified: same grid, and voxels with the same hash."""
    suffix = _suffix(path)
    if suffix not in _WRITABLE:
        raise ValueError(
            f"cannot write {path.name}: use one of {', '.join(_WRITABLE)} (for DICOM use ct.write_dicom_seg or "
            "ct.write_rtstruct, CLI: --format dicom-seg or rtstruct)"
        )
    if os.path.exists(path) and not overwrite:  # (False where the folder cannot be searched: refused below)
        raise exists_error(path)
    if suffix == ".mhd":
        _check_mhd_data_file(path, compress)
    digest = array_digest(sitk.GetArrayViewFromImage(image))
    with atomic_output(path, overwrite=overwrite, verify=lambda tmp: _verify_written(tmp, image, digest)) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return path


def write_labels(
    path: str | os.PathLike,
    labels: np.ndarray,
    like: Volume,
    *,
    overwrite: bool = False,
    compress: bool = True,
) -> Path:
    """Write a label map in the geometry (and orientation) of the file ``like`` was read from.

    Parameters
    ----------
    path : str or path
        ``.nii.gz``, ``.nii``, ``.nrrd``, ``.mha`` or ``.mhd``.
    labels : ndarray (Z, Y, X), integer
        In the canonical orientation, on the grid of ``like``.
    like : Volume
        The image the labels belong to.
    overwrite : bool
        Replace an existing file (never done silently).
    compress : bool
        Compress the voxels of ``.mha``, ``.mhd`` and ``.nrrd`` (``.nii.gz`` always is, ``.nii`` never).

    Raises
    ------
    ValueError
        Shape mismatch, non-integer, negative or too large labels (above ``LABEL_MAX``), or an unsupported suffix.
    FileExistsError
        The file exists and ``overwrite`` is False, or (``.mhd``) a data file of the same stem that belongs to
        another header is in the way. Without ``overwrite`` the name is taken atomically: of two processes
        writing the same new file at once, exactly one succeeds and the other gets this error.
    PermissionError
        The folder cannot be written to; the message names ``path``.
    OSError
        The file could not be written completely (full disk, quota, file-size limit): the written file is
        verified (complete, and its voxels read back with the same hash) before it replaces anything, so the
        previous file is unchanged.
    """
    arr = np.asarray(labels)
    if arr.shape != like.shape:
        raise ValueError(f"labels shape {arr.shape} does not match the image shape {like.shape}")
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers, got dtype {arr.dtype}; use labels.astype(np.uint8)")
    lo, top = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    if lo < 0:
        raise ValueError(f"labels must be >= 0, got {lo}; nothing was written to {path}")
    if top > LABEL_MAX:
        raise ValueError(
            f"labels hold the value {top}, above the largest label a file stores ({LABEL_MAX}); nothing was "
            f"written to {path}. Renumber the labels first (e.g. skimage.segmentation.relabel_sequential)"
        )
    arr = arr.astype(label_dtype(top), copy=False)
    image = to_sitk(arr, like, orientation=like.source_orientation)
    return _atomic_write(image, Path(path), overwrite=overwrite, compress=compress)


def write_volume(path: str | os.PathLike, volume: Volume, *, overwrite: bool = False, compress: bool = True) -> Path:
    """Write a volume (e.g. a phantom or a resampled CT) in its source orientation, atomically."""
    image = to_sitk(volume.array, volume, orientation=volume.source_orientation)
    return _atomic_write(image, Path(path), overwrite=overwrite, compress=compress)


__all__ = ["atomic_output", "write_bytes_atomic", "write_labels", "write_volume", "SUPPORTED_SUFFIXES"]
