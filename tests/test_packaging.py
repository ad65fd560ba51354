"""The wheel napari hub installs: built from the source tree, installed into a fresh environment."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_manifest_and_npe2_discovers_it(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    wheel = next(dist.glob("napari_ctorgans-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        manifest = zf.read("napari_ctorgans/napari.yaml").decode()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
        starter = "napari_ctorgans/models/starter.safetensors"  # the built-in model ships, under 10 MB
        starter_size = zf.getinfo(starter).file_size if starter in names else None
        sample = {n: zf.getinfo(n).file_size for n in names if n.startswith("napari_ctorgans/samples/")}
    assert "name: napari-ctorgans" in manifest  # a real file, not a dangling link
    assert "napari.manifest" in entry_points and "napari_ctorgans:napari.yaml" in entry_points
    assert "napari_ctorgans/_napari/reader.py" in names
    assert starter_size is not None and starter_size < 10_000_000, starter_size
    assert not any(n.startswith("tests/") for n in names)
    # the sample CT of the demo and File > Open Sample ships with its reference labels and its credit, nothing else
    assert set(sample) == {f"napari_ctorgans/samples/{f}" for f in (
        "__init__.py", "README.md", "abdomen_3mm.nii.gz", "abdomen_3mm_ctorg.nii.gz")}, sorted(sample)
    assert sum(sample.values()) < 2_500_000, sample
    assert not any("abdomen_contrast" in n or n.endswith((".nii", ".nii.gz")) and "/samples/" not in n for n in names)

    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # npe2 only (the package's own heavy dependencies are not needed to read its manifest)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "npe2"], check=True, capture_output=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    code = (
        "from npe2 import PluginManager\n"
        "pm = PluginManager(); pm.discover()\n"
        "m = pm.get_manifest('napari-ctorgans')\n"
        "print(m.display_name, len(m.contributions.readers), len(m.contributions.writers),"
        " len(m.contributions.sample_data))\n"
    )
    out = subprocess.run([str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.split() == ["CT", "Organs", "1", "2", "2"]  # writers: label images, DICOM-SEG/RTSTRUCT; samples: real CT, phantom
