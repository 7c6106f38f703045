"""Test helpers importable from every test module (``pythonpath = tests`` in the pytest config)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from skimage import data

# Photographs (not drawings or synthetic patterns) from skimage.data.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
# Photos kept out of every index: queries that must find no copies.
UNKNOWN = ("camera", "coins", "moon")


def photo(name: str) -> Image.Image:
    """A sample photo as an RGB PIL image."""
    array = getattr(data, name)()
    if array.dtype != np.uint8:
        array = (255 * (array / array.max())).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
