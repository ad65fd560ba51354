"""Scanner storage as it comes: pydicom-edited copies of the real DICOM series with padding outside the
reconstruction circle (Pixel Padding Value and Range Limit set or not), unsigned pixel data with an intercept, a
rescale slope of 0.5 and HU clipped by 12-bit storage. Each is read, passes the CT check and gives the labels of
the unpadded series; the stored values are never changed."""

from __future__ import annotations

import numpy as np
import pytest
from _padding_cases import outside_circle, write_dicom_copy
from conftest import data_file

import napari_ctorgans as ct
from napari_ctorgans.labelers._common import as_ct

SLICES = slice(5, 15)  # ten contiguous slices of the 20 keep the tests fast; 512 x 512 in-plane as stored


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    src, root = data_file("abdomen_dicom"), tmp_path_factory.mktemp("dicom")

    def make(name, **options):
        return ct.read_volume(write_dicom_copy(src, root / name, slices=SLICES, **options))

    return make


@pytest.fixture(scope="module")
def plain(copies):
    """The unpadded series (signed, intercept -1024) with its automatic and predicted labels."""
    vol = copies("plain")
    return vol, ct.auto_label(vol), ct.predict(vol)


def _circle(vol) -> np.ndarray:
    return outside_circle(vol.shape[1:], vol.spacing[1:])


def _dice(a, b) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * np.logical_and(a, b).sum() / total


def _same_labels(ref, out, outside, what):
    assert not np.any(out[:, outside]), what
    for organ in sorted(set(np.unique(ref)) | set(np.unique(out)) - {0}):
        d = _dice((ref == organ) & ~outside[None], (out == organ) & ~outside[None])
        assert d >= 0.99, (what, organ, d)


def _reads_as_air(vol, base, mask=None):
    """The labellers' and the network's view of ``vol``: air in the padding, the unpadded series' HU elsewhere."""
    pad = np.broadcast_to(_circle(vol), vol.shape) if mask is None else mask
    filled = as_ct(vol)[0]
    assert np.all(filled[pad] == -1024)
    assert np.array_equal(filled[~pad], base.array[~pad])


def test_padding_named_by_pixel_padding_value_is_masked_and_labels_are_unchanged(copies, plain):
    """GE's storage: signed, intercept -1024, -2000 stored outside the circle (-3024 HU), Pixel Padding Value set."""
    base, auto, predicted = plain
    vol = copies("ge", pad_hu=-3024, padding_tag=True)
    assert vol.metadata["pixel_padding_hu"] == [-3024.0, -3024.0]
    assert vol.array.min() == -3024  # stored as read
    outside = _circle(vol)
    assert np.array_equal(ct.padding_mask(vol), np.broadcast_to(outside, vol.shape))
    stored = vol.array.copy()
    _same_labels(auto, ct.auto_label(vol), outside, "auto_label")
    _same_labels(predicted, ct.predict(vol), outside, "predict")
    assert np.array_equal(vol.array, stored)
    # the napari layer keeps the tag (its geometry metadata), so the Label tab's volume knows the padding
    again = ct.Volume.from_geometry(vol.array, vol.geometry())
    assert again.metadata["pixel_padding_hu"] == (-3024.0, -3024.0)


@pytest.mark.parametrize("pad_hu", [-2048, -2000])
def test_padding_values_of_other_scanners_read_as_air(copies, plain, pad_hu):
    """Signed, intercept 0, -2048 or -2000 outside the circle and no tag: the labellers see air there."""
    base, auto, _ = plain
    vol = copies(f"pad{-pad_hu}", pad_hu=pad_hu, intercept=0.0)
    outside = _circle(vol)
    assert "pixel_padding_hu" not in vol.metadata and vol.array.min() == pad_hu
    ct.check_ct(vol)
    _reads_as_air(vol, base)
    if pad_hu == -2000:  # the labellers see the same values whatever the padding value: one run shows it
        _same_labels(auto, ct.auto_label(vol), outside, f"auto_label, padding {pad_hu}")


def test_padding_range_and_tissue_valued_padding_come_from_the_tags(copies, plain):
    """Pixel Padding Range Limit: the range [value, limit] in HU; padding stored as 0 HU is masked from the tag."""
    base = plain[0]
    ranged = copies("range", pad_hu=-3024, padding_tag=True, range_limit_hu=-2024)
    assert ranged.metadata["pixel_padding_hu"] == [-3024.0, -2024.0]
    water = copies("water", pad_hu=0, padding_tag=True)
    assert water.metadata["pixel_padding_hu"] == [0.0, 0.0]
    outside = _circle(water)
    mask = ct.padding_mask(water)
    assert np.all(mask[:, outside]) and np.count_nonzero(mask[:, ~outside]) < 1e-4 * mask.size
    _reads_as_air(water, base, mask)  # what the labellers and the network see: the -3024 HU case above


def test_unsigned_storage_with_an_intercept_and_a_fractional_slope_read_as_the_same_hu(copies, plain):
    base = plain[0]
    unsigned = copies("unsigned", unsigned=True)  # 0..4095 stored, intercept -1024
    assert unsigned.array.dtype.kind == "i" and np.array_equal(unsigned.array, base.array)
    half = copies("slope", unsigned=True, slope=0.5)  # stored twice the HU + 1024
    assert half.array.dtype == np.float32  # fractional rescale: float32, not a float64 copy of the scan
    assert np.array_equal(half.array, base.array)
    air = copies("unsigned-air-padding", unsigned=True, pad_hu=-1024, padding_tag=True)  # padding stored as 0
    assert air.metadata["pixel_padding_hu"] == [-1024.0, -1024.0]
    ct.check_ct(unsigned), ct.check_ct(half), ct.check_ct(air)
    assert np.array_equal(as_ct(air)[0][:, ~_circle(air)], base.array[:, ~_circle(air)])


@pytest.mark.parametrize("clip_hu, bits, unsigned", [(3071, 12, True), (1023, 16, False)])
def test_hu_clipped_by_12_bit_storage_pass_the_check(copies, plain, clip_hu, bits, unsigned):
    """12-bit storage clips at 3071 (0..4095 with intercept -1024); some exports clip at 1023, with padding too."""
    base = plain[0]
    vol = copies(f"clip{clip_hu}", unsigned=unsigned, bits_stored=bits, clip_hu=clip_hu,
                 pad_hu=None if unsigned else -3024)
    assert vol.array.max() == min(clip_hu, base.array.max())
    ct.check_ct(vol)
    filled = as_ct(vol)[0]
    inside = ~_circle(vol)
    assert np.array_equal(filled[:, inside], np.minimum(base.array, clip_hu)[:, inside])
