"""Build picorigin's default visual vocabulary from generic photographs that ship in Debian.

Where the photographs come from: Debian's ``mate-backgrounds`` (its twelve ``nature`` photos:
flowers, grass, a ladybird, a water drop, a storm, a dune, wood) and ``opencv-doc`` (25 of
OpenCV's sample photographs: street and indoor scenes, buildings, fruit, faces, a sudoku page,
a painting), fetched with ``apt-get download`` and unpacked with ``dpkg -x`` into a temporary
folder. They are deliberately disjoint from the benchmark's photos (scikit-image's samples and
the ``plasma-workspace-wallpapers`` / ``lomiri-wallpapers-16.04`` photographs of
``bench/datasets.py``) and from the tests' pair ``box.png`` / ``box_in_scene.png``, so recall
is measured with a vocabulary that never saw the queried pictures.

Each photograph contributes ORB descriptors computed exactly as the index computes them, from
the whole picture, from zoomed-in quarters and from a rotated copy (so the words also cover the
scales at which crops are queried). Run::

    .venv/bin/python bench/build_vocabulary.py            # writes picorigin/data/vocabulary.npz

It prints the cost of each step; the output is deterministic for a given set of packages.
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from picorigin._features.local import compute_array  # noqa: E402
from picorigin._index.inverted import train_vocabulary  # noqa: E402

PACKAGES = ["mate-backgrounds", "opencv-doc"]
MATE_PHOTOS = "usr/share/backgrounds/mate/nature/*.jpg"
OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
OPENCV_PHOTOS = [
    "aero1.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg",
    "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg", "fruits.jpg",
    "graf1.png", "home.jpg", "left.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg",
    "orange.jpg", "pca_test1.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg",
    "starry_night.jpg", "stuff.jpg", "sudoku.png",
]


def fetch_packages(folder: Path) -> Path:
    """``apt-get download`` the wallpaper packages into ``folder`` and unpack them there."""
    unpacked = folder / "root"
    if (unpacked / OPENCV_DATA).is_dir() and glob.glob(str(unpacked / MATE_PHOTOS)):
        return unpacked
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", *PACKAGES], cwd=folder, check=True)
    for deb in sorted(folder.glob("*.deb")):
        subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    return unpacked


def photo_paths(unpacked: Path) -> list[Path]:
    """The photographs listed above, in a fixed order."""
    paths = sorted(Path(p) for p in glob.glob(str(unpacked / MATE_PHOTOS)))
    paths += [unpacked / OPENCV_DATA / name for name in OPENCV_PHOTOS
              if (unpacked / OPENCV_DATA / name).exists()]
    return paths


def views(path: Path) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The picture, its four quarters and a 10-degree rotation, as RGB arrays."""
    from PIL import Image

    image = Image.open(path)
    image.draft("RGB", (1600, 1600))
    image = image.convert("RGB")
    image.thumbnail((1600, 1600))
    w, h = image.size
    out = [image]
    for x0, y0 in [(0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2)]:
        out.append(image.crop((x0, y0, x0 + w // 2, y0 + h // 2)))
    out.append(image.rotate(10, resample=Image.BICUBIC, expand=False))
    return [(np.asarray(v), v.size) for v in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "picorigin/data/vocabulary.npz"))
    parser.add_argument("--cache", default=None, help="folder for the .deb files (default: temp)")
    parser.add_argument("--branching", type=int, default=8)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--features", type=int, default=1500, help="ORB features per view")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="picorigin-vocab-") as tmp:
        cache = Path(args.cache) if args.cache else Path(tmp)
        t = time.perf_counter()
        unpacked = fetch_packages(cache)
        paths = photo_paths(unpacked)
        print(f"fetch+unpack: {time.perf_counter() - t:.1f} s, {len(paths)} photographs")
        if not paths:
            print("no photographs found", file=sys.stderr)
            return 1

        t = time.perf_counter()
        per_photo = []
        for path in paths:
            descriptors = [
                compute_array(array, size, n_features=args.features).descriptors
                for array, size in views(path)
            ]
            per_photo.append(np.concatenate(descriptors))
        n = sum(len(d) for d in per_photo)
        print(f"features: {time.perf_counter() - t:.1f} s, {n} descriptors")

        t = time.perf_counter()
        source = (
            f"ORB descriptors of {len(paths)} photographs from Debian packages "
            f"{', '.join(PACKAGES)} (whole, quarters, rotated)"
        )
        vocabulary = train_vocabulary(
            per_photo, branching=args.branching, depth=args.depth, source=source
        )
        print(
            f"training: {time.perf_counter() - t:.1f} s, {vocabulary.n_words} words, "
            f"{int(vocabulary.valid[-vocabulary.n_words:].sum())} reachable"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocabulary.save(out)
    print(f"wrote {out} ({out.stat().st_size} bytes), digest {vocabulary.digest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
