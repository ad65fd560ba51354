"""Training cases: (image, labels) at the working spacing, from memory, files, folders or the labelers.

A :class:`Case` holds a CT image in HU (float32) and its label map (uint8, ``IGNORE_LABEL`` where an organ was not
labelled), both resampled once to the working spacing. Cases read from files are cached on disk (``.npz`` keyed by
the files' paths, sizes and modification times and the spacing), so the next run starts at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..organs import IGNORE_LABEL
from ..volume import Volume

__all__ = [
    "Case", "load_case", "load_cases", "find_cases", "auto_labelled_case", "random_crop", "default_cache_dir",
]

AIR_HU = -1024.0
_NIFTI = re.compile(r"\.(nii\.gz|nii|nrrd|mha|mhd)$", re.IGNORECASE)


@dataclass
class Case:
    """One training or validation case at the working spacing.

    Attributes
    ----------
    image : ndarray (Z, Y, X) float32
        CT in HU.
    labels : ndarray (Z, Y, X) uint8
        CT-ORG labels; ``IGNORE_LABEL`` (255) marks voxels the loss ignores.
    spacing : tuple of 3 float
    name : str
    """

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    name: str = "case"

    def __post_init__(self) -> None:
        if self.image.shape != self.labels.shape:
            raise ValueError(f"case {self.name!r}: image shape {self.image.shape} != labels shape {self.labels.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape)  # type: ignore[return-value]

    def organs(self) -> list[int]:
        """Label values present (background and ignored voxels excluded)."""
        vals = np.unique(self.labels)
        return [int(v) for v in vals if v not in (0, IGNORE_LABEL)]


def default_cache_dir() -> Path:
    import os

    base = os.environ.get("CTORGANS_CACHE") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-ctorgans" / "cases"


def load_cached(path: Path, keys: Sequence[str]) -> tuple[np.ndarray, ...] | None:
    """The arrays ``keys`` of a cache entry (``.npz``), or None when it is missing or damaged (then rebuilt)."""
    try:
        with np.load(path) as z:
            return tuple(z[k] for k in keys)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def save_cached(path: Path, **arrays: np.ndarray) -> None:
    """Write a cache entry atomically (a temporary file of this process, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _grid_text(vol: Volume) -> str:
    return (f"shape {tuple(vol.shape)}, spacing {tuple(round(float(v), 4) for v in vol.spacing)} mm, origin "
            f"{tuple(round(float(v), 3) for v in vol.origin)}, direction {np.round(vol.direction, 4).tolist()}")


def _check_same_grid(image: Volume, labels: Volume) -> None:
    """Refuse labels that are not on the CT's voxel grid: their voxels would teach the wrong place (or, where they
    do not reach, background). A difference below a tenth of a voxel is rounding in the files, not another grid."""
    tol = 0.1 * min(float(s) for s in image.spacing)
    same = (image.shape == labels.shape
            and np.allclose(image.spacing, labels.spacing, rtol=1e-3, atol=1e-4)
            and np.allclose(image.origin, labels.origin, atol=tol)
            and np.allclose(image.direction, labels.direction, atol=1e-3))
    if not same:
        raise ValueError(
            f"the labels {labels.path or '(given as a volume)'} are not on the grid of the CT "
            f"{image.path or '(given as a volume)'}: labels {_grid_text(labels)}; CT {_grid_text(image)}. A label "
            "map is taught voxel for voxel: give the labels made for this CT, or resample them onto it first "
            "(ct.resample(labels, like=ct_volume, kind='labels'))"
        )


def _to_working(image: Volume, labels: Volume, spacing: float) -> tuple[np.ndarray, np.ndarray, tuple]:
    from napari_ctorgans import resample

    if not image.same_grid(labels):
        _check_same_grid(image, labels)
        labels = image.with_array(labels.array)  # the same voxels, geometry written a hair differently
    target = (float(spacing),) * 3
    if np.allclose(image.spacing, target, atol=1e-3):
        img, lab = image, labels
    else:
        img = resample(image, target, kind="image")
        lab = resample(labels, target, kind="labels")
    lab_arr = np.asarray(lab.array)
    if lab_arr.dtype.kind == "f" or lab_arr.min() < 0 or lab_arr.max() > 255:
        raise ValueError("labels must be integers in 0..255 (CT-ORG values, 255 for 'not labelled')")
    return np.asarray(img.array, dtype=np.float32), lab_arr.astype(np.uint8), tuple(img.spacing)


def load_case(case: Any, *, spacing: float = 3.0, cache_dir: str | Path | None = None, name: str | None = None) -> Case:
    """Turn one case description into a :class:`Case` at the working spacing.

    Parameters
    ----------
    case : Case, (Volume, labels), (image_path, labels_path), or a dict with "image" and "labels"
        ``labels`` may be a Volume or an array on the image's grid.
    spacing : float
        Working spacing in mm.
    cache_dir : str or Path, optional
        Where resampled file cases are cached (default: ``~/.cache/napari-ctorgans/cases``); ``False`` disables it.
    name : str, optional

    Returns
    -------
    Case
    """
    if isinstance(case, Case):
        if not np.allclose(case.spacing, (spacing,) * 3, atol=1e-3):
            vol = Volume(case.image, spacing=case.spacing)
            return load_case((vol, case.labels), spacing=spacing, name=case.name)
        return case
    if isinstance(case, dict):
        case = (case.get("image"), case.get("labels"))
    if not isinstance(case, (tuple, list)) or len(case) != 2:
        raise TypeError(
            "a case must be a (Volume, labels) pair, a pair of file paths, a dict with 'image' and 'labels', "
            f"or a Case; got {type(case).__name__}"
        )
    image, labels = case
    if isinstance(image, Volume):
        if isinstance(labels, Volume):
            lab_vol = labels
        else:
            arr = np.asarray(labels)
            if arr.shape != image.shape:
                raise ValueError(f"labels shape {arr.shape} does not match the image shape {image.shape}")
            lab_vol = image.with_array(arr)
        img, lab, sp = _to_working(image, lab_vol, spacing)
        return Case(img, lab, sp, name or Path(image.path).name if image.path else (name or "case"))
    if isinstance(image, (str, Path)) and isinstance(labels, (str, Path)):
        return _load_files(Path(image), Path(labels), spacing=spacing, cache_dir=cache_dir, name=name)
    raise TypeError(f"a case must pair a Volume with labels or two file paths, got ({type(image).__name__}, "
                    f"{type(labels).__name__})")


def _load_files(image: Path, labels: Path, *, spacing: float, cache_dir, name: str | None) -> Case:
    from ..io import read_labels, read_volume

    for p, what in ((image, "image"), (labels, "labels")):
        if not p.exists():
            raise FileNotFoundError(f"{what} file not found: {p}")
    cache = None
    if cache_dir is not False:
        key = hashlib.sha1(f"{_file_key(image)}#{_file_key(labels)}#{float(spacing):.6f}".encode()).hexdigest()[:20]
        cache = Path(cache_dir or default_cache_dir()) / f"{key}.npz"
        cached = load_cached(cache, ("image", "labels", "spacing"))
        if cached is not None:
            return Case(cached[0], cached[1], tuple(float(s) for s in cached[2]), name or image.name)
    img, lab, sp = _to_working(read_volume(image), read_labels(labels), spacing)
    if cache is not None:
        save_cached(cache, image=img, labels=lab, spacing=np.asarray(sp))
    return Case(img, lab, sp, name or image.name)


def find_cases(folder: str | Path) -> list[tuple[Path, Path]]:
    """(image, labels) file pairs in a folder laid out as CT-ORG or as the Medical Segmentation Decathlon / nnU-Net.

    * CT-ORG: ``volume-N.nii.gz`` with ``labels-N.nii.gz`` side by side.
    * MSD / nnU-Net: ``imagesTr/`` and ``labelsTr/`` (an image may carry the ``_0000`` channel suffix), usually with
      a ``dataset.json`` whose ``training`` list is used when present.
    * Labelled scans: ``NAME.nii.gz`` (or ``.nii``, ``.nrrd``, ``.mha``, ``.mhd``) beside ``NAME_labels.nii.gz``,
      as ``ctorgans label`` and the cohort runner write them.

    Raises
    ------
    FileNotFoundError
        When the folder does not exist or holds no recognisable pairs.
    ValueError
        A damaged ``dataset.json``, or a label map beside two scans of the same name.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"cases folder not found: {folder}")
    pairs: list[tuple[Path, Path]] = []
    images_tr, labels_tr = folder / "imagesTr", folder / "labelsTr"
    if images_tr.is_dir() and labels_tr.is_dir():
        ds = folder / "dataset.json"
        try:
            listed = json.loads(ds.read_text()).get("training") if ds.exists() else None
        except (json.JSONDecodeError, AttributeError) as exc:
            where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
            raise ValueError(f"{ds}: not a valid dataset.json{where} ({exc}); fix it or remove it (the pairs in "
                             "imagesTr/ and labelsTr/ are then found by name)") from None
        if listed:
            for entry in listed:
                img = folder / entry["image"]
                if not img.exists():
                    img = _with_channel(img)
                pairs.append((img, folder / entry["label"]))
        else:
            for lab in sorted(p for p in labels_tr.iterdir() if _NIFTI.search(p.name)):
                stem, ext = _split(lab.name)
                for cand in (images_tr / f"{stem}_0000{ext}", images_tr / lab.name):
                    if cand.exists():
                        pairs.append((cand, lab))
                        break
    else:
        for img in sorted(folder.glob("volume-*")):
            m = re.match(r"volume-(.+?)(\.nii\.gz|\.nii|\.nrrd|\.mha|\.mhd)$", img.name)
            if m:
                lab = folder / f"labels-{m.group(1)}{m.group(2)}"
                if lab.exists():
                    pairs.append((img, lab))
        pairs = pairs or _labelled_scans(folder)
        pairs.sort(key=lambda p: _natural(p[0].name))
    missing = [str(p) for pair in pairs for p in pair if not p.exists()]
    if missing:
        raise FileNotFoundError(f"files listed for {folder} are missing: {missing[:3]}")
    if not pairs:
        raise FileNotFoundError(
            f"no training cases found in {folder}: expected CT-ORG files (volume-N.nii.gz + labels-N.nii.gz), "
            "MSD/nnU-Net folders imagesTr/ and labelsTr/, or scans beside their NAME_labels.nii.gz; or give the "
            "(image, labels) file pairs themselves"
        )
    return pairs


def _labelled_scans(folder: Path) -> list[tuple[Path, Path]]:
    """Scans beside their ``NAME_labels.nii.gz`` (the names ``ctorgans label`` writes): ``NAME.<suffix>``."""
    from ..io import SUPPORTED_SUFFIXES

    pairs = []
    for lab in sorted(folder.glob("*_labels.*")):
        stem, ext = _split(lab.name)
        if not ext or not lab.is_file():
            continue
        images = [folder / f"{stem[: -len('_labels')]}{e}" for e in SUPPORTED_SUFFIXES if e != ".dcm"]
        found = [p for p in images if p.is_file()]
        if len(found) > 1:
            raise ValueError(f"{lab} could belong to {', '.join(p.name for p in found)}; keep one scan per label "
                             "map in the folder, or give the pairs with --case CT LABELS")
        if found:
            pairs.append((found[0], lab))
    return pairs


def _split(name: str) -> tuple[str, str]:
    m = _NIFTI.search(name)
    return (name[: m.start()], name[m.start():]) if m else (name, "")


def _with_channel(path: Path) -> Path:
    stem, ext = _split(path.name)
    return path.with_name(f"{stem}_0000{ext}")


def _natural(s: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]


def load_cases(cases: Any, *, spacing: float = 3.0, cache_dir: str | Path | None = None) -> list[Case]:
    """Load a folder (see :func:`find_cases`), a single case, or a sequence of cases."""
    if cases is None:
        return []
    if isinstance(cases, (str, Path)):
        return [load_case(p, spacing=spacing, cache_dir=cache_dir) for p in find_cases(cases)]
    if isinstance(cases, Case) or (isinstance(cases, tuple) and len(cases) == 2 and not isinstance(cases[0], tuple)
                                   and not isinstance(cases[0], Case)):
        return [load_case(cases, spacing=spacing, cache_dir=cache_dir)]
    if not isinstance(cases, Iterable):
        raise TypeError(f"cases must be a folder, a case or a list of cases, got {type(cases).__name__}")
    return [load_case(c, spacing=spacing, cache_dir=cache_dir) for c in cases]


def auto_labelled_case(volume: Volume, *, spacing: float = 3.0, unlabelled: str = "ignore",
                       soft_tissue_hu: Sequence[float] = (-20.0, 250.0)) -> Case:
    """A weakly supervised case: the unsupervised labelers' output (lungs and bone) as training labels.

    Parameters
    ----------
    volume : Volume
        CT in HU.
    spacing : float
        Working spacing in mm.
    unlabelled : {"ignore", "background"}
        What the other organs become. "ignore" marks soft tissue inside the body that the labelers did not label
        (HU in ``soft_tissue_hu``: where liver, kidneys and bladder may be) as ``IGNORE_LABEL``, so the loss neither
        rewards nor punishes any organ there; "background" calls everything unlabelled background.
    soft_tissue_hu : (low, high)

    Returns
    -------
    Case
    """
    import napari_ctorgans as ct

    if unlabelled not in ("ignore", "background"):
        raise ValueError(f"unlabelled must be 'ignore' or 'background', got {unlabelled!r}")
    labels = np.asarray(ct.auto_label(volume)).astype(np.uint8)
    if unlabelled == "ignore":
        body = np.asarray(ct.label_body(volume), dtype=bool)
        hu = np.asarray(volume.array)
        soft = body & (labels == 0) & (hu >= soft_tissue_hu[0]) & (hu <= soft_tissue_hu[1])
        labels[soft] = IGNORE_LABEL
    name = f"auto:{Path(volume.path).name}" if volume.path else "auto-labelled"
    return load_case((volume, labels), spacing=spacing, name=name)


def random_crop(case: Case, size: Sequence[int], rng: np.random.Generator, *, foreground_prob: float = 0.5,
                context: Sequence[int] | None = None, organ: int | None = None,
                centre_organs: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A random crop of ``size`` (plus ``context`` voxels on each side); padded with air where the case is smaller.

    With probability ``foreground_prob`` the crop is centred on a random labelled voxel (organs are small
    compared with the body, and this keeps every class in the batches). The organ is drawn at random, or is the
    ``organ``-th (modulo their number) of the organs the case labels: the training loop gives the crops of one
    batch different organs, so small organs are in most batches. ``centre_organs`` limits the organs drawn to
    those values, where the case labels any of them.
    """
    size = np.asarray(size, dtype=int)
    ctx = np.zeros(3, dtype=int) if context is None else np.asarray(context, dtype=int)
    full = size + 2 * ctx
    shape = np.asarray(case.shape)
    centre = None
    if foreground_prob > 0 and rng.random() < foreground_prob:
        fg = _foreground_index(case, rng, organ, centre_organs)
        if fg.size:
            centre = np.unravel_index(fg[rng.integers(fg.size)], case.shape)
            centre = np.asarray(centre) + rng.integers(-(size // 4), size // 4 + 1)
    if centre is None:
        lo = np.minimum(size // 2, shape // 2)
        hi = np.maximum(shape - (size - size // 2), lo)
        centre = np.array([rng.integers(a, b + 1) for a, b in zip(lo, hi)])
    start = np.asarray(centre) - full // 2
    img = np.full(tuple(full), AIR_HU, dtype=np.float32)
    lab = np.zeros(tuple(full), dtype=np.uint8)
    src_lo = np.maximum(start, 0)
    src_hi = np.minimum(start + full, shape)
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - start
        dst_hi = dst_lo + (src_hi - src_lo)
        s = tuple(slice(a, b) for a, b in zip(src_lo, src_hi))
        d = tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))
        img[d] = case.image[s]
        lab[d] = case.labels[s]
    return img, lab


def _foreground_index(case: Case, rng: np.random.Generator, organ: int | None = None,
                      centre_organs: Sequence[int] | None = None) -> np.ndarray:
    """Flat indices of one organ's voxels: random (class-balanced: small organs are drawn as often) or given;
    among ``centre_organs`` when the case labels any of them."""
    cached = getattr(case, "_fg_index", None)
    if cached is None:
        flat = case.labels.ravel()
        cached = {v: np.flatnonzero(flat == v) for v in case.organs()}
        case._fg_index = cached  # type: ignore[attr-defined]
    chosen = [v for v in cached if centre_organs is not None and v in centre_organs]
    per_class = [cached[v] for v in (chosen or cached)]
    if not per_class:
        return np.empty(0, dtype=np.int64)
    k = int(rng.integers(len(per_class))) if organ is None else int(organ) % len(per_class)
    return per_class[k]
