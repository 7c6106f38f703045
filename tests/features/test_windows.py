"""Framed pictures: windows bounded by long straight edges, on real photos."""

import numpy as np
import pytest
from helpers import photo
from PIL import Image, ImageDraw

from picorigin._features import windows


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def _shares(box, size):
    w, h = size
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)


@pytest.mark.parametrize("inner, host, at", [
    ("astronaut", "coffee", (150, 60)),
    ("chelsea", "rocket", (20, 200)),
    ("coffee", "hubble_deep_field", (230, 150)),
])
def test_a_photo_pasted_into_another_is_framed(inner, host, at):
    canvas = photo(host).resize((640, 480))
    pasted = photo(inner).resize((300, 220))
    canvas.paste(pasted, at)
    truth = _shares((at[0], at[1], at[0] + 300, at[1] + 220), canvas.size)
    boxes = windows.compute(canvas)
    assert max(_iou(box, truth) for box in boxes) > 0.9


def test_a_photo_in_a_page_layout_is_framed():
    page = Image.new("RGB", (750, 1334), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 750, 120), fill=(245, 245, 245))
    for y in range(700, 1200, 40):  # lines of text: busy, but not a frame
        draw.text((30, y), "lorem ipsum dolor sit amet, consectetur " * 2, fill=(40, 40, 40))
    shown = photo("rocket").resize((750, 500))
    page.paste(shown, (0, 160))
    boxes = windows.compute(page)
    truth = _shares((0, 160, 750, 660), page.size)
    assert _iou(boxes[0], truth) > 0.95


def test_boxes_are_shares_of_the_image_and_few():
    boxes = windows.compute(np.asarray(photo("astronaut")))
    assert boxes.shape[1] == 4 and len(boxes) <= windows.MAX_WINDOWS
    assert np.all((boxes >= 0) & (boxes <= 1))
    assert np.all(boxes[:, 2] - boxes[:, 0] >= windows.MIN_SIDE - 0.01)
    assert np.all(boxes[:, 3] - boxes[:, 1] >= windows.MIN_SIDE - 0.01)


def test_a_plain_image_has_no_windows():
    assert windows.compute(Image.new("RGB", (400, 300), (90, 120, 200))).shape == (0, 4)
    grey = np.full((300, 400), 128, np.uint8)
    assert windows.compute(grey).shape == (0, 4)
