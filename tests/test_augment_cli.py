"""``ctorgans augment`` on the real abdomen CT."""

from __future__ import annotations

import json

import numpy as np

import napari_ctorgans as ct
from napari_ctorgans.augment import AugmentParams, augment
from napari_ctorgans.cli import main

from conftest import data_file


def test_cli_writes_samples_matching_the_api(tmp_path, capsys):
    image = data_file("abdomen_3mm.nii.gz")
    labels = data_file("abdomen_3mm_ctorg.nii.gz")
    params = AugmentParams(elastic_magnitude=0, displacement=(-5, 5))
    params.save(tmp_path / "p.json")
    out = tmp_path / "out"
    code = main(["augment", str(image), "--labels", str(labels), "--params", str(tmp_path / "p.json"), "--n", "2",
                 "--seed", "10", "--out-shape", "48", "64", "64", "-o", str(out)])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "params.json", "sample_000_image.nii.gz", "sample_000_labels.nii.gz", "sample_001_image.nii.gz",
        "sample_001_labels.nii.gz", "transforms.json",
    ]  # fmt: skip
    assert AugmentParams.load(out / "params.json") == params
    vol, lab = ct.read_volume(image), ct.read_labels(labels)
    ref, ref_lab = augment(vol.array.astype(np.float32), lab.array, params, seed=11, out_shape=(48, 64, 64))
    got = ct.read_volume(out / "sample_001_image.nii.gz")
    got_lab = ct.read_labels(out / "sample_001_labels.nii.gz")
    assert got.shape == (48, 64, 64)
    np.testing.assert_allclose(got.array, ref, atol=1e-6)
    np.testing.assert_array_equal(got_lab.array, ref_lab)
    np.testing.assert_allclose(got.spacing, vol.spacing)
    records = json.loads((out / "transforms.json").read_text())
    assert [r["seed"] for r in records] == [10, 11]
    assert "wrote 2 samples" in capsys.readouterr().out


def test_cli_bad_params_file(tmp_path, capsys):
    image = data_file("abdomen_3mm.nii.gz")
    (tmp_path / "p.json").write_text(json.dumps({"noise_sigma": [10, 5]}))
    code = main(["augment", str(image), "--params", str(tmp_path / "p.json"), "-o", str(tmp_path / "o")])
    assert code == 1
    assert "noise_sigma is an inverted range" in capsys.readouterr().err
