"""Sample data that ships with the package: one small real CT with its reference labels (evaluation only).

The files and their credit are described in ``README.md`` beside this module (TotalSegmentator test files,
Apache-2.0).
"""

from __future__ import annotations

from pathlib import Path

#: sample name -> (CT file, reference label file), in this folder
SAMPLES: dict[str, tuple[str, str]] = {
    "abdomen": ("abdomen_3mm.nii.gz", "abdomen_3mm_ctorg.nii.gz"),
}

#: one line of credit, printed wherever the sample is shown
CREDIT = "real abdomen CT from the TotalSegmentator test files (Apache-2.0); reference labels by TotalSegmentator v2"


def sample_paths(name: str = "abdomen") -> tuple[Path, Path]:
    """The CT file and the reference label file of a shipped sample.

    Raises
    ------
    ValueError
        ``name`` is not a shipped sample.
    FileNotFoundError
        The files are missing from the installation.
    """
    if name not in SAMPLES:
        raise ValueError(f"no sample named {name!r}; the package ships {', '.join(map(repr, SAMPLES))}")
    folder = Path(__file__).resolve().parent
    paths = tuple(folder / f for f in SAMPLES[name])
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"the sample {name!r} is missing {', '.join(missing)} in {folder}; reinstall napari-ctorgans "
            "(pip install --force-reinstall napari-ctorgans) or, in a source checkout, restore the folder "
            "src/napari_ctorgans/samples from git"
        )
    return paths  # type: ignore[return-value]


def load_sample(name: str = "abdomen"):
    """``(volume, labels)``: a shipped sample CT (:class:`~napari_ctorgans.volume.Volume`, HU) and its reference
    labels (``uint8`` array on the CT's grid, CT-ORG values).

    ``"abdomen"`` (the only one): a real abdomen and pelvis CT, 122 x 101 x 112 voxels at 3 mm, from the
    TotalSegmentator test files (Apache-2.0), with TotalSegmentator v2's labels as reference. An evaluation scan:
    do not train a model on it that you then measure on it.

    Example
    -------
    >>> vol, reference = ct.load_sample()       # the real abdomen, 122 x 101 x 112 at 3 mm
    """
    from ..io import read_labels, read_volume

    ct_path, labels_path = sample_paths(name)
    volume = read_volume(ct_path)
    labels = read_labels(labels_path, like=volume)
    return volume, labels.array if hasattr(labels, "array") else labels
