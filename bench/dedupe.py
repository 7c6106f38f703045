"""Cleaning a photo library: does ``picorigin.dedupe`` find the right groups and keep the original?

A folder of 60 images, 30 of them with three edited copies each (90 copies), is built from the
benchmark photo sources (``bench/datasets.py``):

- the copy bench's photographs (scikit-image samples, Debian's lomiri and Plasma wallpapers),
- the nature photographs of Debian's ``mate-backgrounds`` package,
- topped up to 60 from the distractor packages (``datasets.distractor_photos``), one of each
  dark/light pair of GNOME backgrounds so that no two sources are variants of one picture.

The 30 edited photos are colour photographs chosen with a fixed seed. Each gets three of six
edits, rotating so every edit is used 15 times: resize (0.5x, or a 2x upscale for every other
photo), JPEG quality 30, grey, mirror, crop keeping 80 % of the area (a random corner), a flat
border of 1/8 of each side (bench/edits.py's functions). Originals are the prepared q95 files;
copies are saved at quality 85, as a photo editor re-saves. Copies are named ``<photo>-<edit>``
beside their originals, which sort after them, so a tie broken by index order cannot favour
the original.

Measured, for picorigin (``dedupe`` with its default kinds, exact + near_duplicate, every stage
on) and imagededup's PHash (its default ``max_distance_threshold`` of 10, groups chained like
picorigin's): the number of groups, pairwise precision and recall of "same group", the groups
found exactly, the time, and for picorigin how often the best copy is the unedited photo.

imagededup's CNN is not run: imagededup 0.3.3 imports torchvision, whose PyPI wheel matching the
project's pinned CPU torch (torchvision 0.28.0 for torch 2.13.0) fails to load its operators
against the CPU build (``operator torchvision::nms does not exist``), and a newer torchvision
pulls a newer, CUDA torch. Its hashing module does not need torch, so it is loaded alone.

Run ``python -m bench.dedupe [--quick]``; results go to ``bench/results/dedupe.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

from bench import edits
from bench.datasets import Photo, cache_folder, distractor_photos, load_photos, unpacked_packages

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240613
EDITS = ("resize", "jpeg", "grey", "mirror", "crop80", "border")
COPY_QUALITY = 85
N_PHOTOS, N_EDITED, PER_PHOTO = 60, 30, 3


def _say(message: str) -> None:
    print(f"[dedupe] {message}", file=sys.stderr, flush=True)


def mate_photos() -> list[Photo]:
    """The nature photographs of Debian's mate-backgrounds, prepared like the originals."""
    root = unpacked_packages(["mate-backgrounds"], "mate-backgrounds")
    if root is None:
        return []
    out = cache_folder() / "mate"
    out.mkdir(exist_ok=True)
    photos = []
    for file in sorted((root / "usr/share/backgrounds/mate/nature").glob("*.jpg")):
        path = out / f"{file.stem}.jpg"
        if not path.exists():
            with Image.open(file) as image:
                image.draft("RGB", (1920, 1920))
                image = image.convert("RGB")
                image.thumbnail((1920, 1920), Image.Resampling.LANCZOS)
                image.save(path, "JPEG", quality=95)
        photos.append(Photo(f"mate-{file.stem}", "mate", path))
    return photos


def _is_colour(path: Path) -> bool:
    with Image.open(path) as image:
        image.draft("RGB", (128, 128))
        pixels = np.asarray(image.convert("RGB").resize((64, 64)), np.int16)
    return float(np.abs(pixels[..., 0] - pixels[..., 1]).mean()
                 + np.abs(pixels[..., 1] - pixels[..., 2]).mean()) > 3.0


def sources() -> list[Photo]:
    """60 distinct source images: photographs first, topped up from the distractors."""
    photos = load_photos() + mate_photos()
    extra = [p for p in distractor_photos() if not p.name.endswith("-d")]
    photos += extra[: max(0, N_PHOTOS - len(photos))]
    if len(photos) < N_PHOTOS:
        _say(f"only {len(photos)} source images could be prepared (wanted {N_PHOTOS})")
    return photos[:N_PHOTOS]


def _edit(name: str, image: Image.Image, index: int, rng: np.random.Generator) -> Image.Image:
    if name == "resize":
        return edits.resize(image, 0.5 if index % 2 == 0 else 2.0)
    if name == "grey":
        return edits.grey(image)
    if name == "mirror":
        return edits.orient(image, "mirror")
    if name == "crop80":
        return edits.crop(image, 0.2, "corner", rng)
    if name == "border":
        return edits.border(image, 1 / 8, rng)
    raise ValueError(name)


def build(folder: Path, photos: list[Photo]) -> tuple[dict[str, str], dict[str, str]]:
    """Write the folder; return file -> true group (its photo) and group -> original file."""
    rng = np.random.default_rng(SEED)
    colour = [p for p in photos if p.source != "distractor" and _is_colour(p.path)]
    order = list(colour)
    rng.shuffle(order)
    edited = {p.name: i for i, p in enumerate(order[:N_EDITED])}
    truth, originals = {}, {}
    for photo in photos:
        name = f"{photo.name}.jpg"
        shutil.copyfile(photo.path, folder / name)
        truth[name], originals[photo.name] = photo.name, name
        if photo.name not in edited:
            continue
        index = edited[photo.name]
        with Image.open(photo.path) as image:
            image = image.convert("RGB")
            for edit in (EDITS[(index + j) % len(EDITS)] for j in range(PER_PHOTO)):
                copy = f"{photo.name}-{edit}.jpg"
                if edit == "jpeg":
                    image.save(folder / copy, "JPEG", quality=30)
                else:
                    _edit(edit, image, index, rng).save(folder / copy, "JPEG",
                                                        quality=COPY_QUALITY)
                truth[copy] = photo.name
    return truth, originals


def pairwise(truth: dict[str, str], groups: list[set[str]]) -> dict:
    """Pairwise precision and recall of "same group" (files not in any group are alone)."""
    predicted = {}
    for n, group in enumerate(groups):
        for name in group:
            predicted[name] = n
    names = sorted(truth)
    true_pairs = found_pairs = both = 0
    for a, b in itertools.combinations(names, 2):
        same_true = truth[a] == truth[b]
        same_found = a in predicted and predicted.get(a) == predicted.get(b)
        true_pairs += same_true
        found_pairs += same_found
        both += same_true and same_found
    by_photo: dict[str, set[str]] = {}
    for name, photo in truth.items():
        by_photo.setdefault(photo, set()).add(name)
    true_groups = {frozenset(g) for g in by_photo.values() if len(g) > 1}
    found = {frozenset(g) for g in groups}
    # Each true group not found whole: the pieces its files fell into (-1: in no group).
    missed = []
    for group in sorted(sorted(g) for g in true_groups - found):
        pieces: dict[int, list[str]] = {}
        for name in group:
            pieces.setdefault(predicted.get(name, -1), []).append(name)
        missed.append(sorted(pieces.values()))
    return {
        "missed": missed,
        "groups": len(groups),
        "true_groups": len(true_groups),
        "groups_exact": len(true_groups & {frozenset(g) for g in groups}),
        "pairwise_precision": round(both / found_pairs, 4) if found_pairs else 1.0,
        "pairwise_recall": round(both / true_pairs, 4) if true_pairs else 1.0,
        "true_pairs": true_pairs,
        "found_pairs": found_pairs,
    }


def run_picorigin(folder: Path, truth: dict[str, str], originals: dict[str, str]) -> dict:
    from picorigin import Engine, dedupe

    with tempfile.TemporaryDirectory(prefix="picorigin-dedupe-") as data:
        with Engine(data) as engine:
            started = time.perf_counter()
            report = dedupe(engine, folder)
            seconds = time.perf_counter() - started
    groups = [{f.relative for f in g.files} for g in report.groups]
    out = pairwise(truth, groups)
    best_ok, wrong = 0, []
    for group in report.groups:
        photo = truth[group.best.relative]
        if group.best.relative == originals[photo]:
            best_ok += 1
        else:
            wrong.append({"kept": group.best.relative, "original": originals[photo],
                          "reasons": group.reasons})
    out.update(best_is_original=best_ok, best_wrong=wrong, seconds=round(seconds, 1),
               failed=len(report.failed), stages=["exact", "fingerprint", *engine.stages])
    return out


def _imagededup_hashing():
    """imagededup's hashing module, without the package __init__ files that import torch."""
    spec = importlib.util.find_spec("imagededup")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("imagededup is not installed (pip install --no-deps "
                          "imagededup==0.3.3.post2)")
    root = Path(next(iter(spec.submodule_search_locations)))
    for package in ("imagededup", "imagededup.utils", "imagededup.methods"):
        if package not in sys.modules:
            module = types.ModuleType(package)
            module.__path__ = [str(root / package.partition(".")[2].replace(".", "/"))
                               if "." in package else str(root)]
            sys.modules[package] = module
    from imagededup.methods import hashing

    return hashing


def run_imagededup(folder: Path, truth: dict[str, str]) -> dict:
    try:
        hashing = _imagededup_hashing()
    except ImportError as error:
        return {"skipped": str(error)}
    started = time.perf_counter()
    phasher = hashing.PHash(verbose=False)
    encodings = phasher.encode_images(image_dir=str(folder), num_enc_workers=1)
    duplicates = phasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10,
                                         num_dist_workers=1)
    seconds = time.perf_counter() - started
    from picorigin._provenance.origin import group_copies

    names = sorted(encodings)
    index = {n: i for i, n in enumerate(names)}
    pairs = [(index[a], index[b]) for a, found in duplicates.items() for b in found]
    groups = [{names[i] for i in g} for g in group_copies(pairs) if len(g) > 1]
    out = pairwise(truth, groups)
    out.update(seconds=round(seconds, 1), threshold=10)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="accepted for `bench/run.py`; the folder is small already")
    parser.parse_args(argv)
    photos = sources()
    with tempfile.TemporaryDirectory(prefix="dedupe-folder-") as tmp:
        folder = Path(tmp)
        truth, originals = build(folder, photos)
        _say(f"{len(photos)} source images, {len(truth) - len(photos)} edited copies")
        results = {
            "images": len(truth),
            "sources": len(photos),
            "sources_by_kind": {s: sum(p.source == s for p in photos)
                                for s in sorted({p.source for p in photos})},
            "copies": len(truth) - len(photos),
            "copy_quality": COPY_QUALITY,
            "picorigin": run_picorigin(folder, truth, originals),
            "imagededup_phash": run_imagededup(folder, truth),
            "imagededup_cnn": {"skipped": "torchvision for the pinned CPU torch 2.13.0 fails "
                                          "to load its operators; see the module docstring"},
        }
    for name in ("picorigin", "imagededup_phash"):
        row = results[name]
        if "skipped" in row:
            print(f"{name:18s} skipped: {row['skipped']}")
            continue
        best = (f"  best copy = original {row['best_is_original']}/{row['groups']}"
                if "best_is_original" in row else "")
        print(f"{name:18s} groups {row['groups']:3d}/{row['true_groups']} "
              f"(exact {row['groups_exact']})  precision {row['pairwise_precision']:.4f}  "
              f"recall {row['pairwise_recall']:.4f}  {row['seconds']:6.1f} s{best}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dedupe.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
