"""The training cases of the built-in starter model: domain-randomised phantoms plus weakly labelled real thoraces.

``ctorgans train --preset starter`` without cases trains on :func:`starter_cases`. The evaluation scans
(``ct/abdomen_3mm.nii.gz`` and the DICOM series ``ct/abdomen_dicom``) are never used, not even through their
automatic labels: only the thorax scans of the data folder are, with the labellers' lungs and bone and every other
soft-tissue voxel inside the body ignored (:func:`auto_labelled_case`).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import Case, auto_labelled_case, default_cache_dir, load_cached, save_cached

__all__ = ["starter_cases", "STARTER_STAGES", "STARTER_PRESETS", "STARTER_PHANTOMS", "STARTER_REAL_SCANS",
           "EVALUATION_SCANS", "default_data_dir"]

#: the starter model's training stages in order, each from the previous one's ``last.pt``: preset -> the anatomy
#: version(s) of the phantoms (synth.ANATOMY_VERSIONS) it trains on when given no cases (:func:`starter_cases`)
STARTER_STAGES: dict[str, int | tuple[int, ...]] = {"starter": 3, "starter-refine": 3, "starter-adapt": (2, 3)}
#: the training presets of the starter model's stages: without cases they train on :func:`starter_cases`
STARTER_PRESETS = tuple(STARTER_STAGES)
#: how many domain-randomised phantoms (seeds 0..N-1) the starter model is trained on
STARTER_PHANTOMS = 48
#: real scans (relative to the data folder) added with automatic lung and bone labels
STARTER_REAL_SCANS = ("ct/chest_3mm.nii.gz",)
#: scans kept for evaluation only: never trained on
EVALUATION_SCANS = ("ct/abdomen_3mm.nii.gz", "ct/abdomen_dicom")
#: anatomy version of the first stages' phantoms (synth.ANATOMY_VERSIONS); part of the cache key
STARTER_ANATOMY = STARTER_STAGES["starter"]


def default_data_dir() -> Path | None:
    """``$CTORGANS_DATA`` or ``../shared/data`` beside a source checkout, if present."""
    env = os.environ.get("CTORGANS_DATA")
    if env:
        return Path(env)
    guess = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    return guess.resolve() if guess.is_dir() else None


def _phantom(seed: int, spacing: float, cache: Path, anatomy: int = STARTER_ANATOMY) -> Case:
    from ..synth import make_random_phantom

    path = cache / f"synth-v{anatomy}-seed{seed}-{spacing:.3f}mm.npz"
    cached = load_cached(path, ("image", "labels"))
    if cached is None:
        vol, labels = make_random_phantom(seed=seed, spacing=spacing, anatomy=anatomy)
        cached = (np.asarray(vol.array), labels)
        save_cached(path, image=cached[0], labels=labels)
    name = f"synth:{seed}" if anatomy == STARTER_ANATOMY else f"synth-v{anatomy}:{seed}"
    return Case(cached[0].astype(np.float32), cached[1], (spacing,) * 3, name)


def starter_cases(data_dir: str | Path | None = None, *, phantoms: int = STARTER_PHANTOMS, spacing: float = 3.0,
                  cache_dir: str | Path | None = None, workers: int | None = None,
                  anatomy: int | Sequence[int] = STARTER_ANATOMY) -> list[Case]:
    """The starter model's training cases: ``phantoms`` random phantoms, then the real thorax scans found.

    Parameters
    ----------
    data_dir : path, optional
        Folder with ``ct/chest_3mm.nii.gz`` (default :func:`default_data_dir`); without it, phantoms only.
    phantoms : int
        Number of domain-randomised phantoms (seeds 0..phantoms-1).
    spacing : float
        Working spacing in mm.
    cache_dir : path, optional
        Where generated phantoms are kept (default: the case cache); the next run reads them back.
    workers : int, optional
        Processes generating phantoms (default: every core).
    anatomy : int or sequence of int
        Anatomy version of the phantoms (:data:`napari_ctorgans.synth.ANATOMY_VERSIONS`); several versions give
        ``phantoms`` phantoms of each, in that order.

    Returns
    -------
    list of Case
    """
    from ..io import read_volume

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    n = workers or max(1, min(len(os.sched_getaffinity(0)), 8))
    jobs = [(s, v) for v in ([anatomy] if isinstance(anatomy, int) else anatomy) for s in range(phantoms)]
    with ProcessPoolExecutor(n) as pool:
        cases = list(pool.map(_phantom, [s for s, _ in jobs], [spacing] * len(jobs), [cache] * len(jobs),
                              [v for _, v in jobs]))
    root = Path(data_dir) if data_dir else default_data_dir()
    for rel in STARTER_REAL_SCANS if root else ():
        if (root / rel).exists():
            cases.append(auto_labelled_case(read_volume(root / rel), spacing=spacing))
    return cases
