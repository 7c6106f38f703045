"""Pictures to watch, their edited copies and unrelated images (importable as
``watch.pictures``)."""

from __future__ import annotations

from helpers import jpeg_bytes, photo
from PIL import Image

WATCHED = ("astronaut", "coffee", "chelsea")


def copies() -> dict[str, tuple[str, bytes]]:
    """Edited copies of the watched pictures: name -> (watched picture, JPEG bytes)."""
    coffee, chelsea, astronaut = photo("coffee"), photo("chelsea"), photo("astronaut")
    scene = photo("rocket").resize((900, 700))
    scene.paste(chelsea.resize((420, 280)), (240, 200))
    return {
        "astronaut-small": ("astronaut", jpeg_bytes(astronaut.resize((240, 240)), 70)),
        "astronaut-rotated": ("astronaut",
                              jpeg_bytes(astronaut.transpose(Image.Transpose.ROTATE_90), 85)),
        "coffee-crop": ("coffee", jpeg_bytes(coffee.crop((0, 0, 360, 240)), 85)),
        "chelsea-pasted": ("chelsea", jpeg_bytes(scene, 85)),
    }


def unrelated() -> dict[str, bytes]:
    """Images that copy no watched picture."""
    return {"rocket": jpeg_bytes(photo("rocket"), 85), "camera": jpeg_bytes(photo("camera"), 85),
            "coins": jpeg_bytes(photo("coins"), 85)}
