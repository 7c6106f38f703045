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


def open_stage(cls, folder, ids=(), settings=None):
    """A stage of class ``cls`` over a real SQLite catalog in ``folder``, with placeholder
    images catalogued under ``ids`` (signals are stored only for catalogued images).

    Returns (stage, catalog); close both with ``close_stage``.
    """
    from picorigin._settings import resolve_settings
    from picorigin._store import SQLiteCatalog

    catalog = SQLiteCatalog(folder / "catalog.sqlite")
    with catalog._transaction() as db:  # explicit ids: only a test needs them
        db.executemany(
            "INSERT OR IGNORE INTO images (id, sha256, pixel_sha256, width, height, format,"
            " byte_size, orientation, added_at) VALUES (?, ?, ?, 1, 1, 'PNG', 1, 0, 'now')",
            [(int(i), f"{int(i):064x}", f"{int(i):064x}") for i in ids])
    return cls(catalog, folder, settings or resolve_settings({}, environ={})), catalog


def close_stage(stage, catalog) -> None:
    stage.close()
    catalog.close()


def distinct_pictures(folder, names, seed: int = 0, size=(360, 270)):
    """Write one JPEG per name into ``folder``: random textured pictures, each unlike the others
    (no two are near-duplicates of each other), for tests that need many images.

    Returns the paths, in the order of ``names``.
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC),
                          np.float32)
        fine = rng.normal(0, 28, (size[1] // 3, size[0] // 3, 1)).repeat(3, 0).repeat(3, 1)
        image = Image.fromarray(np.clip(base + fine, 0, 255).astype(np.uint8))
        path = folder / f"{name}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths
