"""Window matches described: the transform takes the window onto the indexed picture."""

import numpy as np
import pytest
from helpers import photo

from picorigin import _framed, _verify
from picorigin._features import fingerprint


@pytest.mark.parametrize("name", sorted(fingerprint.orientation_name(g)
                                        for g in fingerprint.ORIENTATIONS))
def test_transform_maps_window_pixels_to_the_pixels_they_show(name):
    original = np.asarray(photo("astronaut").resize((120, 80)))  # (h, w, 3)
    element = next(g for g in fingerprint.ORIENTATIONS if fingerprint.orientation_name(g) == name)
    copy = fingerprint.apply_spatial(original, element)
    canvas = np.zeros((300, 400, 3), np.uint8)
    x0, y0 = 100, 50
    canvas[y0 : y0 + copy.shape[0], x0 : x0 + copy.shape[1]] = copy
    box = [x0, y0, x0 + copy.shape[1], y0 + copy.shape[0]]
    described = _framed.describe(box, (400, 300), (120, 80), name, distance=10)
    t = np.array(described["transform"])
    rng = np.random.default_rng(0)
    for _ in range(50):
        qx = rng.uniform(box[0] + 1, box[2] - 1)
        qy = rng.uniform(box[1] + 1, box[3] - 1)
        mx, my, _ = t @ [qx, qy, 1.0]
        # Pixel centres: the query pixel (i, j) spans [j, j+1) x [i, i+1).
        assert np.array_equal(canvas[int(qy), int(qx)], original[int(my), int(mx)])
    assert described["mirror"] == name.startswith("mirror")
    assert described["match_box"] == [0, 0, 120, 80]
    assert described["kind"] == "partial"
    assert described["query_overlap"] == pytest.approx(120 * 80 / (400 * 300), abs=1e-3)


@pytest.mark.parametrize("name", ["rot90", "mirror_rot90", "rot270", "mirror"])
def test_geometry_agrees_with_keypoint_verification(name):
    from PIL import Image

    from picorigin._features import local

    original = photo("astronaut")
    element = next(g for g in fingerprint.ORIENTATIONS if fingerprint.orientation_name(g) == name)
    copy = Image.fromarray(np.ascontiguousarray(
        fingerprint.apply_spatial(np.asarray(original), element)))
    query, match = local.compute(copy, query=True), local.compute(original)
    by_keypoints = _verify.describe(_verify.verify(query, match, direct=True, mirror=True),
                                    query.size, match.size)
    by_window = _framed.describe([0, 0, *copy.size], copy.size, original.size, name, distance=0)
    assert by_window["mirror"] == by_keypoints["mirror"]
    assert abs(by_window["rotation"] - by_keypoints["rotation"]) < 1
    assert by_window["kind"] == "near_duplicate" and by_window["score"] == 1.0


def test_score_and_scale_of_a_small_window():
    half = _framed.describe([10, 10, 70, 50], (200, 100), (120, 80), "identity", distance=32)
    assert half["scale"] == 0.5 and half["rotation"] == 0.0
    assert half["score"] == pytest.approx(0.75)
    assert half["query_overlap"] < _verify.PARTIAL_BELOW and half["kind"] == "partial"
