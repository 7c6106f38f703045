"""The colour signature: dominant CIELAB colours, their distance, and the --colour filter."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from picorigin._errors import SettingError
from picorigin._features import colour


def _reencoded(image: Image.Image, side: int, quality: int = 70) -> Image.Image:
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_lab_conversion_matches_reference_values():
    # reference CIELAB (D65) values of sRGB white, black, red and mid grey
    lab = colour.rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [128, 128, 128]],
                                     dtype=np.uint8))
    expected = [[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20], [53.59, 0, 0]]
    np.testing.assert_allclose(lab, expected, atol=0.05)


def test_lab_round_trip_is_exact_for_every_sampled_colour():
    rgb = np.random.default_rng(0).integers(0, 256, (2000, 3)).astype(np.uint8)
    np.testing.assert_array_equal(colour.lab_to_rgb(colour.rgb_to_lab(rgb)), rgb)


def test_flat_image_has_one_colour():
    palette = colour.compute(Image.new("RGB", (300, 200), (30, 90, 200)))
    assert palette.shape == (1, 4)
    assert palette[0, 3] == pytest.approx(1.0)
    # colours are clustered at 5 bits a channel: within half a step of the truth
    assert np.abs(colour.lab_to_rgb(palette[0, :3]).astype(int) - (30, 90, 200)).max() <= 4


def test_two_colour_image_has_both_shares():
    array = np.zeros((100, 100, 3), np.uint8)
    array[:, :70] = (220, 30, 30)
    array[:, 70:] = (240, 240, 240)
    palette = colour.compute(Image.fromarray(array))
    assert palette.shape[0] == 2
    np.testing.assert_allclose(palette[:, 3], [0.7, 0.3], atol=0.02)
    assert palette[0, 1] > 50  # the larger one is the red (a* strongly positive)


def test_photo_palette_is_sorted_normalised_and_deterministic():
    image = photo("coffee")
    palette = colour.compute(image)
    assert palette.dtype == np.float32 and 1 <= palette.shape[0] <= colour.COLOURS
    assert palette[:, 3].sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(palette[:, 3]) <= 0)
    np.testing.assert_array_equal(colour.compute(image), palette)


def test_distance_is_small_for_a_copy_and_large_for_another_photo():
    coffee = colour.compute(photo("coffee"))
    copy = colour.compute(_reencoded(photo("coffee"), 200))
    rocket = colour.compute(photo("rocket"))
    assert colour.distance(coffee, coffee) == 0
    assert colour.distance(coffee, copy) < 5
    assert colour.distance(coffee, rocket) > 4 * colour.distance(coffee, copy)
    assert colour.distance(coffee, rocket) == pytest.approx(colour.distance(rocket, coffee))


def test_presence_finds_the_colour_that_is_there():
    array = np.full((60, 60, 3), 250, np.uint8)
    array[:30] = (200, 30, 30)
    palette = colour.compute(Image.fromarray(array))
    assert colour.presence(palette, colour.parse_colour("red")) > 0.3
    assert colour.presence(palette, colour.parse_colour("white")) > 0.3
    assert colour.presence(palette, colour.parse_colour("blue")) == 0
    assert colour.presence(palette, colour.parse_colour("green")) == 0


def test_parse_colour_accepts_names_and_hex_only():
    np.testing.assert_allclose(colour.parse_colour("#FFFFFF"), [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(colour.parse_colour("ff0000"), colour.parse_colour("#ff0000"))
    assert colour.parse_colour(" Blue ").shape == (3,)
    with pytest.raises(SettingError, match="unknown colour"):
        colour.parse_colour("chartreuse-ish")


def test_to_json_is_hex_and_share():
    out = colour.to_json(colour.compute(photo("chelsea")))
    assert all(set(entry) == {"hex", "share"} for entry in out)
    assert all(len(entry["hex"]) == 7 and entry["hex"].startswith("#") for entry in out)
    assert sum(entry["share"] for entry in out) == pytest.approx(1.0, abs=0.01)
