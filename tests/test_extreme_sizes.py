"""Every signal on images of extreme shape (1x1, 1xN, Nx1, 2x2000, 6x5000, 30000x1).

The local stage once raised ``cv2.error ... inv_scale_x > 0`` on any image of aspect ratio near
640:1 or more: ORB's pyramid rounds the thin side to 0 pixels. Each signal must compute
something sane (no keypoints where none can be found) or raise an ``ImageError``.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from picorigin import _compare, _crop, _framed
from picorigin._features import colour, fingerprint, local, windows

SIZES = [(1, 1), (2, 1), (3, 3), (1, 640), (640, 1), (2, 2000), (6, 5000), (5000, 6),
         (30000, 1), (1, 30000), (40, 3000), (63, 63)]


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut").resize((320, 320))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_local_features_of_a_thin_or_tiny_image(size):
    image = noise(*size)
    for features in (local.compute(image), local.compute(image, query=True),
                     local.compute_dense(image)):
        assert features.size == size
        assert features.points.shape == (len(features), 2)
        assert features.descriptors.shape == (len(features), local.DESCRIPTOR_BYTES)
        if len(features):  # only an image upscaled to a square working frame has keypoints
            assert (features.points >= 0).all() and (features.points <= size).all()
    if min(size) * local.WORKING_SIDE / max(size) < 2 * local._BORDER:
        assert len(local.compute(image)) == 0  # no room for ORB's border: nothing to find


def test_a_strip_just_wide_enough_has_keypoints():
    # The guard must not cost real pictures: a 70-pixel-high working strip still has keypoints.
    strip = photo("astronaut").resize((640, 70))
    assert len(local.compute(strip)) > 20
    assert len(local.compute(photo("astronaut").resize((640, 60)))) == 0


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_global_signals_of_a_thin_or_tiny_image(size):
    image = noise(*size)
    code = fingerprint.compute(image)
    assert code.code.shape == (fingerprint.BITS // 8,) and code.code.dtype == np.uint8
    assert all(c.shape == (16, 16) and np.isfinite(c).all()
               for c in fingerprint.query_coefficients(image))
    palette = colour.compute(image)
    assert palette.ndim == 2 and palette.shape[1] == 4 and np.isfinite(palette).all()
    assert 0 < palette[:, 3].sum() <= 1.0001  # shares of the picture
    boxes = windows.compute(image)
    assert boxes.ndim == 2 and boxes.shape[1] == 4
    assert ((boxes >= 0) & (boxes <= 1)).all()
    probe_boxes, _ = _framed.window_probes(image)
    assert len(probe_boxes) == len(boxes)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_crop_and_compare_with_a_thin_or_tiny_image(size, astronaut):
    image = noise(*size)
    assert _crop.locate(image, astronaut) is None
    assert _crop.locate(astronaut, image) is None
    for a, b in ((image, astronaut), (astronaut, image)):
        assert _compare.compare(a, b) == {"matched": False, "inliers": 0}
    itself = _compare.compare(image, image)
    # Noise upscaled to a square frame matches itself; a strip has no keypoints to match.
    assert itself["matched"] == (min(size) * 5 > max(size) > 3)
    if itself["matched"]:
        assert itself["a_box"] == itself["b_box"] == [0, 0, *size]
