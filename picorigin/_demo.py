"""A small demo collection of real photos (scikit-image's sample data) and edited query copies."""

from __future__ import annotations

from pathlib import Path

__all__ = ["make_demo"]

_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def _pasted(photo, host):
    """``photo`` at 60 % of ``host``'s width, pasted into a corner of it."""
    scene = host.convert("RGB").resize((host.width * 2, host.height * 2))
    small = photo.resize((int(scene.width * 0.6), int(photo.height * scene.width * 0.6 / photo.width)))
    scene.paste(small, (scene.width - small.width - 20, 20))
    return scene


def make_demo(folder: Path) -> tuple[list[Path], list[Path]]:
    """Write demo photos and query copies to ``folder``; return (collection, queries).

    The queries are a rotated thumbnail, a mirrored greyscale copy, a heavily recompressed copy,
    a crop, the coffee cup pasted into another photo, and one photo that is not in the
    collection (it must find no copies, only similar images).
    """
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - the demo extra brings it
        raise SystemExit("the demo needs scikit-image: pip install 'picorigin[demo]'") from None
    from PIL import Image, ImageOps

    folder = Path(folder)
    (folder / "collection").mkdir(parents=True, exist_ok=True)
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    collection = []
    for name in _PHOTOS:
        path = folder / "collection" / f"{name}.jpg"
        if not path.exists():
            Image.fromarray(getattr(data, name)()).convert("RGB").save(path, quality=92)
        collection.append(path)
    astronaut = Image.open(collection[0])
    coffee = Image.open(collection[1])
    rocket = Image.open(collection[3])
    queries = {
        "astronaut-thumbnail-rotated.jpg": astronaut.resize((160, 160)).rotate(90, expand=True),
        "coffee-mirrored-grey.png": ImageOps.mirror(ImageOps.grayscale(coffee)),
        "rocket-quality-10.jpg": rocket,
        "astronaut-crop.jpg": astronaut.crop((150, 40, 420, 300)),
        "coffee-pasted-into-chelsea.jpg": _pasted(coffee, Image.open(collection[2])),
        "not-indexed-camera.jpg": Image.fromarray(data.camera()).convert("RGB"),
    }
    paths = []
    for name, image in queries.items():
        path = folder / "queries" / name
        image.save(path, quality=10 if "quality-10" in name else 90)
        paths.append(path)
    return collection, paths
