"""File > Open Sample: the real abdomen CT, opened through the plugin's npe2 sample contribution."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ctorgans as ct

pytestmark = pytest.mark.gui


def test_open_sample_offers_the_real_ct_beside_the_phantom(make_napari_viewer):
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    contributions = PluginManager.instance().get_manifest("napari-ctorgans").contributions.sample_data
    assert [c.key for c in contributions] == ["abdomen", "phantom"]
    viewer.open_sample("napari-ctorgans", "abdomen")
    image, labels = viewer.layers
    assert (image.__class__.__name__, labels.__class__.__name__) == ("Image", "Labels")
    vol, reference = ct.load_sample()
    np.testing.assert_array_equal(image.data, vol.array)  # HU untouched
    np.testing.assert_array_equal(labels.data, reference)
    np.testing.assert_allclose(image.scale, vol.spacing)
    np.testing.assert_allclose(labels.translate, image.translate)
    assert {"liver", "bladder", "lungs", "kidneys", "bone"} <= set(labels.features["organ"])
