"""Speed: ingest time per image against the anchors, query latency, and latency at scale.

Everything runs on ONE core: the script re-executes itself under ``taskset -c 0`` (or
``os.sched_setaffinity``) with ``OMP_NUM_THREADS=OPENBLAS_NUM_THREADS=MKL_NUM_THREADS=1``,
and sets OpenCV's and FAISS's thread counts to 1.

1. Ingest, per 1.5-megapixel JPEG (1500 x 1000, quality 90, made from the benchmark photos):
   picorigin's decode + fingerprint (``_imaging.read_source`` + ``_imaging.decode`` at the
   engine's working size + ``_features.fingerprint.compute``), ``Engine.add`` (also hashing,
   metadata, thumbnail, SQLite commit, index insert), imagehash pHash (``Image.open`` + phash),
   image-match's Goldberg signature (open + RGB array + signature) and PDQ (open + RGB array +
   ``pdqhash.compute``). Median and p90 ms per image, and each anchor's time over picorigin's.
2. Query latency, ``Engine.search`` of every indexed file, p50 / p99.
3. Scale: 1,000,000 and 10,000,000 random 256-bit codes added straight to the fingerprint index
   backend (``picorigin._index.faiss_binary.FaissBinaryIndex``); index search latency p50 / p99
   for one query code at the engine's ``near_duplicate_distance`` radius, and memory per image
   from the RSS growth and from the backend's ``memory_bytes()``.

Run ``python -m bench.speed [--quick]``; results go to ``bench/results/speed.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_ONE_CORE_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                 "NUMEXPR_NUM_THREADS": "1", "VECLIB_MAXIMUM_THREADS": "1"}
_PINNED = "_PICORIGIN_BENCH_PINNED"


def _pin_to_one_core(argv: list[str]) -> str:
    """Re-exec under taskset with single-thread env; return a line saying what was used."""
    if os.environ.get(_PINNED):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # belt and braces
        return os.environ[_PINNED]
    env = {**os.environ, **_ONE_CORE_ENV}
    command = [sys.executable, "-m", "bench.speed", *argv]
    if shutil.which("taskset"):
        env[_PINNED] = "taskset -c 0, " + ", ".join(f"{k}=1" for k in _ONE_CORE_ENV)
        command = ["taskset", "-c", "0", *command]
    else:
        env[_PINNED] = "sched_setaffinity({0}), " + ", ".join(f"{k}=1" for k in _ONE_CORE_ENV)
    sys.stdout.flush()
    root = Path(__file__).resolve().parent.parent
    raise SystemExit(subprocess.call(command, env=env, cwd=root))


import numpy as np  # noqa: E402  (after the function above so the re-exec is cheap)
from PIL import Image  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SPEED_SIZE = (1500, 1000)  # 1.5 megapixels


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _stats(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1000
    return {"n": int(ms.size), "median_ms": float(np.median(ms)),
            "p90_ms": float(np.percentile(ms, 90)), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99))}


def speed_files(count: int) -> list[Path]:
    """``count`` distinct 1500 x 1000 JPEGs (q90) cut from the benchmark photos, cached."""
    from bench.datasets import cache_folder, load_photos

    folder = cache_folder() / "speed"
    folder.mkdir(exist_ok=True)
    photos = load_photos()
    big = [p for p in photos if p.source != "skimage"] or photos  # wallpapers when available
    files = []
    for i in range(count):
        out = folder / f"speed-{i:03d}.jpg"
        if not out.exists():
            photo = big[i % len(big)]
            with Image.open(photo.path) as image:
                image = image.convert("RGB")
            # A different window of each photo per round, so every file's bytes differ.
            scale = max(SPEED_SIZE[0] / image.width, SPEED_SIZE[1] / image.height) * (
                1 + 0.07 * (i // len(big)))
            image = image.resize((round(image.width * scale) + 1, round(image.height * scale) + 1),
                                 Image.Resampling.LANCZOS)
            left = (image.width - SPEED_SIZE[0]) * ((i * 37) % 100) // 100
            top = (image.height - SPEED_SIZE[1]) * ((i * 53) % 100) // 100
            image.crop((left, top, left + SPEED_SIZE[0], top + SPEED_SIZE[1])).save(
                out, "JPEG", quality=90)
        files.append(out)
    return files


def _tmp():
    return tempfile.TemporaryDirectory(prefix="picorigin-speed-")


def ingest(files: list[Path], warmup: Path, repeat: int) -> dict:
    """ms per image for picorigin's decode+fingerprint, Engine.add, and the three anchors.

    The methods take turns file by file (in a rotating order), so a noisy neighbour on the
    core slows them all alike instead of whichever happened to run at that moment.
    """
    from bench import anchors
    from picorigin import Engine, _imaging
    from picorigin._ingest.analyse import FINGERPRINT_SIDE
    from picorigin._features import fingerprint
    from picorigin._settings import resolve_settings

    settings = resolve_settings()

    def picorigin_fingerprint(path):
        uri, data = _imaging.read_source(str(path), settings)
        decoded = _imaging.decode(data, source=uri, working_side=FINGERPRINT_SIDE,
                                  max_pixels=settings["max_pixels"], max_side=settings["max_side"])
        return fingerprint.compute(decoded.image)

    def rgb_array(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))

    def phash(path):
        with Image.open(path) as image:
            return anchors.phash(image)

    methods = {
        "picorigin decode+fingerprint": picorigin_fingerprint,
        "picorigin Engine.add": None,  # filled in below: needs the open engine
        "pHash (imagehash)": phash,
        "Goldberg (image-match)": lambda path: anchors.goldberg(rgb_array(path)),
        "PDQ (pdqhash)": lambda path: anchors.pdq(rgb_array(path)),
        "PDQ-8 dihedral (pdqhash)": lambda path: anchors.pdq_dihedral(rgb_array(path)),
    }
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(Engine(stack.enter_context(_tmp())))
        methods["picorigin Engine.add"] = lambda path: engine.add(str(path))
        adds = ["picorigin Engine.add"]
        try:  # the same without the optional full-size detail measurement, if the engine has it
            plain = stack.enter_context(Engine(stack.enter_context(_tmp()),
                                               settings={"measure_detail": False}))
            methods["Engine.add, measure_detail off"] = lambda path: plain.add(str(path))
            adds.append("Engine.add, measure_detail off")
        except Exception as error:
            print(f"[speed] no measure_detail comparison: {error}")
        samples: dict[str, list[float]] = {name: [] for name in methods}
        for fn in methods.values():
            fn(warmup)  # imports, lazy tables, the catalog's first write
        names = list(methods)
        for round_ in range(repeat):
            for i, path in enumerate(files):
                shift = (i + round_) % len(names)
                for name in names[shift:] + names[:shift]:
                    if name in adds and round_:
                        continue  # adding the same bytes again is a no-op: once per file
                    started = time.perf_counter()
                    methods[name](path)
                    samples[name].append(time.perf_counter() - started)
        searches = []
        for _ in range(repeat):
            for path in files:
                searches.append(engine.search(str(path), k=10).elapsed_ms / 1000)
    out = {name: _stats(values) for name, values in samples.items()}
    out["query"] = _stats(searches)
    return out


def scale(sizes: list[int], queries: int) -> dict:
    """Index-backend search latency and memory with millions of random codes."""
    try:
        import faiss

        from picorigin._features.fingerprint import BITS
        from picorigin._index.faiss_binary import FaissBinaryIndex
        from picorigin._settings import resolve_settings

        faiss.omp_set_num_threads(1)
        index = FaissBinaryIndex(BITS)
        radius = int(resolve_settings()["near_duplicate_distance"])
        search, add, memory = index.search, index.add, index.memory_bytes
    except Exception as error:  # the lead's API differs from what this was written against
        print(f"[speed] scale test skipped, index backend API not as expected: {error!r}")
        return {"skipped": repr(error)}

    rng = np.random.default_rng(7)
    code_bytes = BITS // 8
    out = {}
    baseline = _rss_bytes()
    stored = 0
    chunk = 1_000_000
    samples = []  # a few stored codes kept aside, to query near copies of
    for size in sizes:
        while stored < size:
            n = min(chunk, size - stored)
            codes = rng.integers(0, 256, (n, code_bytes), dtype=np.uint8)
            add(np.arange(stored, stored + n, dtype=np.int64), codes)
            samples.append(codes[:100].copy())
            stored += n
            del codes
        kept = np.concatenate(samples)
        rss = _rss_bytes() - baseline
        # Half the queries are near copies of stored codes (10 bits flipped), half unrelated.
        latencies, found = [], 0
        for i in range(queries):
            if i % 2:
                query = rng.integers(0, 256, (1, code_bytes), dtype=np.uint8)
            else:
                query = _near_copy(kept[rng.integers(len(kept))], rng)
            started = time.perf_counter()
            hits = search(query, radius)
            latencies.append(time.perf_counter() - started)
            found += bool(hits)
        out[str(size)] = {**_stats(latencies), "rss_bytes_per_image": rss / stored,
                          "index_bytes_per_image": memory() / stored, "queries_with_hits": found,
                          "radius": radius}
    return out


def _near_copy(code: np.ndarray, rng) -> np.ndarray:
    """``code`` with 10 random bits flipped, shape (1, bytes)."""
    code = code.reshape(1, -1).copy()
    for bit in rng.choice(code.size * 8, 10, replace=False):
        code[0, bit // 8] ^= np.uint8(1 << (bit % 8))
    return code


def print_report(result: dict) -> None:
    ing = result["ingest"]
    base = ing["picorigin decode+fingerprint"]["median_ms"]
    print()
    print(f"Ingest, one {SPEED_SIZE[0]}x{SPEED_SIZE[1]} JPEG (q90) per call, {result['pinning']}")
    print(f"{'method':32s} {'n':>5s} {'median ms':>10s} {'p90 ms':>8s} "
          f"{'time / picorigin fp':>20s}")
    for name, s in ing.items():
        if name == "query":
            continue
        print(f"{name:32s} {s['n']:5d} {s['median_ms']:10.2f} {s['p90_ms']:8.2f} "
              f"{s['median_ms'] / base:19.2f}x")
    q = ing["query"]
    print(f"\nEngine.search (its elapsed_ms) of each of the {result['indexed']} indexed images: "
          f"p50 {q['p50_ms']:.2f} ms, p99 {q['p99_ms']:.2f} ms (n={q['n']})")
    sc = result["scale"]
    if "skipped" in sc:
        print(f"\nscale: skipped ({sc['skipped']})")
        return
    print("\nScale: FaissBinaryIndex (flat, exact) with random 256-bit codes, one query code "
          "per search (half near copies, half unrelated)")
    print(f"{'images':>12s} {'p50 ms':>8s} {'p99 ms':>8s} {'RSS B/image':>12s} "
          f"{'index B/image':>14s} {'radius':>7s}")
    for size, s in sc.items():
        print(f"{int(size):12,d} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} "
              f"{s['rss_bytes_per_image']:12.1f} {s['index_bytes_per_image']:14.1f} "
              f"{s['radius']:7d}")


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer files, 1M codes only")
    args = parser.parse_args(argv)
    pinning = _pin_to_one_core(argv)

    import cv2

    cv2.setNumThreads(1)
    started = time.perf_counter()
    *files, warmup = speed_files(21 if args.quick else 61)
    result = {
        "pinning": pinning,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "indexed": len(files),
        "ingest": ingest(files, warmup, repeat=2 if args.quick else 3),
        "scale": scale([1_000_000] if args.quick else [1_000_000, 10_000_000],
                       queries=100 if args.quick else 300),
    }
    result["total_s"] = time.perf_counter() - started
    print_report(result)
    print(f"\ntotal {result['total_s']:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("speed_quick.json" if args.quick else "speed.json")
    path.write_text(json.dumps(result, indent=1))
    print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
