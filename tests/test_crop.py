"""Locating a crop by its pixels, on real photos: plain crops, ambiguous gradients, strangers."""

import io

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from picorigin import _crop


def _thumbnail(image: Image.Image, side: int = 256) -> Image.Image:
    # As the engine stores it: JPEG q80, longer side 256.
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@pytest.mark.parametrize("name, box", [
    ("chelsea", (338, 0, 451, 300)),  # a strip of defocused background: no ORB corners
    ("coffee", (0, 0, 300, 200)),
    ("astronaut", (128, 256, 384, 512)),
])
def test_a_crop_is_located_in_the_thumbnail(name, box):
    original = photo(name)
    crop = original.crop(box).resize(((box[2] - box[0]) * 2, (box[3] - box[1]) * 2))
    found = _crop.locate(crop, _thumbnail(original))
    assert found is not None
    w, h = original.size
    truth = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
    assert np.allclose(found.box, truth, atol=0.02)
    assert found.correlation >= _crop.MIN_CORRELATION and found.lead >= _crop.MIN_LEAD


def test_another_photo_is_not_located():
    for query, picture in (("coffee", "chelsea"), ("rocket", "astronaut"), ("moon", "coins")):
        crop = photo(query).crop((40, 40, 240, 200))
        assert _crop.locate(crop, _thumbnail(photo(picture))) is None


def test_a_plain_gradient_fits_everywhere_and_is_not_claimed():
    ramp = np.tile(np.linspace(20, 230, 400, dtype=np.float32), (300, 1))
    picture = Image.fromarray(ramp.astype(np.uint8)).convert("RGB")
    crop = picture.crop((100, 50, 200, 250))  # the same along every column: no unique place
    assert _crop.locate(crop, _thumbnail(picture)) is None
    flat = Image.new("RGB", (100, 100), (80, 90, 100))
    assert _crop.locate(flat, _thumbnail(picture)) is None


def test_describe_maps_the_query_onto_its_box():
    match = _crop.CropMatch((0.5, 0.25, 1.0, 0.75), correlation=0.995, lead=0.2)
    described = _crop.describe(match, (400, 300), (1600, 1200))
    assert described["match_box"] == [800, 300, 1600, 900]
    t = np.array(described["transform"])
    assert np.allclose(t @ [0, 0, 1], [800, 300, 1])
    assert np.allclose(t @ [400, 300, 1], [1600, 900, 1])
    assert described["kind"] == "partial" and described["match_overlap"] == 0.25
    assert described["scale"] == 0.5 and described["rotation"] == 0.0 and not described["mirror"]
