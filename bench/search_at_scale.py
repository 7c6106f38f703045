"""Whole searches at scale: ``Engine.search`` latency and recall with 100,000 images indexed.

The copy benchmark indexes 26 originals; a search's cost grows with the local stage's posting
lists. Here the engine indexes the same originals (``copy_detection.split``), then its local
stage gets 300 real distractor tiles (``partial_copies.distractor_images``) and N synthetic
images (``partial_copies.add_synthetic``: features of those tiles with half their visual words
redrawn from the collection's word frequencies, so posting lists have realistic lengths). The
fingerprint and deep indexes keep only the originals: at 100,000 a fingerprint query costs
~0.1 ms and a deep one ~2 ms (``bench/speed.py``, ``bench/similar.py``), next to ~100 ms.

The engine is closed meanwhile: distractors and synthetic images go into the same data folder's
catalog (``catalog.sqlite``) through a local stage of their own, each as a placeholder image
row (no file, no thumbnail, no fingerprint or deep signal) with a ``local`` signal; the stage
then checkpoints its index, which the reopened engine loads. A local match on a placeholder is
a match like any other: it counts as a false positive (or a miss) when it wins. Before the
catalog held every signal, the local stage kept these images outside the catalog and the engine
dropped their matches; ``as_before`` gives recall and false positives counted that way (matches
on placeholders ignored), to compare with figures from then.

Queries: the copy benchmark's cached local-family edits (crops, small rotations, paste-ins,
screenshots) of the indexed originals (positives) and of its negatives. Run
``python -m bench.copy_detection`` first, then ``python -m bench.search_at_scale [--scale N]``;
results go to ``bench/results/search_at_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.copy_detection import split
from bench.datasets import cache_folder, load_photos
from bench.edits import EDITS_VERSION
from bench.partial_copies import (
    add_signals,
    add_synthetic,
    distractor_images,
    local_stats,
    open_local_stage,
)
from picorigin import Engine
from picorigin._models import COPY_KINDS
from picorigin._stages.local import LocalStage

RESULTS = Path(__file__).resolve().parent / "results"
PLACEHOLDERS = 5_000_000  # ids from here on: distractor tiles and synthetic images
FAMILIES = ("crop", "rotate", "pasted", "screenshot")


def _queries(photos, positive: bool, hosts):
    folder = cache_folder() / f"queries-v{EDITS_VERSION}"
    # Paste-ins on this split's hosts only: the cache also holds the quick split's, whose host
    # may be indexed here (and rightly found).
    on_hosts = tuple(f"-on-{host.name}" for host in hosts)
    out = []
    for photo in photos:
        for path in sorted((folder / photo.name).glob("*.jpg")):
            family = next((f for f in FAMILIES if path.stem.startswith(f)), None)
            if family is None or (family == "pasted" and not path.stem.endswith(on_hosts)):
                continue
            family = path.stem[:6] if family == "crop" else family  # crop10 .. crop75
            out.append((photo.name, family, path, positive))
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=int, default=None,
                        help="synthetic images (default 100,000; 10,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help="copy_detection --quick's photos")
    args = parser.parse_args(argv)
    if args.scale is None:
        args.scale = 10_000 if args.quick else 100_000
    import cv2

    cv2.setNumThreads(1)
    photos = load_photos()
    if args.quick:
        photos = photos[::3]
    indexed, negatives, hosts = split(photos)
    queries = _queries(indexed, True, hosts) + _queries(negatives, False, hosts)
    if not any(q[3] for q in queries):
        raise SystemExit("no cached queries: run python -m bench.copy_detection first")
    with tempfile.TemporaryDirectory(prefix="picorigin-scale-") as folder:
        with Engine(folder) as engine:
            report = engine.index([p.path for p in indexed], workers=2)
            ids = {Path(r["uris"][0]).stem: r["id"]
                   for r in engine.list_images(limit=1000)["images"]}
        print(f"[scale] indexed {report.indexed} originals; adding {args.scale} synthetic images")
        t = time.perf_counter()
        stage, catalog = open_local_stage(folder)
        # The pool synthetic images are drawn from: real distractor tiles, in the local stage
        # only (not copies of the originals, which would crowd the results).
        pool = []
        for j, (_, tile) in enumerate(distractor_images(300)):
            add_signals(stage, [PLACEHOLDERS + j], [LocalStage.compute(tile)])
            pool.append(PLACEHOLDERS + j)
        add_synthetic(stage, args.scale, 10_000_000, pool or list(ids.values()))
        stage.store.sync()  # rebuild the index now, so the checkpoint the engine loads has all
        stage.save(force=True)
        stats = local_stats(stage)
        stage.close()
        catalog.close()
        print(f"[scale] local stage: {stats['images']} images, "
              f"{stats['bytes_per_image_on_disk']} B/image on disk "
              f"({stats['bytes_per_image_in_files']} in the files), "
              f"{stats['bytes_per_image_in_ram']} B/image in RAM "
              f"({time.perf_counter() - t:.0f} s)")
        records = []
        with Engine(folder) as engine:
            engine.search(queries[0][2])  # load every index before timing
            for name, family, path, positive in queries:
                result = engine.search(path, k=10)
                copies = [m for m in result.matches if m.kind in COPY_KINDS]
                real = [m for m in copies if m.id < PLACEHOLDERS]
                records.append({
                    "photo": name, "family": family, "positive": positive,
                    "found": bool(copies) and copies[0].id == ids.get(name),
                    "claimed": bool(copies),
                    "found_as_before": bool(real) and real[0].id == ids.get(name),
                    "claimed_as_before": bool(real),
                    "elapsed_ms": round(result.elapsed_ms, 1),
                    "query": path.name,
                    "copies": [{"id": m.id, "kind": m.kind, "score": m.score,
                                "distance": m.distance,
                                **{k: m.extra.get(k) for k in ("inliers", "correlation",
                                                               "query_box", "match_box")}}
                               for m in copies[:3]],
                })
    elapsed = [r["elapsed_ms"] for r in records]
    by_family, by_family_before = {}, {}
    for r in records:
        if r["positive"]:
            by_family.setdefault(r["family"], []).append(r["found"])
            by_family_before.setdefault(r["family"], []).append(r["found_as_before"])
    negatives_claimed = [r["claimed"] for r in records if not r["positive"]]
    claimed_before = [r["claimed_as_before"] for r in records if not r["positive"]]
    out = {
        "synthetic": args.scale,
        "local_stage": stats,
        "queries": len(records),
        "latency_ms": {p: round(float(np.percentile(elapsed, p)), 1) for p in (50, 90, 99)},
        "recall@1": {f: round(float(np.mean(v)), 3) for f, v in sorted(by_family.items())},
        "fp_rate": round(float(np.mean(negatives_claimed)), 4) if negatives_claimed else None,
        "negative_queries": len(negatives_claimed),
        "as_before": {
            "recall@1": {f: round(float(np.mean(v)), 3)
                         for f, v in sorted(by_family_before.items())},
            "fp_rate": round(float(np.mean(claimed_before)), 4) if claimed_before else None,
        },
        "records": records,
    }
    print(f"[scale] {len(records)} searches: p50 {out['latency_ms'][50]} ms, "
          f"p90 {out['latency_ms'][90]} ms, p99 {out['latency_ms'][99]} ms")
    print(f"[scale] recall@1 {out['recall@1']}; false positives {out['fp_rate']} "
          f"of {len(negatives_claimed)} negative queries")
    before = out["as_before"]
    if before["recall@1"] != out["recall@1"] or before["fp_rate"] != out["fp_rate"]:
        print(f"[scale] ignoring matches on placeholder images (as before): "
              f"recall@1 {out['as_before']['recall@1']}; false positives "
              f"{out['as_before']['fp_rate']}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_at_scale.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
