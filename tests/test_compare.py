"""What changed between two matched images: alignment, crop, colour shift, edited regions."""

from __future__ import annotations

import pytest
from helpers import photo
from PIL import Image, ImageEnhance, ImageOps

from picorigin._compare import compare


@pytest.fixture(scope="module")
def astronaut():
    return photo("astronaut")


@pytest.fixture(scope="module")
def pasted(astronaut):
    """The astronaut with a piece of the coffee photo pasted at (300, 60)-(420, 180)."""
    patch = photo("coffee").crop((200, 50, 400, 250)).resize((120, 120))
    edited = astronaut.copy()
    edited.paste(patch, (300, 60))
    return edited


def _covers(outer, inner, slack=6):
    return (outer[0] <= inner[0] + slack and outer[1] <= inner[1] + slack
            and outer[2] >= inner[2] - slack and outer[3] >= inner[3] - slack)


def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def test_pasted_object_is_the_changed_region(astronaut, pasted, tmp_path):
    out = tmp_path / "diff.png"
    result = compare(pasted, astronaut, diff_path=out)
    assert result["matched"] and result["kind"] == "near_duplicate"
    assert result["rotation"] == 0 and result["scale"] == pytest.approx(1, abs=0.01)
    assert not result["mirror"] and not result["colour_shift"]["changed"]
    assert len(result["changed"]) == 1
    region = result["changed"][0]
    paste_box = (300, 60, 420, 180)
    assert _covers(region["a_box"], paste_box) and _iou(region["a_box"], paste_box) > 0.8
    assert region["b_box"] == pytest.approx(region["a_box"], abs=3)
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.width > 2 * picture.height


def test_crop_scale_and_colour_are_reported(astronaut, pasted):
    # A: the edited photo cropped, enlarged 2x and brightened; B: the original.
    a = ImageEnhance.Brightness(pasted.crop((50, 20, 480, 500)).resize((860, 960)))
    a = a.enhance(1.25)
    result = compare(a, astronaut)
    assert result["matched"] and result["kind"] == "partial"
    assert result["b_box"] == pytest.approx([50, 20, 480, 500], abs=6)  # B's crop box
    assert result["scale"] == pytest.approx(2.0, rel=0.03)
    shift = result["colour_shift"]
    assert shift["changed"] and min(shift["mean"]) > 5
    # Only the pasted object differs once the colour change is evened out.
    assert len(result["changed"]) == 1
    assert _iou(result["changed"][0]["b_box"], (300, 60, 420, 180)) > 0.7


def test_boxes_are_in_original_pixels(astronaut, pasted):
    result = compare(pasted.resize((256, 256)), astronaut, size_a=(2048, 2048))
    assert result["matched"]
    assert result["a_box"] == pytest.approx([0, 0, 2048, 2048], abs=16)
    assert result["scale"] == pytest.approx(4.0, rel=0.03)
    assert _iou(result["changed"][0]["a_box"], (1200, 240, 1680, 720)) > 0.6


def test_mirror_is_reported(astronaut):
    result = compare(ImageOps.mirror(astronaut), astronaut)
    assert result["matched"] and result["mirror"] and result["changed"] == []


def test_unrelated_pictures_do_not_match(astronaut):
    assert compare(photo("coffee"), astronaut) == {"matched": False, "inliers": 0}
