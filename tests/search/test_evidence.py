"""Copy claims need a picture to stand on: blank and near-uniform images claim no copy, while
plain but real photographs still do."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin import Engine
from picorigin._features import fingerprint


def _blank(width: int, height: int) -> bytes:
    """A transparent PNG flattened on white: every pixel the same."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine(tmp_path_factory.mktemp("db"), settings={"stages": "local"}) as opened:
        opened.add(_blank(400, 300), uri="/blank-1.png")
        opened.add(jpeg_bytes(photo("hubble_deep_field")), uri="/hubble.jpg")
        opened.add(jpeg_bytes(photo("coffee")), uri="/coffee.jpg")
        yield opened


def test_a_blank_picture_is_no_copy_of_another(engine):
    result = engine.search(_blank(500, 420))  # other pixels, the same (empty) fingerprint
    assert result.copies == []


def test_a_plain_dark_photograph_still_finds_its_copies(engine):
    small = photo("hubble_deep_field").resize((256, 256))
    top = engine.search(jpeg_bytes(small, 60)).copies[0]
    assert top.kind == "near_duplicate" and top.uri == "/hubble.jpg"


def test_informative_separates_pictures_from_blank_pages():
    noisy = np.clip(250 + np.random.default_rng(0).normal(0, 1.5, (300, 400)), 0, 255)
    for blank in (Image.open(io.BytesIO(_blank(400, 300))), noisy.astype(np.uint8)):
        assert not fingerprint.informative(fingerprint.coefficients(blank))
    for name in ("hubble_deep_field", "moon", "coffee"):
        assert fingerprint.informative(fingerprint.coefficients(photo(name)))
