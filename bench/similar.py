"""Similar-image benchmark for the deep stage: retrieval quality, embedding cost, scale.

Run with ``python -m bench.similar`` (``--quick``: the scale rows at 100,000 vectors).

Quality
    21 groups of 4-8 genuinely different real photographs of the same kind of subject or scene,
    labelled by looking at every one, plus distractor photos that belong to no group (indexed, never
    queried). Every grouped photo is a query; the others in its group are the relevant answers.
    mAP@10 is reported for the deep descriptor (``picorigin._features.deep``), a colour-histogram
    baseline (joint 8x8x8 RGB histogram, Hellinger similarity), a colour-palette baseline
    (``picorigin._features.colour``) and the global fingerprint (``picorigin._features.fingerprint``
    when the lead's module is importable, else an inline 256-bit DCT-sign hash).

Sources (Debian bookworm packages fetched with ``apt-get download``, unpacked with
``dpkg-deb --fsys-tarfile | tar -x`` of just the files used, into
``$PICORIGIN_BENCH_CACHE/similar`` (default ``~/.cache/picorigin-bench/similar``))
    - ``plasma-workspace-wallpapers`` 4:5.27.5-2 (KDE wallpapers, ``usr/share/wallpapers``)
    - ``lomiri-wallpapers-16.04`` / ``lomiri-wallpapers-20.04`` 20.04.0-2
      (``usr/share/backgrounds``)
    - ``mate-backgrounds`` 1.26.0-1 (``usr/share/backgrounds/mate/nature``)
    - ``opencv-doc`` 4.6.0+dfsg-12 (OpenCV's sample photos,
      ``usr/share/doc/opencv-doc/examples/data``)
    - ``python3-sklearn`` 1.2.1+dfsg-1 (scikit-learn's sample photos ``china.jpg``, ``flower.jpg``)
    - ``tuxpaint-stamps-default`` 2022.06.04-1 (photographs cut out of their background; composited
      on white here)
    - ``stellarium-data`` 0.22.2-1 (telescope photographs of galaxies and nebulae)
    - ``scikit-image``'s ``skimage.data`` (installed with the package)

Cost
    Embedding ms/image on one core (a child process under ``taskset -c 0`` with one-thread BLAS
    and OpenMP), end to end: ``_imaging.decode`` at the stage's working side (JPEG draft) +
    resize + network + whitening + labels, for ONNX Runtime, beside the same network in torch
    eager (when torch is installed). Only camera-sized photos (shorter side >= 700 px) count.

Scale
    The shipped ``DenseIndex`` filled, in 50,000-vector batches as ingest would (so it retrains
    and re-tunes nprobe as it grows), with 1,000,000 descriptors: the real ones (benchmark and
    whitening photos) plus synthetic ones, of two kinds: ``clustered`` (a smoothed bootstrap of
    the real descriptors: clouds of similar images, as a big photo collection has) and
    ``gaussian`` (one Gaussian fitted to the real descriptors: no structure at all, the worst case
    for a cell-based index). Queries are real: descriptors of two random crops of each grouped
    photo, never indexed. Reported: query p50/p99 on one thread, recall@10 against exact search
    over the same vectors, bytes per image (the index's own count and the RSS growth).

Calibration
    The ``similar`` score ``1 / (1 + exp(-slope * (cosine - midpoint)))`` is fitted on a
    validation half (every other group in name order, every other distractor) and reported on
    the other half, whose groups are all different: same- and different-kind pass rates at
    scores 0.5, 0.8 (the default ``similar_min_score``) and 0.9, for the shipped constants and
    the refitted ones (logistic fit, then the midpoint raised until at most 1 % of the
    validation's different-kind pairs reach 0.9); and the share of never-indexed queries of the
    test half that get any ``similar`` >= 0.8 or >= 0.9 against a collection of the validation
    half. ``--refit-calibration`` writes the refitted constants into
    ``picorigin/data/deep_whitening.npz``.

Whitening
    ``--learn-whitening`` rebuilds ``picorigin/data/deep_whitening.npz`` from photos disjoint from
    every benchmark photo (``load_training_photos``: tuxpaint stamps of other kinds, every 8th
    stellarium nebula, the rest of OpenCV's sample JPEGs; each plus two random crops) and refits
    the score calibration on the validation half's pairs (see Calibration). Measured on this set
    (mAP@10): average pooling 0.58, GeM (p = 3) 0.60, GeM + PCA-256 with eigenvalue power -0.25
    0.62; full whitening (power -0.5) 0.59 and fewer or more dimensions no better (128: 0.61,
    384: 0.62); square (squash) input 0.61 against a 3:2 centre crop 0.62.

Results go to ``bench/results/similar.json`` (``similar_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

# ---------------------------------------------------------------------------------------------
# The photos. (package, path inside the package); "skimage" entries name a skimage.data loader.

_MATE = "usr/share/backgrounds/mate/nature/"
_LOMIRI = "usr/share/backgrounds/"
# the one real file of each KDE wallpaper; the other sizes are links to it
_PLASMA = "usr/share/wallpapers/{}/contents/images/2560x1600.jpg"
_OPENCV = "usr/share/doc/opencv-doc/examples/data/"
_SKLEARN = "usr/lib/python3/dist-packages/sklearn/datasets/images/"
_TUX = "usr/share/tuxpaint/stamps/"
_STELLARIUM = "usr/share/stellarium/nebulae/default/"


def _plasma(name: str) -> tuple[str, str]:
    return ("plasma-workspace-wallpapers", _PLASMA.format(name))


def _tux(path: str) -> tuple[str, str]:
    return ("tuxpaint-stamps-default", _TUX + path + ".png")


def _sky(name: str) -> tuple[str, str]:
    return ("stellarium-data", _STELLARIUM + name + ".png")


GROUPS: dict[str, list[tuple[str, str]]] = {
    # close-ups of single flowers in gardens
    "flowers": [
        ("mate-backgrounds", _MATE + "FreshFlower.jpg"),
        ("mate-backgrounds", _MATE + "Garden.jpg"),
        ("mate-backgrounds", _MATE + "YellowFlower.jpg"),
        ("python3-sklearn", _SKLEARN + "flower.jpg"),
    ],
    # green leaves and grass filling the frame
    "foliage": [
        ("mate-backgrounds", _MATE + "Blinds.jpg"),
        ("mate-backgrounds", _MATE + "RainDrops.jpg"),
        ("mate-backgrounds", _MATE + "GreenMeadow.jpg"),
        _plasma("OneStandsOut"),
    ],
    # still lakes at dusk or in fog, with piers or boats
    "lakes": [
        _plasma("BytheWater"),
        _plasma("ColdRipple"),
        _plasma("DarkestHour"),
        _plasma("EveningGlow"),
        _plasma("summer_1am"),
    ],
    # open countryside under a big sky
    "landscapes": [
        ("lomiri-wallpapers-16.04", _LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg"),
        ("lomiri-wallpapers-16.04", _LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg"),
        ("lomiri-wallpapers-16.04", _LOMIRI + "sunset_by_Aitzol_Berasategi.jpg"),
        ("mate-backgrounds", _MATE + "Storm.jpg"),
    ],
    # building exteriors
    "buildings": [
        ("opencv-doc", _OPENCV + "building.jpg"),
        ("opencv-doc", _OPENCV + "home.jpg"),
        ("opencv-doc", _OPENCV + "leuvenA.jpg"),
        ("python3-sklearn", _SKLEARN + "china.jpg"),
    ],
    # fruit, whole or cut
    "fruit": [
        ("opencv-doc", _OPENCV + "fruits.jpg"),
        ("opencv-doc", _OPENCV + "apple.jpg"),
        ("opencv-doc", _OPENCV + "orange.jpg"),
        ("lomiri-wallpapers-16.04", _LOMIRI + "Picture_0B_by_freespace.jpg"),
        _tux("food/fruit/apple_red"),
        _tux("food/fruit/mandarine"),
        _tux("food/fruit/lemon"),
        _tux("food/fruit/pomegranate"),
    ],
    "dogs": [
        ("opencv-doc", _OPENCV + "chicky_512.png"),
        ("lomiri-wallpapers-16.04", _LOMIRI + "friends_by_Aitzol_Berasategi.jpg"),
        _tux("animals/mammals/dogs/dingo"),
        _tux("animals/mammals/dogs/dog"),
    ],
    "cats": [
        ("skimage", "chelsea"),
        _tux("animals/mammals/cats/lion"),
        _tux("animals/mammals/cats/lion-2"),
        _tux("animals/mammals/cats/tiger"),
        _tux("animals/mammals/cats/tiger_sumatran"),
    ],
    "primates": [
        ("opencv-doc", _OPENCV + "baboon.jpg"),
        _tux("animals/mammals/apes/chimp"),
        _tux("animals/mammals/apes/gorilla"),
        _tux("animals/mammals/apes/tamarin_emperor"),
    ],
    # perching birds
    "small birds": [
        ("lomiri-wallpapers-20.04", _LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg"),
        _tux("animals/birds/blackbird"),
        _tux("animals/birds/crow"),
        _tux("animals/birds/lark"),
        _tux("animals/birds/magpie"),
        _tux("animals/birds/pigeon"),
    ],
    "poultry": [
        _tux("animals/birds/chicken_profile"),
        _tux("animals/birds/hen"),
        _tux("animals/birds/rooster"),
        _tux("animals/birds/turkey"),
    ],
    "cattle": [
        _tux("animals/mammals/bovines/bison"),
        _tux("animals/mammals/bovines/bull"),
        _tux("animals/mammals/bovines/cow"),
        _tux("animals/mammals/bovines/cow_white"),
        _tux("animals/mammals/bovines/yak"),
        _tux("animals/mammals/bovines/zebu"),
    ],
    "horses": [
        _tux("animals/mammals/equines/donkey"),
        _tux("animals/mammals/equines/donkey_eating"),
        _tux("animals/mammals/equines/horse"),
        _tux("animals/mammals/equines/zebra"),
    ],
    "deer": [
        _tux("animals/mammals/deer/caribou"),
        _tux("animals/mammals/deer/deer"),
        _tux("animals/mammals/deer/doe"),
        _tux("animals/mammals/deer/wapiti"),
    ],
    "insects": [
        ("opencv-doc", _OPENCV + "butterfly.jpg"),
        ("mate-backgrounds", _MATE + "LadyBird.jpg"),
        ("lomiri-wallpapers-16.04", _LOMIRI + "Dragonfly_by_Bolly.jpg"),
        _tux("animals/insects/grasshopper"),
        _tux("animals/insects/hornet"),
        _tux("animals/insects/hoverfly"),
        _tux("animals/insects/mantis"),
        _tux("animals/insects/xanthia"),
    ],
    # reef fish
    "fish": [
        _tux("animals/fish/butterflyfish"),
        _tux("animals/fish/clownfish"),
        _tux("animals/fish/coraltrout"),
        _tux("animals/fish/dolphinfish"),
        _tux("animals/fish/moonwrasse"),
        _tux("animals/fish/stripedfish"),
    ],
    "cars": [
        _tux("vehicles/auto/beetle"),
        _tux("vehicles/auto/sedan"),
        _tux("vehicles/auto/sportscar2"),
        _tux("vehicles/auto/truck"),
    ],
    "string instruments": [
        _tux("hobbies/music/string/cello"),
        _tux("hobbies/music/string/violin"),
        _tux("hobbies/music/string/guitar_classical"),
        _tux("hobbies/music/string/guitar_electric"),
        _tux("hobbies/music/string/guitar_electric_bass"),
    ],
    "people": [
        ("skimage", "astronaut"),
        ("skimage", "camera"),
        ("opencv-doc", _OPENCV + "messi5.jpg"),
        ("opencv-doc", _OPENCV + "basketball1.png"),
    ],
    "spiral galaxies": [_sky(n) for n in ("m51-vasey", "m74", "m83", "m99", "m100", "m101-vasey")],
    # red-and-blue emission nebulae
    "nebulae": [_sky(n) for n in ("m8", "m16", "m17", "m20", "m42")],
}

# Indexed with the groups but never queried: photos of no group's kind, plus abstract wallpapers.
DISTRACTORS: list[tuple[str, str]] = [
    ("skimage", "coffee"),
    ("skimage", "rocket"),
    ("skimage", "hubble_deep_field"),
    ("skimage", "immunohistochemistry"),
    ("skimage", "retina"),
    ("skimage", "coins"),
    ("skimage", "moon"),
    _plasma("ColorfulCups"),
    _plasma("Grey"),
    _plasma("Path"),
    _plasma("Kite"),
    _plasma("FallenLeaf"),
    _plasma("Autumn"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/Elarun/contents/images/2560x1600.png"),
    ("plasma-workspace-wallpapers", "usr/share/wallpapers/Shell/contents/images/5120x2880.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "Bridge_by_Sander_Klootwijk.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "Picture_1A_by_freespace.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "Wine_by_Jakkub_Mede.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "free_by_Peter_Nerlich.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "greentock_by_Peter_Nerlich.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "life_by_Aitzol_Berasategi.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "seeding_by_Clements_Engelhardt.jpg"),
    ("lomiri-wallpapers-16.04", _LOMIRI + "analogpattern_by_Peter_Nerlich.jpg"),
    ("mate-backgrounds", _MATE + "Aqua.jpg"),
    ("mate-backgrounds", _MATE + "Dune.jpg"),
    ("mate-backgrounds", _MATE + "Wood.jpg"),
    ("mate-backgrounds", _MATE + "TwoWings.jpg"),
    ("opencv-doc", _OPENCV + "starry_night.jpg"),
    ("opencv-doc", _OPENCV + "aloeL.jpg"),
    ("opencv-doc", _OPENCV + "board.jpg"),
    ("opencv-doc", _OPENCV + "smarties.png"),
    ("opencv-doc", _OPENCV + "stuff.jpg"),
    ("opencv-doc", _OPENCV + "graf1.png"),
    ("opencv-doc", _OPENCV + "aero1.jpg"),
    ("opencv-doc", _OPENCV + "ela_original.jpg"),
    _tux("food/vegetables/broccoli"),
    _tux("food/vegetables/corn"),
    _tux("household/dishes/teapot"),
    _tux("plants/mushrooms/cep-1"),
    _tux("vehicles/flight/planes/747"),
    _sky("m13"),
    _sky("m3"),
]

PACKAGES = sorted({package for members in GROUPS.values() for package, _ in members} | {
    package for package, _ in DISTRACTORS} - {"skimage"})
MAX_SIDE = 1920


def _say(message: str) -> None:
    print(f"[similar] {message}", file=sys.stderr, flush=True)


def _cache() -> Path:
    folder = Path(os.environ.get("PICORIGIN_BENCH_CACHE", "~/.cache/picorigin-bench")).expanduser()
    folder = folder / "similar"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _slug(package: str, path: str) -> str:
    stem = Path(path).stem
    if "/contents/images/" in path:  # plasma: the wallpaper's folder names it
        stem = path.split("/")[-4]
    return f"{package.split('-')[0]}-{stem}".replace(" ", "_")


def _unpack(package: str, members: list[str], root: Path) -> None:
    """apt-get download ``package`` and extract just ``members`` (tar wildcards) under ``root``."""
    debs = _cache() / "debs"
    debs.mkdir(exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        _say(f"fetching Debian package {package} (apt-get download) ...")
        done = subprocess.run(["apt-get", "download", package], cwd=debs,
                              capture_output=True, text=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if done.returncode != 0 or not found:
            raise SystemExit(f"could not download {package}: {done.stderr.strip()[-300:]}\n"
                             f"  run `apt-get update` first, or put {package}_*.deb into {debs}")
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(found[-1])], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "--wildcards", "-C", str(root)] + [f"./{m}" for m in members],
                   stdin=tar.stdout, check=True)
    tar.wait()


def _open(package: str, path: str, root: Path) -> Image.Image:
    if package == "skimage":
        from skimage import data

        array = np.asarray(getattr(data, path)())
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        return Image.fromarray(array.astype(np.uint8)).convert("RGB")
    image = Image.open(root / path)
    image.draft("RGB", (MAX_SIDE, MAX_SIDE))
    if image.mode in ("RGBA", "LA", "P", "PA"):
        # cut-outs: composite on white, as a page or a shop would show them
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (255, 255, 255, 255))
        canvas.alpha_composite(image)
        image = canvas
    return image.convert("RGB")


def load_photos() -> list[tuple[str, str | None, Path]]:
    """Prepare (once) every photo as a JPEG; ``[(name, group or None, path)]``, groups first."""
    cache = _cache()
    out = cache / "photos"
    out.mkdir(exist_ok=True)
    entries = [(g, p, m) for g, members in GROUPS.items() for p, m in members]
    entries += [(None, p, m) for p, m in DISTRACTORS]
    missing = [(p, m) for _, p, m in entries if not (out / f"{_slug(p, m)}.jpg").exists()]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for package in sorted({p for p, _ in missing} - {"skimage"}):
                _unpack(package, [m for p, m in missing if p == package], root)
            for package, member in missing:
                image = _open(package, member, root)
                if max(image.size) > MAX_SIDE:
                    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                target = out / f"{_slug(package, member)}.jpg"
                image.save(target.with_suffix(".tmp"), "JPEG", quality=95)
                target.with_suffix(".tmp").replace(target)
    return [(_slug(p, m), g, out / f"{_slug(p, m)}.jpg") for g, p, m in entries]


# ---------------------------------------------------------------------------------------------
# The whitening's training photos: disjoint from every benchmark photo above.

def _training_members(root: Path) -> list[tuple[str, str]]:
    used = {m for members in GROUPS.values() for _, m in members} | {m for _, m in DISTRACTORS}
    chosen = []
    for path in sorted(root.glob(_TUX + "**/*.png")):
        member = str(path.relative_to(root))
        if not any(part in member for part in ("cartoon", "symbols", "alphabets", "/toys")):
            chosen.append(("tuxpaint-stamps-default", member))
    nebulae = sorted(root.glob(_STELLARIUM + "*.png"))
    chosen += [("stellarium-data", str(p.relative_to(root))) for p in nebulae[::8]]
    chosen += [("opencv-doc", str(p.relative_to(root)))
               for p in sorted(root.glob(_OPENCV + "*.jpg"))]
    return [(p, m) for p, m in chosen if m not in used]


def load_training_photos() -> list[Path]:
    """Prepare (once) the whitening's training photos as JPEGs; their paths."""
    out = _cache() / "train"
    marker = out / ".complete"
    if not marker.exists():
        out.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            _unpack("tuxpaint-stamps-default", [_TUX + "*.png"], root)
            _unpack("stellarium-data", [_STELLARIUM + "*.png"], root)
            _unpack("opencv-doc", [_OPENCV + "*.jpg"], root)
            for package, member in _training_members(root):
                image = _open(package, member, root)
                image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                image.save(out / f"{_slug(package, member)}.jpg", "JPEG", quality=95)
        marker.touch()
    return sorted(out.glob("*.jpg"))


def _augmented(image: Image.Image, rng: np.random.Generator) -> list[Image.Image]:
    """The photo and two random crops (50-90 % a side), each mirrored with probability 1/2."""
    out = [image]
    for _ in range(2):
        scale = rng.uniform(0.5, 0.9)
        width, height = round(image.width * scale), round(image.height * scale)
        x, y = rng.integers(0, image.width - width + 1), rng.integers(0, image.height - height + 1)
        crop = image.crop((int(x), int(y), int(x) + width, int(y) + height))
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


def pooled_features(images: list[Image.Image], batch: int = 16) -> np.ndarray:
    """The network's GeM-pooled features, L2-normalised, shape (n, 1280)."""
    from picorigin._features import deep

    rows = []
    for start in range(0, len(images), batch):
        tensor = np.stack([deep.preprocess(image) for image in images[start:start + batch]])
        features, _ = deep.run_network(tensor, threads=os.cpu_count() or 1)
        rows.append(features / np.linalg.norm(features, axis=1, keepdims=True))
    return np.concatenate(rows)


def learn_whitening(dim: int = 256, power: float = 0.25) -> dict[str, np.ndarray]:
    """PCA on the training photos (and two augmented crops of each): mean and projection.

    The projection keeps the top ``dim`` principal axes, each divided by its eigenvalue to the
    ``power`` (0.5 would be full whitening; 0.25 measured better: full whitening blows up the
    noisy low-variance axes that a few hundred photos estimate badly).
    """
    rng = np.random.default_rng(0)
    images = []
    for path in load_training_photos():
        with Image.open(path) as image:
            images += _augmented(image.convert("RGB"), rng)
    _say(f"learning the whitening from {len(images)} images ...")
    x = pooled_features(images).astype(np.float64)
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((x - mean).T))
    values, vectors = values[::-1][:dim], vectors[:, ::-1][:, :dim]
    projection = vectors / np.maximum(values, 1e-9) ** power
    projection /= np.linalg.norm(projection, axis=0).mean()  # scale-free: keep numbers near 1
    return {"mean": mean.astype(np.float32), "projection": projection.astype(np.float16)}


def fit_calibration(similarity: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """Logistic fit ``P(same kind | cosine) = 1 / (1 + exp(-slope * (cosine - midpoint)))``.

    Same-group and different-group pairs are weighted to equal total weight, so the fit does not
    depend on how many groups a collection has: 0.5 is where a pair is as likely to show the same
    kind of thing as not. Plain Newton iterations on the two parameters.
    """
    x = similarity.astype(np.float64)
    y = same.astype(np.float64)
    w = np.where(y > 0, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1))
    a, b = 10.0, -1.0  # logit = a * x + b
    for _ in range(50):
        p = 1 / (1 + np.exp(-(a * x + b)))
        g = np.array([(w * (p - y) * x).sum(), (w * (p - y)).sum()])
        h = (w * p * (1 - p))
        hess = np.array([[(h * x * x).sum(), (h * x).sum()], [(h * x).sum(), h.sum()]])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return float(a), float(-b / a)


# ---------------------------------------------------------------------------------------------
# Descriptors compared

def _decoded(path: Path, working_side: int) -> Image.Image:
    """The image as the engine hands it to a stage (``_imaging.decode`` at that working side)."""
    from picorigin._imaging import decode

    return decode(path.read_bytes(), source=str(path), working_side=working_side).image


def deep_descriptors(paths: list[Path]) -> tuple[np.ndarray, list]:
    """DeepStage signals: descriptors (n, 256) and the signals themselves."""
    from picorigin._stages.deep import DeepStage

    signals = []
    for start in range(0, len(paths), 16):
        images = [_decoded(p, DeepStage.working_side) for p in paths[start:start + 16]]
        signals += DeepStage.compute_batch(images)
    return np.stack([s.embedding for s in signals]), signals


def colour_histograms(paths: list[Path]) -> np.ndarray:
    """Joint 8x8x8 RGB histograms of the image reduced to <= 128 px, L1-normalised, (n, 512)."""
    rows = []
    for path in paths:
        image = _decoded(path, 128)
        image.thumbnail((128, 128), Image.Resampling.BOX)
        rgb = np.asarray(image.convert("RGB")).reshape(-1, 3) // 32
        counts = np.bincount(rgb[:, 0] * 64 + rgb[:, 1] * 8 + rgb[:, 2], minlength=512)
        rows.append(counts / counts.sum())
    return np.array(rows)


def _dct_sign_hash(image: Image.Image) -> np.ndarray:
    """Fallback global fingerprint: signs of the 16x16 lowest DCT coefficients of 64x64 luma."""
    import cv2

    luma = np.asarray(image.convert("L").resize((64, 64), Image.Resampling.BOX), np.float32)
    bits = cv2.dct(luma)[:16, :16].ravel() > 0
    return np.packbits(bits)


def fingerprints(paths: list[Path]) -> tuple[np.ndarray, str]:
    """256-bit global fingerprints, packed (n, 32), and which implementation made them."""
    try:
        from picorigin._features import fingerprint

        return np.stack([fingerprint.compute(_decoded(p, 512)).code for p in paths]), \
            "picorigin._features.fingerprint"
    except ImportError:
        return np.stack([_dct_sign_hash(_decoded(p, 512)) for p in paths]), "inline DCT-sign"


def mean_ap_at_10(similarity: np.ndarray, groups: list[str | None]) -> tuple[float, dict]:
    """mAP@10 over the grouped photos, each ranked against all others; and AP per group."""
    from picorigin._evaluation import average_precision_at_k

    per_group: dict[str, list[float]] = {}
    similarity = similarity.astype(np.float64).copy()
    np.fill_diagonal(similarity, -np.inf)
    for i, group in enumerate(groups):
        if group is None:
            continue
        ranked = np.argsort(-similarity[i], kind="stable")[:10]
        truth = {j for j, other in enumerate(groups) if other == group and j != i}
        per_group.setdefault(group, []).append(
            average_precision_at_k([int(j) for j in ranked], truth, 10))
    scores = [s for values in per_group.values() for s in values]
    return float(np.mean(scores)), {g: float(np.mean(v)) for g, v in per_group.items()}


def quality() -> tuple[dict, np.ndarray, list]:
    """mAP@10 of every descriptor on the groups; the deep descriptors for the later sections."""
    from picorigin._features import colour

    photos = load_photos()
    paths = [p for _, _, p in photos]
    groups = [g for _, g, _ in photos]
    _say(f"quality: {len(photos)} photos, {len(GROUPS)} groups, "
         f"{sum(g is None for g in groups)} distractors")
    deep, signals = deep_descriptors(paths)
    histograms = np.sqrt(colour_histograms(paths))  # Hellinger: dot of square roots
    codes, fingerprint_kind = fingerprints(paths)
    bits = np.unpackbits(codes, axis=1).astype(np.float32)
    hamming = bits @ (1 - bits).T + (1 - bits) @ bits.T
    palettes = [s.palette for s in signals]
    palette_distance = np.array([[colour.distance(a, b) for b in palettes] for a in palettes])
    rows = {
        "deep (EfficientNet-Lite0, GeM, PCA-whitened 256-d)": deep @ deep.T,
        "colour histogram (8x8x8 RGB, Hellinger)": histograms @ histograms.T,
        "colour palette (picorigin._features.colour)": -palette_distance,
        f"global fingerprint ({fingerprint_kind}, Hamming)": -hamming,
    }
    result = {"photos": len(photos), "groups": len(GROUPS),
              "queries": sum(g is not None for g in groups), "map_at_10": {}}
    for name, similarity in rows.items():
        value, per_group = mean_ap_at_10(similarity, groups)
        result["map_at_10"][name] = round(value, 4)
        if name.startswith("deep"):
            result["deep_ap_by_group"] = {g: round(v, 3) for g, v in per_group.items()}
    return result, deep, signals


def calibration_split(groups: list[str | None]) -> np.ndarray:
    """Which photos fit the calibration (True) and which report it (False): disjoint halves.

    Whole groups go to one side (every other group in name order), so no kind of subject is
    on both sides, and the distractors alternate. Shape (n,), bool.
    """
    names = sorted(GROUPS)
    validation = np.zeros(len(groups), bool)
    distractors = 0
    for i, group in enumerate(groups):
        if group is None:
            validation[i] = distractors % 2 == 0
            distractors += 1
        else:
            validation[i] = names.index(group) % 2 == 0
    return validation


def _pairs(deep: np.ndarray, groups: list[str | None], members: np.ndarray):
    """Cosines and same-kind flags of the pairs among ``members`` with a grouped photo in them."""
    index = np.flatnonzero(members)
    upper = np.triu_indices(len(index), 1)
    i, j = index[upper[0]], index[upper[1]]
    keep = np.array([groups[a] is not None or groups[b] is not None for a, b in zip(i, j)], bool)
    i, j = i[keep], j[keep]
    same = np.array([groups[a] is not None and groups[a] == groups[b] for a, b in zip(i, j)],
                    bool)
    return (deep[i] * deep[j]).sum(axis=1), same


def fit_validated_calibration(similarity: np.ndarray, same: np.ndarray,
                              max_false_at_0_9: float = 0.01) -> tuple[float, float]:
    """:func:`fit_calibration`, then the midpoint raised if needed so that at most
    ``max_false_at_0_9`` of the different-kind pairs score 0.9 or more (same slope)."""
    slope, midpoint = fit_calibration(similarity, same)
    different = np.sort(similarity[~same])
    # the cosine that only max_false_at_0_9 of the different pairs reach
    bar = different[min(len(different) - 1, int(np.ceil(len(different) * (1 - max_false_at_0_9))))]
    lowest = bar - np.log(9.0) / slope  # score(bar) = 0.9 exactly
    return slope, max(midpoint, float(lowest))


def _rates(scores: np.ndarray, same: np.ndarray) -> dict:
    out = {"pairs_same": int(same.sum()), "pairs_different": int((~same).sum())}
    for bar in (0.5, 0.8, 0.9):
        out[f"score_at_least_{bar}"] = {
            "same": round(float((scores[same] >= bar).mean()), 4),
            "different": round(float((scores[~same] >= bar).mean()), 4)}
    return out


def _score(similarity, slope: float, midpoint: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-slope * (np.asarray(similarity, np.float64) - midpoint)))


def calibration_check(deep: np.ndarray, groups: list[str | None]) -> dict:
    """The shipped calibration and one refitted on the validation half, both measured on the
    test half; and how often never-indexed queries of a kind absent from a collection get a
    ``similar`` match anyway."""
    from picorigin._stages.deep import _calibration

    validation = calibration_split(groups)
    fit_cos, fit_same = _pairs(deep, groups, validation)
    test_cos, test_same = _pairs(deep, groups, ~validation)
    slope, midpoint = fit_validated_calibration(fit_cos, fit_same)
    shipped = _calibration()
    # never indexed: the test half's grouped photos searched against a collection of the
    # validation half (no group on both sides: a `similar` match is of another kind, unless a
    # distractor happens to show the same kind)
    queries = ~validation & np.array([g is not None for g in groups])
    best = (deep[queries] @ deep[validation].T).max(axis=1)
    result = {
        "split": {"validation_photos": int(validation.sum()),
                  "test_photos": int((~validation).sum()),
                  "validation_groups": sorted({g for g, v in zip(groups, validation)
                                               if v and g}),
                  "test_groups": sorted({g for g, v in zip(groups, validation) if not v and g})},
        "fitted_constants": {"slope": round(slope, 3), "midpoint": round(midpoint, 4),
                             "logistic_midpoint": round(fit_calibration(fit_cos, fit_same)[1], 4)},
        "shipped_constants": {"slope": round(shipped[0], 3), "midpoint": round(shipped[1], 4)},
    }
    for name, (a, b) in (("shipped", shipped), ("fitted", (slope, midpoint))):
        result[f"{name}_on_validation"] = _rates(_score(fit_cos, a, b), fit_same)
        result[f"{name}_on_test"] = _rates(_score(test_cos, a, b), test_same)
        scores = _score(best, a, b)
        result[f"{name}_never_indexed"] = {
            "queries": len(best), "collection": int(validation.sum()),
            "any_similar_at_least_0.8": round(float((scores >= 0.8).mean()), 4),
            "any_similar_at_least_0.9": round(float((scores >= 0.9).mean()), 4)}
    return result


def write_calibration(slope: float, midpoint: float) -> None:
    """Store (slope, midpoint) in picorigin/data/deep_whitening.npz, the rest unchanged."""
    with np.load(WHITENING) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["calibration"] = np.array([slope, midpoint], np.float32)
    np.savez_compressed(WHITENING, **arrays)


# ---------------------------------------------------------------------------------------------
# Cost on one core

_ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _timed(function, items, repeat: int = 1) -> np.ndarray:
    """Milliseconds per call of ``function(item)``, each item ``repeat`` times (best kept)."""
    out = []
    for item in items:
        best = np.inf
        for _ in range(repeat):
            start = time.perf_counter()
            function(item)
            best = min(best, time.perf_counter() - start)
        out.append(best * 1000)
    return np.array(out)


SPEED_SIZE = (1500, 1000)  # the same 1.5-megapixel JPEGs (quality 90) as bench/speed.py


def _speed_jpegs(limit: int) -> list[bytes]:
    """Camera-sized benchmark photos, centre-cropped to 3:2, as 1500x1000 JPEGs (q90)."""
    blobs = []
    for _, _, path in load_photos():
        with Image.open(path) as image:
            if min(image.size) < 700:
                continue  # the cut-outs are tiny
            image = image.convert("RGB")
            width, height = image.size
            crop = (min(width, height * 3 // 2), min(height, width * 2 // 3))
            box = ((width - crop[0]) // 2, (height - crop[1]) // 2)
            image = image.resize(SPEED_SIZE, Image.Resampling.LANCZOS,
                                 box=(box[0], box[1], box[0] + crop[0], box[1] + crop[1]))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=90)
            blobs.append(buffer.getvalue())
        if len(blobs) == limit:
            break
    return blobs


def cost(limit: int = 40) -> dict:
    """ms/image on this (single, pinned) core: decode + resize + network, ONNX vs torch eager."""
    from picorigin._features import colour, deep
    from picorigin._imaging import decode
    from picorigin._stages.deep import DeepStage

    blobs = _speed_jpegs(limit)
    side = DeepStage.working_side
    images = [decode(b, working_side=side).image for b in blobs]
    runtime = deep.ensure_model()
    float_graph = deep.model_path() if deep.model_path().exists() else None
    deep.compute(images[0])  # load the session first

    def median(values) -> float:
        return round(float(np.median(values)), 2)

    def float_end_to_end(blob: bytes) -> None:
        image = decode(blob, working_side=side).image
        features, logits = deep.run_network(deep.preprocess(image)[None], graph=float_graph)
        deep.embed(features), deep.top_labels(logits)

    end_to_end = _timed(lambda b: deep.compute(decode(b, working_side=side).image), blobs, 3)
    batched = []
    for start in range(0, len(images) - 7, 8):
        t0 = time.perf_counter()
        deep.compute_batch(images[start:start + 8])
        batched.append((time.perf_counter() - t0) * 1000 / 8)
    result = {
        "photos": len(blobs),
        "size": list(SPEED_SIZE),
        "working_side": side,
        "graph": runtime.name,
        "end_to_end_ms_median": median(end_to_end),
        "end_to_end_ms_p90": round(float(np.percentile(end_to_end, 90)), 2),
        "decode_ms_median": median(_timed(lambda b: decode(b, working_side=side), blobs, 3)),
        "network_ms_median": median(_timed(
            lambda im: deep.run_network(deep.preprocess(im)[None]), images, 3)),
        "batch8_compute_ms_per_image": median(batched) if batched else None,
        "palette_ms_median": median(_timed(colour.compute, images, 3)),
    }
    if float_graph is not None and runtime != float_graph:
        deep.run_network(deep.preprocess(images[0])[None], graph=float_graph)
        result["float_graph_end_to_end_ms_median"] = median(_timed(float_end_to_end, blobs, 3))
    try:
        import torch
    except ImportError:
        result["torch_eager"] = "torch not installed"
        return result
    torch.set_num_threads(1)
    model = deep.torch_model()

    def eager(blob: bytes) -> None:
        image = decode(blob, working_side=side).image
        with torch.inference_mode():
            model(torch.from_numpy(deep.preprocess(image)[None]))

    eager(blobs[0])
    result["torch_eager_end_to_end_ms_median"] = median(_timed(eager, blobs, 3))
    return result


def _cost_pinned() -> dict:
    """Run :func:`cost` in a child process pinned to one core with one-thread libraries."""
    env = {**os.environ, **_ONE_CORE_ENV}
    command = [sys.executable, "-m", "bench.similar", "--cost-only"]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(command, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cost measurement failed:\n{done.stderr[-2000:]}")

    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# Scale: 1,000,000 descriptors

def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _synthetic(real: np.ndarray, n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors like the real ones.

    ``gaussian``: one Gaussian with the real descriptors' mean and covariance, no cluster
    structure at all (the hardest case for a cell-based index). ``clustered``: a smoothed
    bootstrap, each a random real descriptor plus Gaussian noise of 0.7 times the real
    covariance (clouds of similar images around real ones, as a large photo collection has).
    """
    mean = real.mean(axis=0)
    factor = np.linalg.cholesky(np.cov((real - mean).T) + 1e-6 * np.eye(real.shape[1]))
    out = np.empty((n, real.shape[1]), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        noise = rng.standard_normal((m, real.shape[1])) @ factor.T
        if kind == "gaussian":
            rows = mean + noise
        else:
            rows = real[rng.integers(0, len(real), m)] + 0.7 * noise
        out[start:start + m] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def scale(real: np.ndarray, queries: np.ndarray, total: int, kind: str) -> dict:
    """Build the shipped DenseIndex over ``total`` vectors as ingest would, then query it."""
    import faiss

    from picorigin._index.faiss_dense import DenseIndex

    rng = np.random.default_rng(0)
    vectors = np.concatenate([real, _synthetic(real, total - len(real), kind, rng)])
    vectors = vectors[rng.permutation(len(vectors))]  # real ones anywhere, as in a collection
    ids = np.arange(len(vectors), dtype=np.int64)
    _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    before = _rss_bytes()
    index = DenseIndex(vectors.shape[1])
    start = time.perf_counter()
    for chunk in range(0, len(vectors), 50_000):  # checkpoint-sized batches, retraining as it grows
        index.add(ids[chunk:chunk + 50_000], vectors[chunk:chunk + 50_000])
    build = time.perf_counter() - start
    grown = _rss_bytes() - before
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one query, one core
    latencies, found = [], []
    for query in queries:
        t0 = time.perf_counter()
        _, ids_found = index.search(query[None], 10)
        latencies.append((time.perf_counter() - t0) * 1000)
        found.append(ids_found[0])
    faiss.omp_set_num_threads(threads)
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(found, truth)])
    return {
        "synthetic": kind,
        "vectors": len(vectors),
        "real_vectors": len(real),
        "layout": f"{index.kind} nlist={index._index.nlist} nprobe={index.nprobe}"
        if index.kind == "ivf" else index.kind,
        "build_s": round(build, 1),
        "query_ms_p50": round(float(np.median(latencies)), 3),
        "query_ms_p99": round(float(np.percentile(latencies, 99)), 3),
        "recall_at_10": round(float(recall), 4),
        "index_bytes_per_image": round(index.memory_bytes() / len(index), 1),
        "rss_growth_bytes_per_image": round(grown / len(index), 1),
    }


# ---------------------------------------------------------------------------------------------

RESULTS = Path(__file__).resolve().parent / "results"
WHITENING = Path(__file__).resolve().parent.parent / "picorigin" / "data" / "deep_whitening.npz"


def relearn() -> dict:
    """``--learn-whitening``: rebuild picorigin/data/deep_whitening.npz and say what it buys."""
    from picorigin._features import deep
    from picorigin._stages import deep as stage

    whitening = learn_whitening()
    np.savez_compressed(WHITENING, **whitening, calibration=np.array([10.0, 0.1], np.float32))
    deep._whitening.cache_clear()
    photos = load_photos()
    paths = [p for _, _, p in photos]
    groups = [g for _, g, _ in photos]
    images = [_decoded(p, stage.DeepStage.working_side) for p in paths]
    raw = pooled_features(images)
    whitened = deep.embed(raw)
    slope, midpoint = fit_validated_calibration(
        *_pairs(whitened, groups, calibration_split(groups)))
    np.savez_compressed(WHITENING, **whitening,
                        calibration=np.array([slope, midpoint], np.float32))
    stage._calibration.cache_clear()
    result = {"map_at_10_gem_raw": round(mean_ap_at_10(raw @ raw.T, groups)[0], 4),
              "map_at_10_gem_whitened": round(mean_ap_at_10(whitened @ whitened.T, groups)[0], 4),
              "calibration": {"slope": round(slope, 3), "midpoint": round(midpoint, 4)}}
    print(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="scale rows at 100,000 vectors instead of 1,000,000")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale rows")
    parser.add_argument("--learn-whitening", action="store_true",
                        help="rebuild picorigin/data/deep_whitening.npz (PCA + calibration)")
    parser.add_argument("--refit-calibration", action="store_true",
                        help="write the calibration fitted on the validation half into "
                        "picorigin/data/deep_whitening.npz")
    parser.add_argument("--no-cost", action="store_true", help="skip the one-core timings")
    parser.add_argument("--cost-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cost_only:  # the pinned child of _cost_pinned
        print(json.dumps(cost()))
        return {}
    if args.learn_whitening:
        return relearn()

    result: dict = {}
    result["quality"], deep, signals = quality()
    groups = [g for _, g, _ in load_photos()]
    result["calibration"] = calibration_check(deep, groups)
    if args.refit_calibration:
        fitted = result["calibration"]["fitted_constants"]
        write_calibration(fitted["slope"], fitted["midpoint"])
        _say(f"calibration written to {WHITENING}: {fitted}")
    if not args.no_cost:
        _say("cost: one core ...")
        result["cost"] = _cost_pinned()
    if not args.no_scale:
        total = 100_000 if args.quick else 1_000_000
        _say(f"scale: {total:,} vectors ...")
        rng = np.random.default_rng(7)
        train, _ = deep_descriptors(load_training_photos())
        grouped = [p for _, g, p in load_photos() if g is not None]
        crops = [c for p in grouped for c in _augmented(Image.open(p).convert("RGB"), rng)[1:]]
        from picorigin._stages.deep import DeepStage

        queries = np.stack([s.embedding for s in DeepStage.compute_batch(crops)])
        real = np.concatenate([deep, train]).astype(np.float32)
        result["scale"] = [scale(real, queries, total, kind) for kind in ("clustered", "gaussian")]
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / ("similar_quick.json" if args.quick else "similar.json")
    target.write_text(json.dumps(result, indent=2) + "\n")
    report(result)
    return result


def report(result: dict) -> None:
    quality_ = result["quality"]
    print(f"Similar images: {quality_['queries']} queries in {quality_['groups']} groups "
          f"({quality_['photos']} photos with distractors)")
    for name, value in quality_["map_at_10"].items():
        print(f"  mAP@10 {value:.3f}  {name}")
    worst = sorted(quality_["deep_ap_by_group"].items(), key=lambda item: item[1])[:3]
    print("  deep, weakest groups: " + ", ".join(f"{g} {v:.2f}" for g, v in worst))
    cal = result["calibration"]
    split = cal["split"]
    print(f"Calibration: fitted on {split['validation_photos']} photos "
          f"({len(split['validation_groups'])} groups), reported on {split['test_photos']} others "
          f"({len(split['test_groups'])} other groups)")
    for name in ("shipped", "fitted"):
        constants = cal[f"{name}_constants"]
        print(f"  {name} (slope {constants['slope']}, midpoint {constants['midpoint']}):")
        for half in ("validation", "test"):
            rates = cal[f"{name}_on_{half}"]
            print(f"    {half:10s} " + "; ".join(
                f">= {bar}: same kind {rates[f'score_at_least_{bar}']['same']:.1%}, "
                f"different {rates[f'score_at_least_{bar}']['different']:.2%}"
                for bar in (0.5, 0.8, 0.9)))
        never = cal[f"{name}_never_indexed"]
        print(f"    never-indexed queries of absent kinds ({never['queries']} against "
              f"{never['collection']} photos): any similar >= 0.8 "
              f"{never['any_similar_at_least_0.8']:.1%}, >= 0.9 "
              f"{never['any_similar_at_least_0.9']:.1%}")
    if "cost" not in result:
        return
    c = result["cost"]
    extra = []
    if "float_graph_end_to_end_ms_median" in c:
        extra.append(f"float graph {c['float_graph_end_to_end_ms_median']:.1f} ms")
    if "torch_eager_end_to_end_ms_median" in c:
        extra.append(f"torch eager {c['torch_eager_end_to_end_ms_median']:.1f} ms")
    print(f"Embedding, one core, {c['photos']} {c['size'][0]}x{c['size'][1]} JPEGs: "
          f"{c['end_to_end_ms_median']:.1f} ms end to end with {c['graph']} (decode "
          f"{c['decode_ms_median']:.1f} + network {c['network_ms_median']:.1f} + resize, "
          f"whitening, labels); " + "; ".join(extra) + f"; batch of 8: "
          f"{c['batch8_compute_ms_per_image']} ms/image; palette {c['palette_ms_median']:.1f} ms")
    for row in result.get("scale", []):
        print(f"Scale {row['vectors']:,} ({row['synthetic']} synthetic + {row['real_vectors']} "
              f"real), {row['layout']}: p50 {row['query_ms_p50']:.2f} ms, "
              f"p99 {row['query_ms_p99']:.2f} ms, "
              f"recall@10 {row['recall_at_10']:.3f}, {row['index_bytes_per_image']:.0f} B/image "
              f"in the index ({row['rss_growth_bytes_per_image']:.0f} B/image RSS growth), "
              f"build {row['build_s']:.0f} s")


if __name__ == "__main__":
    main()
