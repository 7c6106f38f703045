"""Whole-search latency and CPU time, this tree against a baseline commit, in one run.

Both trees index the same collection (the copy bench's indexed originals plus tiles of the
distractor photos: about 300 images) into fresh data folders, then search the same sample of
the copy bench's queries (every third positive of each family, every third negative), one
process, one query at a time. Each tree runs in its own subprocess, alternately in two rounds
(baseline, this, baseline, this) so that a busy moment of the machine hits both alike; a
query's figure is the smaller of its two rounds. Prints p50/p90/p99 of wall time and of the
process's CPU time, and the ratios; writes ``bench/results/search_latency.json``.

The baseline is ``git archive BASE`` of this repository (default 8d5cb09, the main before the
store redesign), unpacked into the bench cache.

    python -m bench.search_latency [--base COMMIT] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import io
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DEFAULT_BASE = "8d5cb09"
TILES_PER_DISTRACTOR = 8


def _collection_and_queries(quick: bool) -> tuple[list[str], list[dict]]:
    from PIL import Image

    from bench.copy_detection import make_queries, split
    from bench.datasets import cache_folder, distractor_photos, load_photos
    from multiprocessing import get_context

    photos = load_photos()
    if quick:
        photos = photos[::3]
    indexed, negatives, hosts = split(photos)
    with get_context("forkserver").Pool(os.cpu_count() or 1) as pool:
        queries = make_queries(indexed, negatives, hosts, pool)
    tiles = []
    folder = cache_folder() / "latency-tiles"
    folder.mkdir(exist_ok=True)
    for photo in distractor_photos()[: 10 if quick else None]:
        with Image.open(photo.path) as image:
            image = image.convert("RGB")
            w, h = image.size
            for i in range(TILES_PER_DISTRACTOR):
                out = folder / f"{photo.name}-{i}.jpg"
                if not out.exists():
                    x, y = (i % 4) * w // 4, (i // 4) * h // 2
                    image.crop((x, y, x + w // 4, y + h // 2)).save(out, quality=90)
                tiles.append(str(out))
    sample = []
    by_family: dict[tuple[str, bool], int] = {}
    for q in queries:
        key = (q.family, q.positive)
        by_family[key] = by_family.get(key, 0) + 1
        if by_family[key] % 3 == 1:
            sample.append({"path": str(q.path), "family": q.family, "positive": q.positive})
    return [str(p.path) for p in indexed] + tiles, sample


def _worker(tree: str, collection: list[str], queries: list[dict], out: str) -> None:
    """In a subprocess: index ``collection`` with ``tree``'s picorigin, time every query."""
    sys.path.insert(0, tree)
    import cv2

    cv2.setNumThreads(1)
    from picorigin import Engine

    rows = []
    with tempfile.TemporaryDirectory(prefix="picorigin-latency-") as folder:
        with Engine(folder) as engine:
            engine.index(collection, workers=1)
            engine.search(queries[0]["path"])  # loads every index: not a query's cost
            for query in queries:
                wall, cpu = time.perf_counter(), time.process_time()
                result = engine.search(query["path"], k=10)
                rows.append({"wall_ms": 1000 * (time.perf_counter() - wall),
                             "cpu_ms": 1000 * (time.process_time() - cpu),
                             "copies": len(result.copies)})
    Path(out).write_text(json.dumps(rows))


def _baseline_tree(base: str) -> Path:
    from bench.datasets import cache_folder

    folder = cache_folder() / f"baseline-{base}"
    if not (folder / "picorigin").exists():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", base], check=True,
                                 capture_output=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder


def _quantiles(values: list[float]) -> dict:
    array = np.asarray(values)
    return {f"p{p}": round(float(np.percentile(array, p)), 1) for p in (50, 90, 99)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help="baseline commit")
    parser.add_argument("--quick", action="store_true", help="a third of the photos")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        tree, spec, out = args.worker
        job = json.loads(Path(spec).read_text())
        _worker(tree, job["collection"], job["queries"], out)
        return {}
    collection, queries = _collection_and_queries(args.quick)
    trees = {"baseline": str(_baseline_tree(args.base)), "this": str(ROOT)}
    runs: dict[str, list[list[dict]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "job.json"
        spec.write_text(json.dumps({"collection": collection, "queries": queries}))
        for round_ in range(2):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name}-{round_}.json"
                print(f"[latency] round {round_ + 1}: {name} ({len(collection)} images, "
                      f"{len(queries)} queries)", flush=True)
                subprocess.run([sys.executable, "-m", "bench.search_latency", "--worker", tree,
                                str(spec), str(out)], check=True, cwd=ROOT)
                runs[name].append(json.loads(out.read_text()))
    summary: dict = {}
    for name, rounds in runs.items():
        wall = [min(r[i]["wall_ms"] for r in rounds) for i in range(len(queries))]
        cpu = [min(r[i]["cpu_ms"] for r in rounds) for i in range(len(queries))]
        summary[name] = {"wall_ms": _quantiles(wall), "cpu_ms": _quantiles(cpu),
                         "copies_found": sum(r["copies"] > 0 for r in rounds[0])}
    ratios = {kind: {p: round(summary["this"][kind][p] / summary["baseline"][kind][p], 3)
                     for p in ("p50", "p90", "p99")} for kind in ("wall_ms", "cpu_ms")}
    out = {"base": args.base, "quick": args.quick, "images": len(collection),
           "queries": len(queries), "positives": sum(q["positive"] for q in queries),
           "cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "summary": summary, "ratio_this_to_baseline": ratios}
    print(json.dumps(out, indent=1))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("search_latency_quick.json" if args.quick else "search_latency.json")
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _cpu_flags() -> list[str]:
    """The vector extensions that decide int8 speed and accuracy (the baseline's deep stage ran
    an int8 graph: slower, and wrong, without VNNI)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return sorted(have & {"avx2", "avx512f", "avx512_vnni", "avx_vnni"})
    except OSError:
        pass
    return []


if __name__ == "__main__":
    main()
