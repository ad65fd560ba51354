"""Shared fixtures: real CT from ../shared/data (skipped with a reason when absent) and phantoms."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# keep napari settings and Qt's runtime dir inside the checkout
os.environ.setdefault("XDG_RUNTIME_DIR", str(ROOT / ".runtime" / "xdg"))
os.environ.setdefault("NAPARI_CONFIG", str(ROOT / ".runtime" / "napari" / "settings.yaml"))
os.environ.setdefault("QT_API", "pyqt6")
Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)

DATA_DIR = Path(os.environ.get("CTORGANS_DATA", ROOT.parent / "shared" / "data"))
CT_DIR = DATA_DIR / "ct"


def pytest_addoption(parser):
    parser.addoption("--run-long", action="store_true",
                     help="also run the tests marked long (over five minutes each; left out by default)")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` (a ten-minute training run) keep the default run within its time budget; they run
    with ``--run-long`` (or CTORGANS_LONG_TESTS=1), and the skip reason says so."""
    if config.getoption("--run-long") or os.environ.get("CTORGANS_LONG_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="long test, left out of the default run: bash scripts/test.sh --run-long -k "
                                   "NAME runs it")
    for item in items:
        if "long" in item.keywords:
            item.add_marker(skip)


def data_file(name: str) -> Path:
    """Path of a file in ../shared/data/ct, skipping the test when it is missing."""
    path = CT_DIR / name
    if not path.exists():
        pytest.skip(f"real CT data not available: {path} is missing (set CTORGANS_DATA to the data folder)")
    return path


@pytest.fixture(scope="session")
def abdomen_3mm():
    import napari_ctorgans as ct

    return ct.read_volume(data_file("abdomen_3mm.nii.gz"))


@pytest.fixture(scope="session")
def abdomen_3mm_labels():
    import napari_ctorgans as ct

    return ct.read_labels(data_file("abdomen_3mm_ctorg.nii.gz"))


@pytest.fixture(scope="session")
def chest_3mm():
    import napari_ctorgans as ct

    return ct.read_volume(data_file("chest_3mm.nii.gz"))


@pytest.fixture(scope="session")
def abdomen_dicom():
    import napari_ctorgans as ct

    return ct.read_volume(data_file("abdomen_dicom"))


@pytest.fixture(scope="session")
def abdomen_dicom_labels():
    import napari_ctorgans as ct

    return ct.read_labels(data_file("abdomen_dicom_ctorg.nii.gz"))


@pytest.fixture(scope="session")
def phantom():
    import napari_ctorgans as ct

    return ct.make_phantom(seed=0)


@pytest.fixture
def one_torch_thread():
    """Small models run fastest on one torch thread (and the machine is shared with other test processes)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
