"""Test helpers importable from every test module (``pythonpath = tests`` in the pytest config)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

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


# Strips and specks: ORB's pyramid once rounded the thin side of such images to 0 pixels.
EXTREME_SIZES = [(1, 1), (2, 1), (3, 3), (1, 640), (640, 1), (2, 2000), (6, 5000), (5000, 6),
                 (30000, 1), (1, 30000), (40, 3000), (3000, 40), (64, 64)]


def extreme_folder(root: Path, photo_dir: Path) -> list[Path]:
    """Write 25 images to ``root/mixed``: the sample photos (JPEG from ``photo_dir``), noise of
    each of EXTREME_SIZES and photo strips in several modes and formats; return their paths."""
    folder = root / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name in PHOTOS:
        shutil.copy(photo_dir / f"{name}.jpg", folder / f"{name}.jpg")
    for w, h in EXTREME_SIZES:
        noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(noise).save(folder / f"noise_{w}x{h}.png")
    astronaut = photo("astronaut")
    astronaut.resize((1, 640)).convert("L").save(folder / "grey_1x640.png")
    astronaut.resize((2000, 2)).convert("RGBA").save(folder / "rgba_2000x2.png")
    astronaut.resize((6, 5000)).convert("P").save(folder / "palette_6x5000.png")
    Image.fromarray((rng.integers(0, 65536, (2000, 2))).astype(np.uint16)).save(
        folder / "wide_2x2000.png")
    astronaut.resize((8, 4000)).save(folder / "strip_8x4000.jpg", quality=90)
    astronaut.resize((4000, 8)).save(folder / "strip_4000x8.webp")
    files = sorted(folder.iterdir())
    assert len(files) == 25
    return files
