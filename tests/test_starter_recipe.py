"""The starter model's recipe: its cases (phantoms + weakly labelled thorax, never an evaluation scan), cached
phantoms, and a deterministic run."""

import numpy as np
import pytest
import torch

import napari_ctorgans as ct
from conftest import DATA_DIR, data_file
from napari_ctorgans.organs import IGNORE_LABEL
from napari_ctorgans.train.checkpoint import read_checkpoint
from napari_ctorgans.train.starter import EVALUATION_SCANS, STARTER_ANATOMY, STARTER_REAL_SCANS, starter_cases


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A case cache holding the first two starter phantoms, generated once."""
    path = tmp_path_factory.mktemp("cache")
    starter_cases(None, phantoms=2, cache_dir=path, workers=2)
    return path


def test_starter_cases_are_phantoms_and_the_weak_thorax_never_an_evaluation_scan(cache):
    data_file("chest_3mm.nii.gz")
    cases = starter_cases(DATA_DIR, phantoms=2, cache_dir=cache, workers=1)
    assert [c.name for c in cases[:2]] == ["synth:0", "synth:1"]
    weak = cases[2:]
    assert len(weak) == len(STARTER_REAL_SCANS) and "chest_3mm" in weak[0].name
    assert not any(e.split("/")[-1].split(".")[0] in c.name for c in cases for e in EVALUATION_SCANS)
    values = set(np.unique(weak[0].labels).tolist())
    assert values == {0, 3, 5, IGNORE_LABEL}  # lungs and bone labelled, soft tissue ignored
    assert len(list(cache.glob("synth-*.npz"))) == 2  # the phantoms were read back, not made again
    from napari_ctorgans.synth import make_random_phantom

    vol, labels = make_random_phantom(seed=1, anatomy=STARTER_ANATOMY)
    assert np.array_equal(vol.array, cases[1].image) and np.array_equal(labels, cases[1].labels)


def test_the_starter_preset_is_deterministic(tmp_path, cache):
    cases = starter_cases(None, phantoms=2, cache_dir=cache, workers=1)
    weights = []
    for run in ("a", "b"):
        cfg = ct.TrainConfig.preset("starter", iterations=3, bn_recalibration=2, checkpoint_every=3,
                                    output_dir=str(tmp_path / run))
        for _ in ct.train(cfg, cases):
            pass
        weights.append(read_checkpoint(tmp_path / run / "last.pt")["weights"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_damaged_cached_phantom_is_made_again(tmp_path, cache):
    good = next(cache.glob("synth-*seed0-*.npz"))
    (tmp_path / good.name).write_bytes(good.read_bytes()[:1000])  # truncated, as by a full disk
    case = starter_cases(None, phantoms=1, cache_dir=tmp_path, workers=1)[0]
    again = starter_cases(None, phantoms=1, cache_dir=cache, workers=1)[0]
    assert np.array_equal(case.image, again.image) and np.array_equal(case.labels, again.labels)
    assert (tmp_path / good.name).read_bytes() == good.read_bytes()  # rebuilt in place


def test_starter_cases_of_several_anatomy_versions_hold_each_in_turn(tmp_path, cache):
    from napari_ctorgans.synth import make_random_phantom

    for seed0 in cache.glob(f"synth-v{STARTER_ANATOMY}-seed0-*.npz"):  # made by the fixture: read back
        (tmp_path / seed0.name).write_bytes(seed0.read_bytes())
    other = 2 if STARTER_ANATOMY != 2 else 3
    cases = starter_cases(None, phantoms=1, cache_dir=tmp_path, workers=1, anatomy=(STARTER_ANATOMY, other))
    assert [c.name for c in cases[:2]] == ["synth:0", f"synth-v{other}:0"]  # then the weak thorax, if found
    vol, labels = make_random_phantom(seed=0, anatomy=other)
    assert np.array_equal(vol.array, cases[1].image) and np.array_equal(labels, cases[1].labels)
    assert not np.array_equal(cases[0].labels, cases[1].labels)  # the same seed, another anatomy
    made = sorted(p.name.split("-seed")[0] for p in tmp_path.glob("synth-*.npz"))
    assert made == sorted([f"synth-v{STARTER_ANATOMY}", f"synth-v{other}"])
