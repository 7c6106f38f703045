"""Source photographs for the benchmarks: scikit-image's samples and two Debian wallpaper sets.

The wallpapers come from Debian packages fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into the cache folder (``$PICORIGIN_BENCH_CACHE``, default
``~/.cache/picorigin-bench``). Where apt cannot fetch them (no network, not Debian, stale package
lists), the benchmark says so and goes on with the scikit-image photos only.

Every photo is prepared once into ``<cache>/originals/<source>-<name>.jpg``: RGB, longer side at
most 1920 px, JPEG quality 95. That file *is* the original in every benchmark.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MAX_SIDE = 1920
WALLPAPER_PACKAGES = ("lomiri-wallpapers-16.04", "plasma-workspace-wallpapers")

# scikit-image sample images that are photographs (name -> loader attribute, index into a tuple).
# motorcycle_left is the left view of stereo_motorcycle; the right view is left out on purpose:
# it is a near-copy of the left one and would blur the line between copy and negative.
SKIMAGE_PHOTOS = {
    "astronaut": ("astronaut", None),
    "coffee": ("coffee", None),
    "chelsea": ("chelsea", None),
    "rocket": ("rocket", None),
    "motorcycle_left": ("stereo_motorcycle", 0),
    "hubble_deep_field": ("hubble_deep_field", None),
    "immunohistochemistry": ("immunohistochemistry", None),
    "retina": ("retina", None),
    "camera": ("camera", None),
    "moon": ("moon", None),
    "coins": ("coins", None),
}

# Wallpapers that are not photographs, looked at one by one (Debian bookworm versions
# lomiri-wallpapers-16.04 20.04.0-2, plasma-workspace-wallpapers 4:5.27.5-2).
NOT_PHOTOGRAPHS = {
    "plasma-Altai": "low-poly mountain illustration",
    "plasma-Autumn": "painting of a tree and a girl",
    "plasma-Canopee": "3-D render, abstract road on hexagons",
    "plasma-Cascade": "3-D render, abstract ice and hexagons",
    "plasma-Cluster": "digital art, hexagons over a nebula",
    "plasma-Elarun": "abstract vector curves",
    "plasma-Flow": "hexagon pattern graphic",
    "plasma-FlyingKonqui": "cartoon mascot drawing",
    "plasma-Honeywave": "abstract vector shapes",
    "plasma-IceCold": "low-poly graphic",
    "plasma-Kay": "geometric triangles",
    "plasma-Kokkini": "abstract gradient curves",
    "plasma-MilkyWay": "abstract gradient with dots",
    "plasma-Opal": "3-D render, abstract faceted surface",
    "plasma-PastelHills": "low-poly pastel gradient",
    "plasma-Patak": "3-D render, abstract shapes",
    "plasma-SafeLanding": "illustration of a rocket in a landscape",
    "plasma-Shell": "abstract faceted gradient",
    "plasma-Volna": "low-poly beach graphic",
    "lomiri-analogpattern_by_Peter_Nerlich": "abstract colour-noise texture",
    "lomiri-umang_by_Abhishek_Mudgal": "abstract colour gradient",
}


@dataclass(frozen=True)
class Photo:
    """One prepared original photograph.

    Attributes
    ----------
    name : str
        Unique name, ``<source>-<stem>`` (e.g. ``"skimage-coffee"``, ``"plasma-Path"``).
    source : str
        ``"skimage"``, ``"lomiri"`` or ``"plasma"``.
    path : pathlib.Path
        The prepared JPEG file (longer side <= 1920 px).
    """

    name: str
    source: str
    path: Path


def cache_folder() -> Path:
    """The benchmark cache: ``$PICORIGIN_BENCH_CACHE`` or ``~/.cache/picorigin-bench``."""
    folder = Path(os.environ.get("PICORIGIN_BENCH_CACHE", "~/.cache/picorigin-bench")).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _say(message: str) -> None:
    print(f"[datasets] {message}", file=sys.stderr, flush=True)


def _save(image: Image.Image, path: Path) -> None:
    """Write ``image`` as the prepared original: RGB, longer side <= MAX_SIDE, JPEG q95."""
    image = image.convert("RGB")
    if max(image.size) > MAX_SIDE:
        scale = MAX_SIDE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    tmp = path.with_suffix(".tmp")
    image.save(tmp, "JPEG", quality=95)
    tmp.replace(path)  # atomic, so an interrupted run never leaves half a file


def _skimage_photos(out: Path) -> list[Photo]:
    from skimage import data

    photos = []
    for name, (loader, index) in SKIMAGE_PHOTOS.items():
        path = out / f"skimage-{name}.jpg"
        if not path.exists():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # skimage's own deprecation notes
                    array = getattr(data, loader)()
            except Exception as error:  # a sample that needs the optional pooch download
                _say(f"skipping skimage {name}: {type(error).__name__}: {error}")
                continue
            if index is not None:
                array = array[index]
            array = np.asarray(array)
            if array.ndim == 2:
                array = np.stack([array] * 3, axis=-1)
            _save(Image.fromarray(array.astype(np.uint8)), path)
        photos.append(Photo(f"skimage-{name}", "skimage", path))
    return photos


def _fetch_packages(cache: Path) -> Path | None:
    """Download and unpack the wallpaper packages; the unpacked root, or None if unavailable."""
    root = cache / "wallpapers"
    marker = root / ".complete"
    if marker.exists():
        return root
    debs = cache / "debs"
    debs.mkdir(exist_ok=True)
    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        _say("apt-get/dpkg not found: using scikit-image photos only")
        return None
    for package in WALLPAPER_PACKAGES:
        if glob.glob(str(debs / f"{package}_*.deb")):
            continue
        _say(f"fetching Debian package {package} (apt-get download) ...")
        done = subprocess.run(
            ["apt-get", "download", package], cwd=debs, capture_output=True, text=True
        )
        if done.returncode != 0 or not glob.glob(str(debs / f"{package}_*.deb")):
            _say(
                f"could not download {package}: {done.stderr.strip()[-300:]}\n"
                f"  (try `apt-get update`, or put {package}_*.deb into {debs}); "
                "using scikit-image photos only"
            )
            return None
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    marker.touch()
    return root


def _size_of(path: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", Path(path).stem)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _plasma_choice(images: list[str]) -> str:
    """One resolution per photo: the largest whose longer side is <= MAX_SIDE, else the smallest."""
    sized = [(max(_size_of(p)), _size_of(p)[0] * _size_of(p)[1], p) for p in images]
    fitting = [item for item in sized if 0 < item[0] <= MAX_SIDE]
    return max(fitting)[2] if fitting else min(sized)[2]


def _wallpaper_photos(root: Path, out: Path) -> list[Photo]:
    photos = []
    sources = []
    for path in sorted((root / "usr/share/backgrounds").glob("*")):
        if path.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            sources.append((f"lomiri-{path.stem}", "lomiri", str(path)))
    for folder in sorted((root / "usr/share/wallpapers").glob("*")):
        # images_dark/ holds tinted variants of the same photo: left out on purpose
        images = glob.glob(str(folder / "contents/images/*.jpg")) + glob.glob(
            str(folder / "contents/images/*.png")
        )
        if images:
            sources.append((f"plasma-{folder.name}", "plasma", _plasma_choice(images)))
    for name, source, original in sources:
        if name in NOT_PHOTOGRAPHS:
            continue
        path = out / f"{name}.jpg"
        if not path.exists():
            with Image.open(original) as image:
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))  # cheap DCT-domain reduction first
                _save(image, path)
        photos.append(Photo(name, source, path))
    return photos


# Wallpaper packages no benchmark takes originals from: distractors and extra negatives.
DISTRACTOR_PACKAGES = ["ukui-wallpapers", "lomiri-wallpapers-20.04", "gnome-backgrounds"]


def unpacked_packages(packages: list[str], name: str) -> Path | None:
    """Fetch Debian ``packages`` with ``apt-get download`` and unpack them (once) into
    ``<cache>/<name>/root``; None, with a message, when that fails."""
    folder = cache_folder() / name
    root = folder / "root"
    marker = folder / "done"
    if marker.exists():
        return root
    folder.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "-q", *packages], cwd=folder, check=True,
                       capture_output=True)
        for deb in sorted(folder.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
            deb.unlink()
    except (OSError, subprocess.CalledProcessError) as error:
        _say(f"cannot fetch {packages}: {error}")
        return None
    marker.write_text("ok")
    return root


def distractor_photos() -> list[Photo]:
    """Every image of ``DISTRACTOR_PACKAGES`` (photographs and some artwork), prepared like the
    originals, source ``"distractor"``; empty when the packages cannot be fetched."""
    root = unpacked_packages(DISTRACTOR_PACKAGES, "local-distractors")
    if root is None:
        return []
    out = cache_folder() / "distractors"
    out.mkdir(exist_ok=True)
    photos = []
    files = sorted(glob.glob(str(root / "usr/share/backgrounds/**/*.*"), recursive=True))
    for file in files:
        if not file.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
            continue
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(file).stem)
        path = out / f"{stem}.jpg"
        if not path.exists():
            with Image.open(file) as image:
                image.draft("RGB", (MAX_SIDE, MAX_SIDE))
                _save(image, path)
        photos.append(Photo(f"distractor-{stem}", "distractor", path))
    return photos


def full_size_photographs(min_size: tuple[int, int]) -> list[Photo]:
    """The wallpaper photographs as shipped (not the prepared copies), at least ``min_size``
    (width, height) once turned landscape; for benchmarks that need camera-sized originals.

    Plasma ships one picture at several sizes: only its largest file is taken. Empty, with a
    message, when the packages cannot be fetched.
    """
    root = _fetch_packages(cache_folder())
    if root is None:
        return []
    sources = [(f"lomiri-{p.stem}", "lomiri", p) for p in sorted((root / "usr/share/backgrounds")
               .glob("*")) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
    for folder in sorted((root / "usr/share/wallpapers").glob("*")):
        images = glob.glob(str(folder / "contents/images/*.jpg")) + glob.glob(
            str(folder / "contents/images/*.png"))
        if images:
            largest = max(images, key=lambda p: _size_of(p)[0] * _size_of(p)[1])
            sources.append((f"plasma-{folder.name}", "plasma", Path(largest)))
    photos = []
    for name, source, path in sources:
        if name in NOT_PHOTOGRAPHS:
            continue
        with Image.open(path) as image:
            long, short = max(image.size), min(image.size)
        if long >= max(min_size) and short >= min(min_size):
            photos.append(Photo(name, source, path))
    return photos


def load_photos(*, wallpapers: bool = True) -> list[Photo]:
    """Prepare (once) and return every source photograph, sorted by name.

    Parameters
    ----------
    wallpapers : bool
        Also fetch and use the Debian wallpaper photographs (falls back to scikit-image only,
        with a message, when they cannot be fetched).

    Returns
    -------
    list of Photo
    """
    cache = cache_folder()
    out = cache / "originals"
    out.mkdir(exist_ok=True)
    photos = _skimage_photos(out)
    if wallpapers:
        root = _fetch_packages(cache)
        if root is not None:
            photos += _wallpaper_photos(root, out)
    return sorted(photos, key=lambda photo: photo.name)


if __name__ == "__main__":
    for photo in load_photos():
        with Image.open(photo.path) as image:
            print(f"{photo.name:45s} {image.width}x{image.height}")
