"""Copydays-style edits: each a pure function, PIL RGB image in, PIL RGB image out.

Randomness (which corner to crop, where to paste, hue shift, noise) comes from a
``numpy.random.Generator`` the caller seeds, so a benchmark run is reproducible.

Edits are grouped into named families. Each family says which stage of a copy detector is
expected to catch it: ``"global"`` families keep the whole picture (a global fingerprint
should match them), ``"local"`` ones lose or move part of it (crops, small rotations, paste-ins,
screenshots: the job of local features).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Rng = np.random.Generator

# ----------------------------------------------------------------------------- edit functions


def resize(image: Image.Image, factor: float) -> Image.Image:
    """Scale both sides by ``factor`` (Lanczos down, bicubic up)."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    method = Image.Resampling.LANCZOS if factor < 1 else Image.Resampling.BICUBIC
    return image.resize(size, method)


def thumbnail(image: Image.Image, side: int = 150) -> Image.Image:
    """Shrink so the longer side is ``side`` px, keeping the aspect ratio."""
    out = image.copy()
    out.thumbnail((side, side), Image.Resampling.LANCZOS)
    return out


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at ``quality`` (PIL's default 4:2:0 chroma subsampling) and decode."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def crop(image: Image.Image, removed: float, where: str, rng: Rng) -> Image.Image:
    """Cut away the fraction ``removed`` of the area.

    ``where``: ``"centre"`` keeps a centred window with both sides scaled by sqrt(1 - removed);
    ``"corner"`` keeps the same window against a random corner; ``"side"`` removes a strip of
    ``removed`` times the width (or height) from one random side.
    """
    w, h = image.size
    if where == "side":
        edge = rng.integers(4)
        if edge < 2:  # left or right strip
            keep = round(w * (1 - removed))
            left = 0 if edge == 0 else w - keep
            return image.crop((left, 0, left + keep, h))
        keep = round(h * (1 - removed))
        top = 0 if edge == 2 else h - keep
        return image.crop((0, top, w, top + keep))
    scale = math.sqrt(1 - removed)
    cw, ch = round(w * scale), round(h * scale)
    if where == "centre":
        left, top = (w - cw) // 2, (h - ch) // 2
    elif where == "corner":
        corner = rng.integers(4)
        left = 0 if corner in (0, 2) else w - cw
        top = 0 if corner in (0, 1) else h - ch
    else:
        raise ValueError(f"unknown crop position {where!r}")
    return image.crop((left, top, left + cw, top + ch))


# The 7 non-identity orientations, named as picorigin reports them (how the copy looks relative
# to the original): "rot90" is a quarter turn clockwise, "mirror_rot90" a left-right mirror image
# then turned a quarter clockwise. PIL's ROTATE_90 turns counter-clockwise, hence ROTATE_270.
ORIENTATIONS = {
    "rot90": (Image.Transpose.ROTATE_270,),
    "rot180": (Image.Transpose.ROTATE_180,),
    "rot270": (Image.Transpose.ROTATE_90,),
    "mirror": (Image.Transpose.FLIP_LEFT_RIGHT,),
    "mirror_rot90": (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_270),
    "mirror_rot180": (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_180),
    "mirror_rot270": (Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.ROTATE_90),
}


def orient(image: Image.Image, name: str) -> Image.Image:
    """Apply one of the 7 non-identity orientations in :data:`ORIENTATIONS`."""
    for step in ORIENTATIONS[name]:
        image = image.transpose(step)
    return image


def rotate_small(image: Image.Image, degrees: float, rng: Rng) -> Image.Image:
    """Rotate by ``degrees`` (random direction), then crop to the largest valid rectangle.

    The kept rectangle has the original aspect ratio and lies wholly inside the rotated photo,
    so no fill colour shows.
    """
    angle = degrees if rng.integers(2) else -degrees
    w, h = image.size
    rotated = image.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    a = math.radians(abs(angle))
    # Largest w' x h' = s*w x s*h rectangle inside the rotated w x h one, centred: both
    # constraints s*(w cos + h sin) <= w and s*(w sin + h cos) <= h must hold.
    s = min(w / (w * math.cos(a) + h * math.sin(a)), h / (w * math.sin(a) + h * math.cos(a)))
    cw, ch = int(w * s), int(h * s)
    left, top = (rotated.width - cw) // 2, (rotated.height - ch) // 2
    return rotated.crop((left + 1, top + 1, left + cw - 1, top + ch - 1))


def grey(image: Image.Image) -> Image.Image:
    """Greyscale (ITU-R 601 luma), stored as RGB."""
    return image.convert("L").convert("RGB")


def sepia(image: Image.Image) -> Image.Image:
    """The classic sepia tone matrix."""
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]])
    pixels = np.asarray(image, dtype=np.float32) @ matrix.T.astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def hue_shift(image: Image.Image, rng: Rng) -> Image.Image:
    """Rotate the hue by 40-80 degrees (random sign), saturation and value untouched."""
    shift = int(rng.uniform(40, 80) / 360 * 256) * (1 if rng.integers(2) else -1)
    h, s, v = image.convert("HSV").split()
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


def brightness_contrast(image: Image.Image, brightness: float, contrast: float) -> Image.Image:
    """Scale brightness, then contrast, by the given factors (1 leaves the image as is)."""
    image = ImageEnhance.Brightness(image).enhance(brightness)
    return ImageEnhance.Contrast(image).enhance(contrast)


def gamma(image: Image.Image, value: float) -> Image.Image:
    """``out = 255 * (in / 255) ** value``."""
    table = [round(255 * (i / 255) ** value) for i in range(256)] * 3
    return image.point(table)


def blur(image: Image.Image) -> Image.Image:
    """Gaussian blur with a radius of 1/400 of the longer side (at least 1.5 px)."""
    return image.filter(ImageFilter.GaussianBlur(max(1.5, max(image.size) / 400)))


def noise(image: Image.Image, rng: Rng, sigma: float = 15.0) -> Image.Image:
    """Add Gaussian noise of standard deviation ``sigma`` (of 255) to every channel."""
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + rng.normal(0, sigma, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def stretch(image: Image.Image, factor: float = 1.3) -> Image.Image:
    """Stretch the width by ``factor``, height unchanged."""
    return image.resize((round(image.width * factor), image.height), Image.Resampling.BICUBIC)


CAPTIONS = (
    "When you finally get the weekend off",
    "Breaking: local photographer stuns the internet",
    "Nobody: / Me at 3 am:",
    "Photo of the day - share if you agree!",
    "This is what happiness looks like",
)


def _font(size: int) -> ImageFont.FreeTypeFont:
    # PIL's built-in scalable font: no downloaded fonts
    return ImageFont.load_default(size=max(8, size))


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, size: int):
    """The largest font <= ``size`` at which ``text`` fits in ``width`` px."""
    while size > 8:
        font = _font(size)
        if draw.textlength(text, font=font) <= width:
            return font
        size = int(size * 0.9)
    return _font(8)


def caption_band(image: Image.Image, rng: Rng) -> Image.Image:
    """Add a black band under the photo (12 % of its height) with a white caption."""
    w, h = image.size
    band = max(20, round(h * 0.12))
    out = Image.new("RGB", (w, h + band), "black")
    out.paste(image, (0, 0))
    draw = ImageDraw.Draw(out)
    text = CAPTIONS[rng.integers(len(CAPTIONS))]
    font = _fit_text(draw, text, int(w * 0.92), int(band * 0.5))
    draw.text((w / 2, h + band / 2), text, fill="white", font=font, anchor="mm")
    return out


def caption_over(image: Image.Image, rng: Rng) -> Image.Image:
    """Meme-style white text with a black outline over the top and bottom of the photo."""
    out = image.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out)
    top, bottom = (CAPTIONS[i] for i in rng.choice(len(CAPTIONS), 2, replace=False))
    for text, y, anchor in ((top.upper(), h * 0.03, "mt"), (bottom.upper(), h * 0.97, "mb")):
        font = _fit_text(draw, text, int(w * 0.94), int(h * 0.09))
        stroke = max(1, font.size // 12)
        draw.text((w / 2, y), text, fill="white", font=font, anchor=anchor,
                  stroke_width=stroke, stroke_fill="black")
    return out


BORDER_COLOURS = ("white", "black", (128, 128, 128), (200, 30, 30), (250, 245, 230))


def border(image: Image.Image, fraction: float, rng: Rng) -> Image.Image:
    """Add a solid frame: ``fraction`` of the width left and right, of the height top and bottom."""
    w, h = image.size
    colour = BORDER_COLOURS[rng.integers(len(BORDER_COLOURS))]
    bx, by = max(1, round(w * fraction)), max(1, round(h * fraction))
    return ImageOps.expand(image, border=(bx, by, bx, by), fill=colour)


def paste(image: Image.Image, host: Image.Image, fraction: float, rng: Rng) -> Image.Image:
    """Paste the photo, scaled to ``fraction`` of the host's size, at a random spot in ``host``.

    The host is first scaled to the photo's longer side so the result has the photo's resolution.
    """
    scale = max(image.size) / max(host.size)
    canvas = resize(host, scale) if abs(scale - 1) > 1e-3 else host.copy()
    fit = min(canvas.width * fraction / image.width, canvas.height * fraction / image.height)
    small = resize(image, fit)
    left = int(rng.integers(0, canvas.width - small.width + 1))
    top = int(rng.integers(0, canvas.height - small.height + 1))
    canvas.paste(small, (left, top))
    return canvas


LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
    "ullamco laboris nisi ut aliquip ex ea commodo consequat."
).split()


def _text_lines(draw, box, font, rng: Rng, fill=(60, 60, 60)) -> None:
    """Fill ``box`` (left, top, right, bottom) with lines of random words."""
    left, top, right, bottom = box
    step = font.size * 1.5
    y = top
    while y + step <= bottom:
        words = [LOREM[i] for i in rng.integers(0, len(LOREM), 14)]
        line = ""
        for word in words:
            if draw.textlength(line + " " + word, font=font) > right - left:
                break
            line = (line + " " + word).strip()
        draw.text((left, y), line, fill=fill, font=font)
        y += step


def screenshot_browser(image: Image.Image, rng: Rng) -> Image.Image:
    """The photo inside a mock desktop browser window: tab strip, address bar, article text."""
    W, H = 1440, 900
    out = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(out)
    draw.rectangle((0, 0, W, 40), fill=(222, 225, 230))
    for i, colour in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
        draw.ellipse((14 + 22 * i, 14, 28 + 22 * i, 28), fill=colour)
    draw.rounded_rectangle((90, 6, 330, 40), 8, fill="white")
    draw.text((105, 14), "Amazing photo - Gallery", fill=(40, 40, 40), font=_font(14))
    draw.rectangle((0, 40, W, 84), fill=(247, 247, 248))
    draw.rounded_rectangle((110, 48, W - 120, 76), 14, fill=(232, 234, 237))
    draw.text((130, 54), f"https://example.org/gallery/{rng.integers(10**6)}", fill=(60, 60, 60),
              font=_font(15))
    draw.text((60, 110), "Readers' photo of the week", fill="black", font=_font(34))
    sidebar = 1040
    _text_lines(draw, (sidebar + 30, 120, W - 40, H - 40), _font(14), rng)
    area_w, area_h = sidebar - 120, H - 170 - 110
    fit = min(area_w / image.width, area_h / image.height)
    shown = resize(image, fit)
    left = 60 + (area_w - shown.width) // 2
    out.paste(shown, (left, 170))
    _text_lines(draw, (60, 170 + shown.height + 15, sidebar, H - 10), _font(15), rng)
    return out


def screenshot_phone(image: Image.Image, rng: Rng) -> Image.Image:
    """The photo in a mock phone app: status bar, app header, like bar, caption, tab bar."""
    W, H = 750, 1334
    out = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(out)
    draw.text((30, 14), f"{rng.integers(7, 12)}:{rng.integers(10, 60)}", fill="black",
              font=_font(26))
    draw.rectangle((W - 80, 18, W - 30, 38), outline="black", width=2)
    draw.rectangle((W - 78, 20, W - 45, 36), fill="black")
    draw.rectangle((0, 60, W, 150), fill=(250, 250, 250))
    draw.ellipse((24, 78, 80, 134), fill=(200, 120, 160))
    draw.text((96, 88), "travel.pics", fill="black", font=_font(28))
    fit = W / image.width
    shown = resize(image, fit)
    if shown.height > 800:  # tall photos: shown full height, centred
        shown = resize(image, 800 / image.height)
    out.paste(shown, ((W - shown.width) // 2, 160))
    y = 160 + shown.height + 20
    for i in range(4):
        draw.ellipse((24 + 70 * i, y, 64 + 70 * i, y + 40), outline="black", width=3)
    draw.text((24, y + 60), f"{rng.integers(100, 9999)} likes", fill="black", font=_font(26))
    _text_lines(draw, (24, y + 100, W - 24, H - 110), _font(24), rng, fill=(30, 30, 30))
    draw.rectangle((0, H - 100, W, H), fill=(248, 248, 248))
    for i in range(5):
        cx = W * (i + 0.5) / 5
        draw.rounded_rectangle((cx - 22, H - 72, cx + 22, H - 28), 8, outline="black", width=3)
    return out


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Edit:
    """One edit of the benchmark.

    Attributes
    ----------
    name : str
        Unique name, e.g. ``"jpeg_q10"``.
    family : str
        Family it is reported under, e.g. ``"jpeg"``.
    apply : callable
        ``apply(image, rng, host) -> image``; ``host`` is another photo (used by paste edits).
    quality : int
        JPEG quality the edited query is stored at (the JPEG edits store at their own quality).
    """

    name: str
    family: str
    apply: Callable[[Image.Image, Rng, Image.Image], Image.Image] = field(repr=False)
    quality: int = 95


# Which stage of a copy detector each family is for (see module docstring).
FAMILY_STAGE = {
    "resize": "global",
    "thumbnail": "global",
    "jpeg": "global",
    "orientation": "global",
    "grey": "global",
    "colour": "global",
    "contrast": "global",
    "blur_noise": "global",
    "stretch": "global",
    "caption": "global",
    "border": "global",
    "crop_10": "local",
    "crop_25": "local",
    "crop_50": "local",
    "crop_75": "local",
    "small_rotation": "local",
    "pasted": "local",
    "screenshot": "local",
}


def _edits() -> list[Edit]:
    edits = [
        Edit("resize_0.5x", "resize", lambda im, rng, host: resize(im, 0.5)),
        Edit("resize_2x", "resize", lambda im, rng, host: resize(im, 2.0)),
        Edit("thumbnail_150", "thumbnail", lambda im, rng, host: thumbnail(im, 150)),
    ]
    for q in (10, 20, 30):
        edits.append(Edit(f"jpeg_q{q}", "jpeg", lambda im, rng, host, q=q: jpeg(im, q), quality=q))
    for removed in (10, 25, 50, 75):
        for where in ("centre", "corner", "side"):
            edits.append(Edit(
                f"crop{removed}_{where}", f"crop_{removed}",
                lambda im, rng, host, r=removed, w=where: crop(im, r / 100, w, rng),
            ))
    for name in ORIENTATIONS:
        edits.append(Edit(name, "orientation", lambda im, rng, host, n=name: orient(im, n)))
    for degrees in (5, 10, 15):
        edits.append(Edit(f"rotate_{degrees}", "small_rotation",
                          lambda im, rng, host, d=degrees: rotate_small(im, d, rng)))
    edits += [
        Edit("grey", "grey", lambda im, rng, host: grey(im)),
        Edit("sepia", "colour", lambda im, rng, host: sepia(im)),
        Edit("hue_shift", "colour", lambda im, rng, host: hue_shift(im, rng)),
        Edit("bright_contrast", "contrast",
             lambda im, rng, host: brightness_contrast(im, 1.3, 1.4)),
        Edit("dark_flat", "contrast", lambda im, rng, host: brightness_contrast(im, 0.6, 0.7)),
        Edit("gamma_0.5", "contrast", lambda im, rng, host: gamma(im, 0.5)),
        Edit("gamma_2", "contrast", lambda im, rng, host: gamma(im, 2.0)),
        Edit("blur", "blur_noise", lambda im, rng, host: blur(im)),
        Edit("noise", "blur_noise", lambda im, rng, host: noise(im, rng)),
        Edit("stretch_1.3x", "stretch", lambda im, rng, host: stretch(im, 1.3)),
        Edit("caption_band", "caption", lambda im, rng, host: caption_band(im, rng)),
        Edit("caption_over", "caption", lambda im, rng, host: caption_over(im, rng)),
        Edit("border_1/16", "border", lambda im, rng, host: border(im, 1 / 16, rng)),
        Edit("border_1/8", "border", lambda im, rng, host: border(im, 1 / 8, rng)),
        Edit("pasted_1/2", "pasted", lambda im, rng, host: paste(im, host, 1 / 2, rng)),
        Edit("pasted_2/3", "pasted", lambda im, rng, host: paste(im, host, 2 / 3, rng)),
        Edit("screenshot_browser", "screenshot",
             lambda im, rng, host: screenshot_browser(im, rng)),
        Edit("screenshot_phone", "screenshot", lambda im, rng, host: screenshot_phone(im, rng)),
    ]
    return edits


EDITS: tuple[Edit, ...] = tuple(_edits())
EDITS_BY_NAME = {edit.name: edit for edit in EDITS}
FAMILIES = tuple(dict.fromkeys(edit.family for edit in EDITS))
assert set(FAMILIES) == set(FAMILY_STAGE)

# Bump when an edit changes, so cached query images are rebuilt.
EDITS_VERSION = 1


def file_stem(edit_name: str) -> str:
    """A file-name-safe form of an edit name (``border_1/8`` -> ``border_1-8``)."""
    return edit_name.replace("/", "-")
