"""Are "larger than the query" and "upscaled" right on soft, noisy and sharpened photos?

Camera originals are made from the Debian wallpaper photographs as shipped
(``datasets.full_size_photographs``: at least 2000x1250, so the original is a reduction, never an
enlargement): cropped to 16:10 and reduced to 2000x1250, then given a camera's faults, each with
a seed of its own:

- ``macro``: a sharp subject (an ellipse, feathered) in front of a background defocused by a
  Gaussian of sigma 2-4 px, as in a macro shot or a portrait;
- ``soft``: the whole picture defocused (sigma 2-4 px), a missed focus;
- ``sharp``: no defocus, the control;

then sensor noise (Poisson-Gaussian, 0.8-3 grey levels at mid grey, neighbours correlated as
demosaicing leaves them) and JPEG quality 90 or 95. Each original gets copies, every one a JPEG:

- genuine: reductions to 1500, 1333, 1000, 666 and 500 px (``small``, the query) and 333 px
  (smaller than the query), with Lanczos, bicubic or bilinear (one per photo), quality 85-90;
- enlargements of the small copy (the query's file, decoded): 2x bicubic, Lanczos, bilinear and
  nearest, 1.5x and 4x bicubic, 2x bicubic then sharpened (unsharp mask radius 2, 150 %; and
  Lanczos then radius 1, 200 %, threshold 2), 2x bicubic re-saved at quality 75, 2x bicubic of
  the same reduction saved at quality 95 (a faint grid), and 2x bicubic of the small copy before
  it was saved (a lossless source: no block grid to find), all saved at quality 90.

Every claim is read through the engine's own code: each copy's stored facts are computed from
its file as ``picorigin index`` does (``analyse.detail_signals``), the query's as a search does,
and ``origin.annotate`` marks every copy of one search result. Two searches per original: with
the small copy (500 px) and with its 2x bicubic enlargement as the query (then the small copy is
smaller, and the query an enlargement of it); each over two sets of copies returned (``POOLS``):
the issue's (original, 1333, 666, small, enlargements) and a full ladder of sizes.

Photos are split in two by name (every other one): the thresholds in
``picorigin/_provenance/enlarged.py`` were chosen on the validation half; both halves are
reported. Run ``python -m bench.upscale [--quick]``; results go to ``bench/results/upscale.json``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from bench.datasets import Photo, full_size_photographs

RESULTS = Path(__file__).resolve().parent / "results"
SIZE = (2000, 1250)
KINDS = ("macro", "soft", "sharp")
DOWN_KERNELS = (Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.BILINEAR)
BICUBIC = Image.Resampling.BICUBIC
LANCZOS = Image.Resampling.LANCZOS


def _say(message: str) -> None:
    print(f"[upscale] {message}", file=sys.stderr, flush=True)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def _to_side(image: Image.Image, side: int, kernel) -> Image.Image:
    scale = side / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), kernel)


def camera_original(photo: Photo, kind: str, rng: np.random.Generator) -> tuple[bytes, dict]:
    """A 2000x1250 JPEG with a camera's defocus, noise and compression; and how it was made."""
    import cv2

    with Image.open(photo.path) as source:
        image = source.convert("RGB")
    if image.height > image.width:
        image = image.transpose(Image.Transpose.ROTATE_90)
    width, height = image.size
    crop_w, crop_h = min(width, round(height * SIZE[0] / SIZE[1])), min(height, round(width * SIZE[1] / SIZE[0]))
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h)).resize(SIZE, LANCZOS)
    pixels = np.asarray(image, np.float32)
    info: dict = {"kind": kind}
    if kind != "sharp":
        sigma = float(rng.uniform(2.0, 4.0))
        blurred = cv2.GaussianBlur(pixels, (0, 0), sigma)
        info["defocus_sigma"] = round(sigma, 2)
        if kind == "soft":
            pixels = blurred
        else:
            rows, cols = np.mgrid[: SIZE[1], : SIZE[0]].astype(np.float32)
            cy, cx = rng.uniform(0.3, 0.7) * SIZE[1], rng.uniform(0.3, 0.7) * SIZE[0]
            radius = rng.uniform(0.2, 0.35) * SIZE[1]
            distance = np.hypot((rows - cy) / radius, (cols - cx) / (1.3 * radius))
            background = np.clip((distance - 1.0) / 0.4, 0.0, 1.0)[..., None]
            pixels = pixels * (1 - background) + blurred * background
    # Poisson-Gaussian sensor noise; demosaicing correlates neighbours (the blur keeps its sd).
    noise = float(rng.uniform(0.8, 3.0))
    read = 0.4 * noise
    variance = read * read + (noise * noise - read * read) * np.clip(pixels, 0, 255) / 128.0
    grain = cv2.GaussianBlur(rng.standard_normal(pixels.shape).astype(np.float32), (0, 0), 0.5)
    pixels = pixels + np.sqrt(variance) * grain * 1.9
    quality = int(rng.choice([90, 90, 95]))
    info.update(noise=round(noise, 2), quality=quality)
    return _jpeg(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)), quality), info


def copies(original: bytes, rng: np.random.Generator, kernel) -> dict[str, bytes]:
    """Every copy of one original, by case name (see the module notes)."""
    full = _open(original)
    files = {"original": original}
    for side in (1500, 1333, 1000, 666, 333):
        files[f"down{side}"] = _jpeg(_to_side(full, side, kernel), int(rng.choice([85, 90])))
    before_saving = _to_side(full, 500, kernel)
    files["small"] = _jpeg(before_saving, int(rng.choice([85, 90])))
    small = _open(files["small"])
    sharpen = ImageFilter.UnsharpMask(radius=2, percent=150, threshold=0)
    fine = ImageFilter.UnsharpMask(radius=1, percent=200, threshold=2)
    made = {
        "up2_bicubic": _to_side(small, 1000, BICUBIC),
        "up2_lanczos": _to_side(small, 1000, LANCZOS),
        "up2_bilinear": _to_side(small, 1000, Image.Resampling.BILINEAR),
        "up2_nearest": _to_side(small, 1000, Image.Resampling.NEAREST),
        "up1.5_bicubic": _to_side(small, 750, BICUBIC),
        "up4_bicubic": _to_side(small, 2000, BICUBIC),
        "up2_sharpened": _to_side(small, 1000, BICUBIC).filter(sharpen),
        "up2_lanczos_sharpened": _to_side(small, 1000, LANCZOS).filter(fine),
        "up2_lossless_source": _to_side(before_saving, 1000, BICUBIC),
    }
    for name, image in made.items():
        files[name] = _jpeg(image, 90)
    files["up2_recompressed"] = _jpeg(_open(files["up2_bicubic"]), 75)
    files["up2_of_q95"] = _jpeg(_to_side(_open(_jpeg(before_saving, 95)), 1000, BICUBIC), 90)
    return files


# What each copy is relative to each query: (larger_than_query, upscaled); None: not asked.
UPSCALES = ("up2_bicubic", "up2_lanczos", "up2_bilinear", "up2_nearest", "up1.5_bicubic",
            "up4_bicubic", "up2_sharpened", "up2_lanczos_sharpened", "up2_recompressed",
            "up2_of_q95", "up2_lossless_source")
EXPECTED = {
    "small": {
        "original": (True, False), "down1500": (True, False), "down1333": (True, False),
        "down1000": (True, False), "down666": (True, False), "small": (False, False),
        "down333": (False, False), **{name: (False, True) for name in UPSCALES},
    },
    "up2_bicubic": {
        "original": (True, False), "down1500": (True, False), "down1333": (True, False),
        "down1000": (False, False), "down666": (False, False), "small": (False, False),
        "down333": (False, False), **{name: (False, True) for name in UPSCALES},
    },
}
QUERY_UPSCALED = {"small": False, "up2_bicubic": True}
# Which copies a search returns: the (the original, its 1333 and 666 px reductions, the
# small copy and the enlargements), and a full ladder of sizes, where more sizes at hand predict
# more beats (``origin.is_upscale``) and so more pairs are judged on the smoothed reading alone.
POOLS = {"issue": ("original", "down1333", "down666", "small", *UPSCALES),
         "ladder": ("original", "down1500", "down1333", "down1000", "down666", "small",
                    "down333", *UPSCALES)}


def build(photos: list[Photo], folder: Path) -> list[dict]:
    """Write (once) every original and its copies under ``folder``; one entry per original."""
    sets = []
    for index, photo in enumerate(photos):
        for kind_index, kind in enumerate(KINDS):
            name = f"{photo.name}-{kind}"
            where = folder / name
            rng = np.random.default_rng([index, kind_index, 15])
            marker = where / "info.json"
            if not marker.exists():
                where.mkdir(parents=True, exist_ok=True)
                original, info = camera_original(photo, kind, rng)
                info["down_kernel"] = ("lanczos", "bicubic", "bilinear")[index % 3]
                for case, data in copies(original, rng, DOWN_KERNELS[index % 3]).items():
                    (where / f"{case}.jpg").write_bytes(data)
                marker.write_text(json.dumps(info))
            info = json.loads(marker.read_text())
            sets.append({"name": name, "photo": photo.name, "folder": where, **info,
                         "split": "validation" if index % 2 == 0 else "test"})
    return sets


DATA_VERSION = 2  # bump when the originals or copies change: the cache is rebuilt


def _facts(data: bytes) -> dict:
    """The facts ``picorigin index`` stores for a file, and its size."""
    from picorigin._imaging import decode
    from picorigin._ingest.analyse import detail_signals
    from picorigin._settings import resolve_settings

    settings = resolve_settings({}, environ={})
    decoded = decode(data, source="<bench>", working_side=64, max_pixels=settings["max_pixels"],
                     max_side=settings["max_side"], max_decode_bytes=settings["max_decode_bytes"])
    return {"width": decoded.width, "height": decoded.height,
            "signals": detail_signals(data, "<bench>", settings)}


def _query_facts(data: bytes, copies: list[dict]) -> dict:
    """What a search measures of the query (``Engine._add_provenance``)."""
    from picorigin._imaging import decode
    from picorigin._provenance import enlarged

    full = decode(data, source="<query>", working_side=None)
    facts = {"width": full.width, "height": full.height}
    side = max(full.width, full.height)
    if any(max(c["width"], c["height"]) * 1.15 < side for c in copies):
        facts.update(enlarged.measure(full.image))
    return facts


def _pair_scores(records: dict) -> list[dict]:
    """Grid readings of every (larger, smaller) pair at the period their sizes predict."""
    from picorigin._provenance import enlarged, origin

    rows = []
    sides = {name: max(r["width"], r["height"]) for name, r in records.items()}
    for name, record in records.items():
        for other in records:
            if sides[other] * 1.15 >= sides[name]:
                continue
            factor = sides[name] / sides[other]
            rows.append({
                "larger": name, "smaller": other,
                "smooth": enlarged.grid_score(record["signals"], factor),
                "sharp": enlarged.grid_score(record["signals"], factor, "jpeg_grids"),
                "beat": any(origin._beats_at(sides[o], sides[name], sides[other])
                            for o in records if sides[o] > sides[name] * 1.15)})
    return rows


def evaluate(sets: list[dict]) -> dict:
    """Every claim of both searches of every original, tallied by split and case; and the grid
    readings the bars are chosen from."""
    from picorigin._provenance import enlarged, origin

    tally: dict = {}
    readings: dict = {"validation": [], "test": []}
    wrong: list = []
    timings: dict = {}
    nearest: dict = {"validation": [], "test": []}
    for entry in sets:
        folder, split = entry["folder"], entry["split"]
        files = {p.stem: p.read_bytes() for p in sorted(folder.glob("*.jpg"))}
        records = {}
        for index, (name, data) in enumerate(files.items(), start=1):
            started = time.perf_counter()
            facts = _facts(data)
            timings.setdefault(name, []).append(time.perf_counter() - started)
            records[name] = {"id": index, "uri": name, **facts, "metadata": {},
                             "locations": [], "format": "JPEG", "byte_size": len(data)}
        for name, data in files.items():
            image = Image.open(io.BytesIO(data)).convert("L")
            shares = enlarged.nearest_shares(np.asarray(image, np.float32))
            if shares:
                nearest[split].append({"genuine": not name.startswith("up"), "name": name,
                                       "least": min(shares.values()), "at_2": shares[2]})
        for row in _pair_scores(records):
            row["genuine"] = not row["larger"].startswith("up")
            row["any_period"] = max([score for _, score in
                                     records[row["larger"]]["signals"]["jpeg_grids_smooth"]],
                                    default=0.0)
            readings[split].append(row)
        for (pool, names), (query_name, expected) in itertools.product(POOLS.items(),
                                                                       EXPECTED.items()):
            copies = [records[name] for name in names]
            query = {**_query_facts(files[query_name], copies), "format": "JPEG"}
            matches = [{"id": records[name]["id"], "kind": "near_duplicate"} for name in names]
            found = origin.annotate(query, matches, {r["id"]: r for r in copies})
            for name in names:
                larger, upscaled = expected[name]
                got = found["matches"][records[name]["id"]]
                key = f"{pool}, query {query_name}: {name}"
                row = tally.setdefault(split, {}).setdefault(key, {
                    "n": 0, "larger_right": 0, "upscaled_right": 0, "expected": [larger, upscaled]})
                row["n"] += 1
                row["larger_right"] += got["larger_than_query"] == larger
                row["upscaled_right"] += got["upscaled"] == upscaled
                if (got["larger_than_query"], got["upscaled"]) != (larger, upscaled):
                    wrong.append({"set": entry["name"], "split": split, "pool": pool,
                                  "query": query_name, "copy": name,
                                  "expected": [larger, upscaled],
                                  "got": [got["larger_than_query"], got["upscaled"]]})
            key = f"{pool}, query {query_name}: query_upscaled"
            row = tally.setdefault(split, {}).setdefault(key, {"n": 0, "right": 0})
            row["n"] += 1
            row["right"] += found["query_upscaled"] == QUERY_UPSCALED[query_name]
        _say(f"{entry['name']} ({split}) done")
    ms = {name: round(1000 * float(np.median(t)), 1) for name, t in timings.items()
          if name in ("original", "down1000", "small")}
    return {"tally": tally, "readings": readings, "nearest": nearest, "wrong": wrong,
            "ingest_ms": ms}


def _bar(values: list[float], margin: float = 0.05, step: float = 0.05) -> float:
    """The lowest multiple of ``step`` at least ``margin`` over every value."""
    return round(float(np.ceil((max(values) + margin) / step - 1e-9) * step), 2)


def choose_bars(rows: list[dict], nearest: list[dict]) -> dict:
    """The bars the rule below picks from genuine pairs (larger copies that are no enlargement):
    each the lowest multiple of 0.05 at least 0.05 over every genuine reading it must stay
    above; the any-period bar 0.25 over, as it is one maximum over ~100 periods per image; the
    nearest-neighbour bar midway between the least share of a genuine copy and the largest of a
    2x nearest-neighbour enlargement, rounded down to a multiple of 0.05."""
    genuine = [r for r in rows if r["genuine"]]
    midway = (min(n["least"] for n in nearest if n["genuine"])
              + max(n["at_2"] for n in nearest if n["name"] == "up2_nearest")) / 2
    return {
        "NEAREST_BAR": round(float(np.floor(midway / 0.05 + 1e-9) * 0.05), 2),
        "GRID_BAR": _bar([r["smooth"] for r in genuine if not r["beat"]]),
        "GRID_BEAT_BAR": _bar([r["smooth"] for r in genuine if r["beat"]]),
        "GRID_SHARP_BAR": _bar([r["sharp"] for r in genuine]),
        "GRID_SELF_BAR": _bar([r["any_period"] for r in genuine], margin=0.25),
    }


def _wrong_claims(wrong: list[dict]) -> dict:
    """Claims not as expected, by kind; the genuine copies misjudged are listed one by one."""
    genuine_upscaled = [w for w in wrong if w["got"][1] and not w["expected"][1]]
    genuine_not_larger = [w for w in wrong if w["expected"][0] and not w["got"][0]]
    return {
        "genuine copy called upscaled": len(genuine_upscaled),
        "genuine larger copy not called larger": len(genuine_not_larger),
        "enlargement not called upscaled": sum(w["expected"][1] and not w["got"][1]
                                               for w in wrong),
        "of which called larger than the query": sum(
            w["expected"][1] and not w["got"][1] and w["got"][0] for w in wrong),
        "genuine copies misjudged": genuine_upscaled + genuine_not_larger,
    }


def main() -> None:
    from bench.datasets import cache_folder
    from picorigin._provenance import enlarged

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a third of the photos")
    args = parser.parse_args()
    started = time.time()
    photos = full_size_photographs(SIZE)
    if not photos:
        _say("no full-size photographs (the Debian wallpaper packages could not be fetched)")
        sys.exit(1)
    if args.quick:
        photos = photos[::3]
    sets = build(photos, cache_folder() / "upscale" / f"v{DATA_VERSION}")
    _say(f"{len(sets)} originals from {len(photos)} photographs")
    result = evaluate(sets)
    chosen = choose_bars(result["readings"]["validation"], result["nearest"]["validation"])
    in_use = {name: getattr(enlarged, name) for name in chosen}
    summary = {}
    for split, rows in result["tally"].items():
        for key, row in rows.items():
            if "right" in row:
                summary.setdefault(split, {})[key] = round(row["right"] / row["n"], 3)
            else:
                summary.setdefault(split, {})[key] = {
                    "larger_right": round(row["larger_right"] / row["n"], 3),
                    "upscaled_right": round(row["upscaled_right"] / row["n"], 3),
                    "n": row["n"], "expected_larger_upscaled": row["expected"]}
    score_stats = {}
    for split, rows in result["readings"].items():
        genuine = [r for r in rows if r["genuine"]]
        score_stats[split] = {
            "genuine pairs": len(genuine),
            "genuine max smooth (no beat predicted)": max(r["smooth"] for r in genuine
                                                          if not r["beat"]),
            "genuine max smooth (beat predicted)": max([r["smooth"] for r in genuine
                                                        if r["beat"]], default=None),
            "genuine max sharp": max(r["sharp"] for r in genuine),
            "genuine max smooth, any period": max(r["any_period"] for r in genuine),
            "genuine least nearest-neighbour share": round(min(
                n["least"] for n in result["nearest"][split] if n["genuine"]), 3),
            "2x nearest enlargements' share at 2, max": round(max(
                n["at_2"] for n in result["nearest"][split] if n["name"] == "up2_nearest"), 3),
            "bars chosen on this split": choose_bars(rows, result["nearest"][split])}
    out = {"originals": len(sets), "photos": len(photos), "quick": args.quick,
           "kinds": list(KINDS), "bars_chosen_on_validation": chosen, "bars_in_use": in_use,
           "grid_scores": score_stats, "claims": summary,
           "wrong_claims": _wrong_claims(result["wrong"]),
           # median ms per file of what ingest adds for this (full-size decode + traces), on
           # one core: 2000x1250, 1000x625, 500x312
           "ingest_ms": result["ingest_ms"],
           "seconds": round(time.time() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "upscale.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("originals", "bars_chosen_on_validation",
                                          "bars_in_use", "grid_scores")}, indent=1))
    for split in ("validation", "test"):
        print(f"\n{split}:")
        for key, value in summary.get(split, {}).items():
            print(f"  {key:40s} {value}")
    print("\nclaims not as expected:", json.dumps(
        {k: v for k, v in out["wrong_claims"].items() if not isinstance(v, list)}))
    if chosen != in_use:
        _say(f"the bars in use {in_use} differ from those the validation split chooses {chosen}")


if __name__ == "__main__":
    main()
