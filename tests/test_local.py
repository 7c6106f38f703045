"""Local features: ORB keypoints in original pixels, capped, with mirror-image ones for queries."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import photo
from PIL import ImageOps

from picorigin._features import local


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut")


def test_index_signal_is_capped_and_typed(astronaut):
    features = local.compute(astronaut)
    assert 0.8 * local.INDEX_FEATURES <= len(features) <= local.INDEX_FEATURES
    assert features.points.shape == (len(features), 2) and features.points.dtype == np.float32
    assert features.descriptors.shape == (len(features), 32)
    assert features.descriptors.dtype == np.uint8
    assert features.size == astronaut.size and features.mirrored is None


def test_points_are_in_original_pixels(astronaut):
    reduced = astronaut.resize((256, 256))
    features = local.compute(reduced, (2048, 2048))
    assert features.size == (2048, 2048)
    # Keypoints spread over the whole original frame, not over the 256-pixel working image.
    assert features.points.max() > 1500 and features.points.min() >= 0
    assert features.points.max() <= 2048


def test_keypoints_cover_the_whole_picture(astronaut):
    # The grid keeps keypoints in every quarter, so a crop of any corner keeps indexed points.
    points = local.compute(astronaut).points
    w, h = astronaut.size
    quarters = {(x >= w / 2, y >= h / 2) for x, y in points}
    assert len(quarters) == 4
    for right in (False, True):
        for bottom in (False, True):
            share = np.mean([(x >= w / 2) == right and (y >= h / 2) == bottom for x, y in points])
            assert share > 0.1


def test_query_signal_carries_mirror_features(astronaut):
    query = local.compute(astronaut, query=True)
    assert len(query) >= 0.8 * local.QUERY_FEATURES
    mirrored = query.mirrored
    assert mirrored is not None and mirrored.flipped and not query.flipped
    # The mirror image's features are the features of the flipped picture (its keypoints are
    # the query's, mirrored, rather than detected again: all but a few agree).
    flipped = local.compute(ImageOps.mirror(astronaut), query=True)
    same = {bytes(d) for d in mirrored.descriptors} & {bytes(d) for d in flipped.descriptors}
    assert len(same) >= 0.97 * len(flipped)
    distance = np.abs(mirrored.points[:, None, :] - flipped.points[None, :, :]).sum(axis=2)
    assert np.mean(distance.min(axis=1) < 1.0) >= 0.97


def test_small_images_are_enlarged_enough_to_have_features():
    tiny = photo("coffee").resize((150, 100))
    features = local.compute(tiny)
    assert len(features) > 100
    assert features.points[:, 0].max() <= 150 and features.points[:, 1].max() <= 100


def test_compute_is_deterministic_and_accepts_arrays(astronaut):
    a = local.compute(astronaut)
    b = local.compute(np.asarray(astronaut))
    assert np.array_equal(a.descriptors, b.descriptors) and np.array_equal(a.points, b.points)


def test_blank_image_has_no_features():
    from PIL import Image

    features = local.compute(Image.new("RGB", (300, 200), (120, 120, 120)), query=True)
    assert len(features) == 0 and features.descriptors.shape == (0, 32)
    assert len(features.mirrored) == 0


def test_dense_signal_adds_a_coarse_scale_that_finds_tight_crops():
    from picorigin import _verify

    original = photo("coffee")  # 600 x 400
    indexed = local.compute(original)
    # A quarter of the picture, enlarged as a tight crop shared at a decent size would be.
    crop = original.crop((300, 0, 600, 200)).resize((1200, 800))
    dense = local.compute_dense(crop)
    assert local.DENSE_FEATURES < len(dense) <= local.DENSE_FEATURES + local.COARSE_FEATURES
    assert dense.mirrored is not None and len(dense.mirrored) == len(dense)
    assert dense.points.max(axis=0)[0] <= 1200 and dense.size == (1200, 800)
    both = _verify.verify(dense, indexed, direct=True, min_inliers=5)
    fine_only = local.compute_array(crop, n_features=local.DENSE_FEATURES,
                                    side=local.DENSE_SIDE, grid=local.QUERY_GRID)
    alone = _verify.verify(fine_only, indexed, direct=True, min_inliers=5)
    assert both is not None and both.inliers >= 12
    assert both.inliers > (alone.inliers if alone is not None else 0)
