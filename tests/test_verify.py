"""Geometric verification: matches, transforms, boxes, rotation/scale/mirror, rejection."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import photo
from PIL import Image, ImageOps

from picorigin import _verify
from picorigin._features.local import compute


@pytest.fixture(scope="module")
def original():
    return photo("astronaut").resize((1024, 1024), Image.Resampling.LANCZOS)


@pytest.fixture(scope="module")
def indexed(original):
    return compute(original)


def _check(query_image, indexed, **kwargs):
    query = compute(query_image, query=True)
    result = _verify.verify(query, indexed, **kwargs)
    assert result is not None
    return result, _verify.describe(result, query.size, indexed.size)


def test_crop_is_partial_with_the_crop_box(original, indexed):
    box = (100, 200, 600, 700)  # keeps 24 % of the area
    result, described = _check(original.crop(box), indexed)
    assert described["kind"] == "partial"
    assert described["inliers"] >= 30 and 0 < described["score"] < 1
    assert described["query_box"] == pytest.approx([0, 0, 500, 500], abs=4)
    assert described["match_box"] == pytest.approx(list(box), abs=6)
    assert described["query_overlap"] == pytest.approx(1.0, abs=0.02)
    assert described["match_overlap"] == pytest.approx(0.24, abs=0.02)
    assert described["rotation"] == pytest.approx(0, abs=1)
    assert described["scale"] == pytest.approx(1, abs=0.03)
    assert not described["mirror"]
    # transform maps query pixels to match pixels: the crop's origin lands on the box corner
    t = np.array(described["transform"])
    corner = t @ [0, 0, 1]
    assert corner[:2] / corner[2] == pytest.approx([100, 200], abs=5)


def test_resized_copy_is_near_duplicate_with_scale(original, indexed):
    _, described = _check(original.resize((400, 400)), indexed)
    assert described["kind"] == "near_duplicate"
    assert described["scale"] == pytest.approx(400 / 1024, rel=0.03)
    assert described["match_box"] == pytest.approx([0, 0, 1024, 1024], abs=8)


def test_rotation_sign_and_angle(original, indexed):
    # PIL turns counter-clockwise for positive angles; so does the reported rotation.
    for angle in (10, -12):
        _, described = _check(original.rotate(angle, Image.Resampling.BICUBIC), indexed)
        assert described["rotation"] == pytest.approx(angle, abs=1)


def test_mirror_is_found_and_reported(original, indexed):
    result, described = _check(ImageOps.mirror(original), indexed)
    assert described["mirror"] and result.mirror
    assert described["rotation"] == pytest.approx(0, abs=1)
    t = np.array(described["transform"])
    assert np.linalg.det(t[:2, :2]) < 0  # a reflection
    assert described["match_box"] == pytest.approx([0, 0, 1024, 1024], abs=8)
    # Without the mirror features it is not found.
    query = compute(ImageOps.mirror(original), query=True)
    assert _verify.verify(query, indexed, mirror=False) is None


def test_mirrored_and_turned_copy(original, indexed):
    _, described = _check(ImageOps.mirror(original).rotate(-8, Image.Resampling.BICUBIC), indexed)
    assert described["mirror"] and described["rotation"] == pytest.approx(-8, abs=1)


def test_pasted_into_a_scene_gives_the_paste_box(original, indexed):
    scene = photo("coffee").resize((1200, 800))
    scene.paste(original.resize((400, 400)), (700, 300))
    _, described = _check(scene, indexed)
    assert described["kind"] == "partial"
    assert described["query_box"] == pytest.approx([700, 300, 1100, 700], abs=8)
    assert described["query_overlap"] == pytest.approx(400 * 400 / (1200 * 800), abs=0.01)
    assert described["match_overlap"] == pytest.approx(1.0, abs=0.02)


def test_unrelated_photos_are_rejected(indexed):
    for name in ("coffee", "chelsea", "camera", "moon"):
        query = compute(photo(name), query=True)
        assert _verify.verify(query, indexed) is None


def test_word_cell_matching_agrees_with_brute_force(original, indexed):
    crop = original.crop((300, 300, 800, 800))
    query = compute(crop, query=True)
    # Cells from a fake 4-level quantiser: the first byte of each descriptor.
    q_cells = query.descriptors[:, 0].astype(np.int64) // 64
    m_cells = indexed.descriptors[:, 0].astype(np.int64) // 64
    qi, mi = _verify.match_by_words(query.descriptors, q_cells, indexed.descriptors, m_cells)
    assert len(qi) > 50 and len(set(mi.tolist())) == len(mi)  # one-to-one
    assert (q_cells[qi] == m_cells[mi]).all()
    bf_q, bf_m = _verify.match_brute_force(query.descriptors, indexed.descriptors)
    shared = set(zip(qi.tolist(), mi.tolist())) & set(zip(bf_q.tolist(), bf_m.tolist()))
    assert len(shared) > 0.5 * len(qi)
    result = _verify.verify(query, indexed, query_cells=q_cells, match_cells=m_cells,
                            mirror=False)
    assert result is not None and result.inliers >= _verify.MIN_INLIERS


def test_collapsed_fits_are_rejected():
    # Every query point matched to one and the same match point: scale ~0, must not verify.
    src = np.random.default_rng(1).uniform(0, 600, (60, 2))
    dst = np.tile([[100.0, 100.0]], (60, 1)) + np.random.default_rng(2).normal(0, 0.5, (60, 2))
    assert _verify.fit(src, dst, (640, 640)) is None


def test_score_is_monotonic():
    scores = [_verify.score(n) for n in (12, 30, 100, 1000)]
    assert scores == sorted(scores) and 0 < scores[0] < scores[-1] < 1


def _cell_matches_by_hand(query, query_cells, match, match_cells, ratio, max_distance):
    """match_by_words spelled out: per query keypoint the nearest descriptor of its cell (the
    first of equals), the ratio test against the second, then one query keypoint per match
    keypoint (the nearest, the first of equals), ordered by match keypoint."""
    def hamming(a, b):
        return int(np.unpackbits(a ^ b).sum())

    picked = []
    for i, cell in enumerate(query_cells):
        same = [j for j in range(len(match)) if match_cells[j] == cell]
        dists = sorted((hamming(query[i], match[j]), j) for j in same)
        if not dists:
            continue
        best, j = dists[0]
        if best <= max_distance and (len(dists) == 1 or best < ratio * dists[1][0]):
            picked.append((j, best, i))
    kept = {}
    for j, d, i in sorted(picked):
        kept.setdefault(j, i)
    return np.array(list(kept.values()), np.int64), np.array(list(kept), np.int64)


def test_cell_matching_of_many_images_is_each_one_matched_by_hand():
    rng = np.random.default_rng(3)
    query = rng.integers(0, 256, (60, 32), dtype=np.uint8)
    query_cells = rng.integers(0, 6, 60)
    images = []
    for size in (40, 0, 1, 25):
        descriptors = rng.integers(0, 256, (size, 32), dtype=np.uint8)
        cells = rng.integers(0, 6, size)
        if size:  # near copies of some query descriptors, mostly in their cells
            rows = rng.choice(60, min(size, 20), replace=False)
            flips = rng.random((len(rows), 32)) < 0.02
            descriptors[: len(rows)] = query[rows] ^ (flips * rng.integers(1, 256, flips.shape))
            cells[: len(rows) - 2] = query_cells[rows[:-2]]
        images.append((descriptors, cells))
    got = _verify.match_by_words_many(query, query_cells, images, ratio=0.8, max_distance=64)
    assert len(got) == 4 and sum(len(q) for q, _ in got) > 10
    for (descriptors, cells), (qi, mi) in zip(images, got):
        want_q, want_m = _cell_matches_by_hand(query, query_cells, descriptors, cells, 0.8, 64)
        assert np.array_equal(qi, want_q) and np.array_equal(mi, want_m)
