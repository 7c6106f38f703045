""""Larger than the query" and "upscaled" through a real search, on a soft camera-like photo.

The case this guards: a 2000x1250 macro shot with a defocused background, searched with its own
500-px reduction, was reported as an upscale (``larger_than_query: false, upscaled: true``), and
so were its 666 and 1333 px reductions. Indexed here: the original, its reductions, and 2x
enlargements of the 500-px file, one of them sharpened afterwards.
"""

from __future__ import annotations

import io

import pytest
from helpers import jpeg_bytes, soft_photo
from PIL import Image, ImageFilter

from picorigin import Engine

LANCZOS, BICUBIC = Image.Resampling.LANCZOS, Image.Resampling.BICUBIC


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def to_side(image: Image.Image, side: int, kernel) -> Image.Image:
    return image.resize((side, round(side * image.height / image.width)), kernel)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("soft-photo")
    original = soft_photo()
    files = {"original": original}
    for side in (1333, 666, 500):
        files[f"down{side}"] = jpeg_bytes(to_side(reopen(original), side, LANCZOS), 85)
    small = reopen(files["down500"])
    files["up2"] = jpeg_bytes(to_side(small, 1000, BICUBIC), 90)
    files["up2_sharpened"] = jpeg_bytes(to_side(small, 1000, BICUBIC).filter(
        ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0)), 90)
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.jpg"
        paths[name].write_bytes(data)
    with Engine(tmp_path_factory.mktemp("db"), settings={"stages": "", "workers": 1}) as engine:
        engine.index([str(p) for p in paths.values()])
        ids = {name: engine.search(str(path), k=1).matches[0].id for name, path in paths.items()}
        yield engine, paths, ids


def claims(engine, path, ids):
    result = engine.search(str(path), k=10)
    names = {v: k for k, v in ids.items()}
    found = {names[m.id]: (m.larger_than_query, m.extra["upscaled"]) for m in result.matches}
    return result, found


def test_searching_with_the_small_copy(collection):
    engine, paths, ids = collection
    result, found = claims(engine, paths["down500"], ids)
    assert set(found) == set(ids)
    assert found["original"] == (True, False)        # larger, and not an upscale
    assert found["down1333"] == (True, False)        # a reduction is never an upscale
    assert found["down666"] == (True, False)
    assert found["up2"] == (False, True)
    assert found["up2_sharpened"] == (False, True)
    assert found["down500"] == (False, False)        # the query's own file
    assert result.extra["query_upscaled"] is False
    assert result.extra["likely_original"]["id"] == ids["original"]


def test_searching_with_the_enlargement(collection):
    engine, paths, ids = collection
    result, found = claims(engine, paths["up2"], ids)
    assert result.extra["query_upscaled"] is True    # the query is the 500-px copy enlarged
    assert found["down500"] == (False, False)        # smaller than the query: never its upscale
    assert found["down666"] == (False, False)
    assert found["original"] == (True, False)
    assert found["down1333"] == (True, False)
    assert found["up2_sharpened"] == (False, True)
