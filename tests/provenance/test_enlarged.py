"""The traces an enlargement leaves: the block grid of a smaller JPEG, nearest-neighbour repeats."""

from __future__ import annotations

import io

import pytest
from helpers import jpeg_bytes, photo, soft_photo
from PIL import Image, ImageFilter

from picorigin._provenance import enlarged
from picorigin._provenance.enlarged import grid_score, measure, source_side
from picorigin._provenance.origin import is_upscale

BICUBIC, LANCZOS = Image.Resampling.BICUBIC, Image.Resampling.LANCZOS


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def resized(image: Image.Image, factor: float, kernel=BICUBIC) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), kernel)


SHARPEN = ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0)


def record(image: Image.Image) -> dict:
    """A JPEG's record as ``index`` stores it: size, format and the measured traces."""
    return {"width": image.width, "height": image.height, "format": "JPEG",
            "signals": measure(image)}


def side(width: int) -> dict:
    return {"width": width, "height": width}


@pytest.mark.parametrize("name", ["coffee", "rocket", "hubble_deep_field"])
def test_an_enlarged_jpeg_carries_its_grid_at_the_size_ratio(name):
    small = reopen(jpeg_bytes(resized(photo(name), 0.5, LANCZOS), 85))   # a JPEG copy, decoded
    for make in (lambda im: resized(im, 2), lambda im: resized(im, 2, LANCZOS),
                 lambda im: resized(im, 1.5), lambda im: resized(im, 3),
                 lambda im: resized(im, 2).filter(SHARPEN)):             # sharpened after
        larger = record(reopen(jpeg_bytes(make(small), 90)))
        assert is_upscale(larger, side(small.width)), larger
        # It carries the small copy's detail, more than a copy half that size holds.
        assert not is_upscale(larger, side(small.width // 2))


@pytest.mark.parametrize("name", ["coffee", "rocket", "hubble_deep_field"])
def test_genuine_copies_carry_no_grid(name):
    original = reopen(jpeg_bytes(photo(name), 95))
    traces = record(original)
    for reduced in (0.5, 0.75, 1 / 3):     # as if searched with its reductions
        assert not is_upscale(traces, side(round(original.width * reduced)))
    assert source_side(traces["signals"], original.width) is None


def test_a_soft_noisy_original_and_its_reductions_carry_no_grid():
    original = reopen(soft_photo())
    sizes = (2000, 1333, 666, 500)
    copies = {w: record(reopen(jpeg_bytes(original.resize((w, round(w * 0.625)), LANCZOS), 85)))
              for w in sizes}
    for larger in sizes:
        for smaller in sizes:
            assert not is_upscale(copies[larger], copies[smaller], copies.values()), (
                larger, smaller)


def test_nearest_neighbour_repeats_name_their_factor():
    small = reopen(jpeg_bytes(resized(photo("coffee"), 0.5, LANCZOS), 85))
    for factor in (2, 3):
        larger = resized(small, factor, Image.Resampling.NEAREST)
        traces = measure(reopen(jpeg_bytes(larger, 90)))
        assert traces["nearest_factor"] == factor
        assert source_side(traces, larger.width) == pytest.approx(small.width, abs=1)
    assert "nearest_factor" not in measure(resized(small, 2))


def test_tiny_flat_and_oversized_images():
    assert measure(Image.new("RGB", (20, 20), "red")) == {}
    assert measure(Image.new("L", (600, 400), 128)) == {"jpeg_grids": [], "jpeg_grids_smooth": []}
    assert measure(Image.new("L", (enlarged.MAX_SIDE + 8, 64), 128)) == {}


def test_scores_are_read_at_the_predicted_period_only():
    traces = {"jpeg_grids_smooth": [[16.0, 1.5], [32.1, 2.4]], "jpeg_grids": [[16.0, 0.6]]}
    assert grid_score(traces, 2.0) == 1.5
    assert grid_score(traces, 2.0, "jpeg_grids") == 0.6
    assert grid_score(traces, 2.1) == 0.0                    # 16.8 px: 5 % off
    assert grid_score(traces, 4.0) == 2.4                    # within 1 %
    assert grid_score({}, 2.0) is None                      # never measured
    assert source_side(traces, 1000) == pytest.approx(1000 * 8 / 32.1)   # a strong grid
    assert source_side({"jpeg_grids_smooth": [[16.0, 1.0]]}, 1000) is None  # a weak one
