"""The colour-histogram appearance baseline: HSV conversion, histogram features, dataset-root features."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest

from streid_lib.colour_histogram import (
    ColourHistogramError,
    colour_histogram_features,
    histogram_features,
    load_images,
    rgb_to_hsv,
)
from streid_lib.features import FeatureSet


def test_rgb_to_hsv_matches_colorsys():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    px[:5] = [[0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0], [0, 0, 255]]
    got = rgb_to_hsv(px)
    want = np.array([colorsys.rgb_to_hsv(*(c / 255.0)) for c in px])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_hard_histogram_of_flat_images_is_known():
    img = np.zeros((2, 128, 64, 3), np.uint8)
    img[0] = (255, 0, 0)  # pure red: hue 0, saturation 1, value 1
    img[1, :64] = (255, 0, 0)
    img[1, 64:] = (0, 0, 0)  # black bottom half: hue 0, saturation 0, value 0
    f = histogram_features(img, stripes=2, bins=(4, 2, 2), soft=False, columns=(0.0, 1.0))
    assert f.shape == (2, 2 * 16)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-6)
    red = 0 * 4 + 1 * 2 + 1  # (hue 0, sat 1, val 1)
    want0 = np.zeros(32)
    want0[[red, 16 + red]] = 1 / np.sqrt(2)
    np.testing.assert_allclose(f[0], want0, atol=1e-7)
    want1 = np.zeros(32)
    want1[[red, 16 + 0]] = 1 / np.sqrt(2)
    np.testing.assert_allclose(f[1], want1, atol=1e-7)


def test_soft_histogram_splits_votes_and_tolerates_small_shifts():
    # A value exactly at a bin centre votes for that bin only; half-way between two centres, half each.
    grey = np.zeros((2, 8, 8, 3), np.uint8)
    grey[0] = 32  # value 0.1255: below the first centre (0.25 for 2 bins), clamped into bin 0
    grey[1] = 128  # value ~0.502: between the centres 0.25 and 0.75 -> about half and half
    f = histogram_features(grey, stripes=1, bins=(1, 1, 2), soft=True, columns=(0.0, 1.0)) ** 2  # Hellinger undone
    np.testing.assert_allclose(f[0], [1.0, 0.0], atol=1e-6)
    assert abs(f[1, 0] - f[1, 1]) < 0.02
    # A slight colour cast moves soft histograms less than hard ones.
    rng = np.random.default_rng(1)
    img = rng.integers(40, 220, size=(1, 128, 64, 3)).astype(np.uint8)
    cast = np.clip(img.astype(np.int64) * [1.06, 1.0, 0.94], 0, 255).astype(np.uint8)
    both = np.concatenate([img, cast])
    hard = histogram_features(both, soft=False)
    soft = histogram_features(both, soft=True)
    assert soft[0] @ soft[1] > hard[0] @ hard[1]


def test_histogram_ignores_pixel_order_within_a_stripe_band():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(1, 128, 64, 3)).astype(np.uint8)
    shuffled = img[:, :, rng.permutation(64)]
    a = histogram_features(img, stripes=4, columns=(0.0, 1.0))
    b = histogram_features(shuffled, stripes=4, columns=(0.0, 1.0))
    np.testing.assert_allclose(a, b, atol=1e-6)
    c = histogram_features(img[:, ::-1], stripes=4, columns=(0.0, 1.0))  # rows reversed: stripes change
    assert not np.allclose(a, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stripes": 0}, "stripes=0"),
        ({"bins": (8, 0, 4)}, "bins"),
        ({"columns": (0.7, 0.3)}, "columns"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ColourHistogramError, match=match):
        histogram_features(np.zeros((1, 16, 8, 3), np.uint8), **kwargs)


def test_bad_images(tmp_path):
    with pytest.raises(ColourHistogramError, match="expected an"):
        histogram_features(np.zeros((16, 8, 3), np.uint8))
    bad = tmp_path / "x.jpg"
    bad.write_text("not an image")
    with pytest.raises(ColourHistogramError, match="x.jpg"):
        load_images([bad])


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    from streid_lib.campus import generate_campus

    return generate_campus(tmp_path_factory.mktemp("ch") / "tiny", "tiny", seed=0, progress=False).root


def test_features_of_a_dataset_root(tiny_root):
    from streid_lib.metadata import read_dataset_root

    fs = colour_histogram_features(tiny_root)
    splits = read_dataset_root(tiny_root)
    assert isinstance(fs, FeatureSet)
    assert fs.query_f.shape == (len(splits.query), 6 * 128)
    assert fs.gallery_f.shape[0] == len(splits.gallery)
    np.testing.assert_array_equal(fs.gallery.frames, splits.gallery.frames)
    np.testing.assert_allclose(np.linalg.norm(fs.query_f, axis=1), 1.0, rtol=1e-5)
    assert fs.provenance["features"] == "colour_histogram" and fs.provenance["soft"] is True
    # Same identity in another camera is more similar on average than another identity.
    s = fs.query_f @ fs.gallery_f.T
    same = fs.query.pids[:, None] == fs.gallery.pids[None]
    other_cam = fs.query.cams[:, None] != fs.gallery.cams[None]
    assert s[same & other_cam].mean() > s[~same & other_cam].mean() + 0.05
    centred = colour_histogram_features(tiny_root, center="train")
    assert (centred.query_f @ centred.gallery_f.T).min() < 0 <= s.min()
    with_train = colour_histogram_features(tiny_root, center="train", train=True)
    np.testing.assert_array_equal(with_train.query_f, centred.query_f)
    assert len(with_train.train_f) == len(splits.train) and not centred.has_train
    with pytest.raises(ColourHistogramError, match="center"):
        colour_histogram_features(tiny_root, center="mean")
