"""Copy detection: does a search for an edited photo find its original, and only that?

The source photos (``bench/datasets.py``) are split, with a fixed seed, into

- indexed originals (about 80 %), put into a fresh picorigin data folder with ``Engine.index``;
- negatives (about 20 %), never indexed: each of their edited versions is a *negative* query,
  and any copy claim for it is a false positive; joined by every image of three Debian
  wallpaper packages no benchmark indexes (``datasets.distractor_photos``: 32 photographs and
  artworks), so the false-positive rate rests on more than a handful of photos;
- two host photos, neither indexed nor queried, that the paste edits paste photos into (an
  indexed host would rightly be found in a pasted query and muddle the score).

Every edit of ``bench/edits.py`` is applied to every indexed and negative photo. Each edited
query is searched with ``Engine.search(path, k=10)``; it counts as found at rank r when the r-th
copy-kind match (exact, near_duplicate, partial) is its original. The same queries run through
the anchors (``bench/anchors.py``: imagehash pHash, image-match's Goldberg signature, PDQ in 8
orientations), each as a nearest-neighbour search over the same originals with its customary
threshold, and with the threshold that suits it best on this very set.

A fingerprint-only pass recomputes picorigin's global fingerprint distances with its own public
functions (decode at the engine's working size, ``fingerprint.probes``), without any radius, to
show how far true copies and unrelated images fall: what ``near_duplicate_distance`` trades.

Run ``python -m bench.copy_detection [--quick]``; results go to
``bench/results/copy_detection.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from bench import anchors
from bench.datasets import Photo, cache_folder, distractor_photos, load_photos
from bench.edits import EDITS, EDITS_VERSION, FAMILIES, FAMILY_STAGE, file_stem
from picorigin._evaluation import (
    best_threshold,
    false_positive_rate,
    mean_average_precision,
    recall_at_k,
    recall_at_k_by_group,
)

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 20240601
COPY_KINDS = ("exact", "near_duplicate", "partial")


@dataclass(frozen=True)
class Query:
    photo: str  # name of the photo it was made from
    edit: str
    family: str
    path: Path
    positive: bool  # its original is indexed


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "little")


def split(photos: list[Photo]) -> tuple[list[Photo], list[Photo], list[Photo]]:
    """(indexed, negatives, hosts), chosen with a fixed seed."""
    order = list(photos)
    np.random.default_rng(SEED).shuffle(order)
    hosts, rest = order[:2], order[2:]
    n_negative = max(1, round(0.2 * len(rest)))
    negatives, indexed = rest[:n_negative], rest[n_negative:]
    return sorted(indexed, key=_name), sorted(negatives, key=_name), hosts


def _name(photo: Photo) -> str:
    return photo.name


# -- making the queries ----------------------------------------------------------------------


def _make_query(job: tuple[str, str, str, str, str]) -> str:
    photo_path, photo_name, edit_name, host_path, out = job
    edit = next(e for e in EDITS if e.name == edit_name)
    if not os.path.exists(out):
        with Image.open(photo_path) as image, Image.open(host_path) as host:
            rng = np.random.default_rng(_seed(photo_name, edit_name))
            edited = edit.apply(image.convert("RGB"), rng, host.convert("RGB"))
        tmp = out + ".tmp"
        edited.save(tmp, "JPEG", quality=edit.quality)
        os.replace(tmp, out)
    return out


def make_queries(
    indexed: list[Photo], negatives: list[Photo], hosts: list[Photo], pool
) -> list[Query]:
    """Write (or reuse from the cache) every edited query image."""
    folder = cache_folder() / f"queries-v{EDITS_VERSION}"
    jobs, queries = [], []
    for positive, photos in ((True, indexed), (False, negatives)):
        for photo in photos:
            (folder / photo.name).mkdir(parents=True, exist_ok=True)
            for edit in EDITS:
                host = hosts[_seed(photo.name, edit.name, "host") % len(hosts)]
                stem = file_stem(edit.name)
                if edit.family == "pasted":
                    # The host is part of the picture: a cached query made with another split's
                    # host (quick and full runs differ) could show an indexed photo.
                    stem += f"-on-{host.name}"
                out = folder / photo.name / f"{stem}.jpg"
                jobs.append((str(photo.path), photo.name, edit.name, str(host.path), str(out)))
                queries.append(Query(photo.name, edit.name, edit.family, out, positive))
    list(pool.imap_unordered(_make_query, jobs, chunksize=4))
    return queries


# -- anchors and the fingerprint-only pass ---------------------------------------------------


def _features(job: tuple[str, bool]) -> dict:
    """Every anchor's code for one file (``query``: also the 8 PDQ orientations and probes)."""
    path, query = job
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    array = np.asarray(rgb)
    out = {
        "phash": anchors.phash(rgb),
        "goldberg": anchors.goldberg(array),
        "pdq": anchors.pdq_dihedral(array) if query else anchors.pdq(array)[None, :],
    }
    out["fingerprint"] = _fingerprint_codes(path, query)
    return out


def _fingerprint_codes(path: str, query: bool) -> np.ndarray | None:
    """picorigin's global fingerprint, as the engine computes it: stored code, or query probes."""
    try:
        from picorigin import _imaging
        from picorigin._ingest.analyse import FINGERPRINT_SIDE
        from picorigin._features import fingerprint
        from picorigin._settings import resolve_settings

        settings = resolve_settings()
        uri, data = _imaging.read_source(path, settings)
        decoded = _imaging.decode(
            data, source=uri, working_side=FINGERPRINT_SIDE,
            max_pixels=settings["max_pixels"], max_side=settings["max_side"],
        )
        if not query:
            return fingerprint.compute(decoded.image).code[None, :]
        # As Engine.search does: every coefficient set of the query (query_coefficients adds
        # ones without caption bands, where the engine has it), each in its probe orientations.
        variants = getattr(fingerprint, "query_coefficients", None)
        sets = variants(decoded.image) if variants else [fingerprint.coefficients(decoded.image)]
        return np.stack([code for coeffs in sets for _, code in fingerprint.probes(coeffs)])
    except Exception as error:  # the lead's API moved: report, do not fail the whole run
        print(f"[copy_detection] fingerprint-only pass unavailable: {error!r}", file=sys.stderr)
        return None


def anchor_results(indexed: list[Photo], queries: list[Query], pool) -> dict:
    """Nearest-neighbour distances per query for every anchor (and the bare fingerprint)."""
    jobs = [(str(p.path), False) for p in indexed] + [(str(q.path), True) for q in queries]
    feats = pool.map(_features, jobs, chunksize=4)
    originals, per_query = feats[: len(indexed)], feats[len(indexed) :]
    names = [p.name for p in indexed]
    stores = {
        "phash": np.stack([f["phash"] for f in originals]),
        "goldberg": np.stack([f["goldberg"] for f in originals]),
        "pdq": np.stack([f["pdq"][0] for f in originals]),
    }
    have_fp = all(f["fingerprint"] is not None for f in feats)
    if have_fp:
        stores["fingerprint"] = np.stack([f["fingerprint"][0] for f in originals])
    out: dict[str, list[tuple[str, float, float]]] = {name: [] for name in stores}
    for query, feat in zip(queries, per_query):
        for method, store in stores.items():
            if method == "goldberg":
                distances = anchors.goldberg_to_all(feat["goldberg"], store)
            else:
                distances = anchors.hamming_to_all(feat[method], store)
            nearest = int(np.argmin(distances))
            true = names.index(query.photo) if query.positive else None
            true_distance = float(distances[true]) if true is not None else math.nan
            wrong = np.delete(distances, true) if true is not None else distances
            out[method].append(
                (names[nearest], float(distances[nearest]), true_distance,
                 float(wrong.min()) if wrong.size else math.inf)
            )
    return out


# -- picorigin -------------------------------------------------------------------------------


def run_picorigin(indexed: list[Photo], queries: list[Query]) -> dict:
    """Index the originals into a temporary data folder and search every query."""
    from picorigin import Engine, PicoriginError

    with tempfile.TemporaryDirectory(prefix="picorigin-bench-") as folder:
        with Engine(folder) as engine:
            report = engine.index([str(p.path) for p in indexed])
            if report.failed or report.indexed != len(indexed):
                print(f"[copy_detection] index report: {report.to_dict()}", file=sys.stderr)
            ids = {}
            for photo in indexed:
                matches = engine.search(str(photo.path), k=10).to_dict()["matches"]
                uri = str(photo.path.resolve())
                ids[photo.name] = next(
                    (m["id"] for m in matches if uri in (m.get("uris") or [m.get("uri")])),
                    matches[0]["id"] if matches else None,
                )
            results, errors = [], []
            for query in queries:
                try:
                    result = engine.search(str(query.path), k=10).to_dict()
                except PicoriginError as error:
                    errors.append((str(query.path), str(error)))
                    result = {"matches": [], "elapsed_ms": math.nan}
                results.append(result)
    return {"ids": ids, "results": results, "errors": errors, "index_seconds": report.seconds}


# -- report ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "   -  " if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}%"


def _quantiles(values: list[float]) -> dict | None:
    values = sorted(v for v in values if v is not None and math.isfinite(v))
    if not values:
        return None

    def q(p: float) -> float:
        return values[min(len(values) - 1, int(p * (len(values) - 1) + 0.5))]

    return {"n": len(values), "min": values[0], "p5": q(0.05), "p50": q(0.5), "p95": q(0.95),
            "max": values[-1]}


def evaluate(queries: list[Query], pico: dict, anchor: dict) -> dict:
    """Every number the report prints, as plain data."""
    ids = pico["ids"]
    truth = [ids.get(q.photo) if q.positive else None for q in queries]
    ranked = [[m["id"] for m in r["matches"] if m["kind"] in COPY_KINDS] for r in pico["results"]]
    families = [q.family for q in queries]
    stages = [FAMILY_STAGE[q.family] for q in queries]
    edits = [q.edit for q in queries]

    def by(labels, k=1):
        return recall_at_k_by_group(ranked, truth, labels, k)

    pico_summary = {
        "recall@1_family": by(families),
        "recall@1_stage": by(stages),
        "recall@1_edit": by(edits),
        "recall@1": recall_at_k(ranked, truth, 1),
        "recall@10": recall_at_k(ranked, truth, 10),
        "mAP@10": mean_average_precision(ranked, truth, 10),
        "fp_rate": false_positive_rate(ranked, truth),
        "fp_rate_family": {
            fam: false_positive_rate(
                [r for r, f in zip(ranked, families) if f == fam],
                [t for t, f in zip(truth, families) if f == fam],
            )
            for fam in FAMILIES
        },
    }
    # Orientation reported for the true match of orientation edits.
    orient_ok = orient_n = 0
    for q, r, t in zip(queries, pico["results"], truth):
        if q.family == "orientation" and t is not None:
            hit = next((m for m in r["matches"] if m["id"] == t), None)
            if hit is not None:
                orient_n += 1
                orient_ok += hit.get("orientation") == q.edit
    pico_summary["orientation_correct"] = (orient_ok, orient_n)

    # Distances seen in the match dicts, for the lead's thresholds.
    seen: dict[str, dict[str, list]] = {}
    for q, r, t in zip(queries, pico["results"], truth):
        entry = seen.setdefault(q.family, {"true": [], "best_wrong": [], "negative_best": []})
        distances = [(m["id"], m.get("distance")) for m in r["matches"]
                     if m.get("distance") is not None]
        if t is not None:
            entry["true"] += [d for i, d in distances if i == t]
            wrong = [d for i, d in distances if i != t]
            if wrong:
                entry["best_wrong"].append(min(wrong))
        elif distances:
            entry["negative_best"].append(min(d for _, d in distances))
    pico_summary["match_distances"] = {
        fam: {key: _quantiles(vals) for key, vals in entry.items()} for fam, entry in seen.items()
    }
    latencies = [r["elapsed_ms"] for r in pico["results"] if math.isfinite(r["elapsed_ms"])]
    pico_summary["query_ms"] = {"p50": _percentile(latencies, 50),
                                "p99": _percentile(latencies, 99)}

    standard = {"phash": anchors.PHASH_THRESHOLD, "goldberg": anchors.GOLDBERG_THRESHOLD,
                "pdq": anchors.PDQ_THRESHOLD}
    try:
        from picorigin._settings import resolve_settings

        standard["fingerprint"] = resolve_settings()["near_duplicate_distance"]
    except Exception:
        standard["fingerprint"] = 64
    anchor_summary = {}
    for method, rows in anchor.items():
        # positive: nearest distance if the nearest is the true original, else inf
        positive = [d if nearest == q.photo else math.inf
                    for q, (nearest, d, _, _) in zip(queries, rows) if q.positive]
        negative = [d for q, (_, d, _, _) in zip(queries, rows) if not q.positive]
        thresholds = {"standard": standard[method]}
        thresholds["best"], _, _ = best_threshold(positive, negative)
        summary = {"thresholds": thresholds}
        for label, thr in thresholds.items():
            ranked_m = [[nearest] if d <= thr else [] for nearest, d, _, _ in rows]
            truth_m = [q.photo if q.positive else None for q in queries]
            summary[label] = {
                "recall@1_family": recall_at_k_by_group(ranked_m, truth_m, families, 1),
                "recall@1_stage": recall_at_k_by_group(ranked_m, truth_m, stages, 1),
                "recall@1_edit": recall_at_k_by_group(ranked_m, truth_m, edits, 1),
                "recall@1": recall_at_k(ranked_m, truth_m, 1),
                "fp_rate": false_positive_rate(ranked_m, truth_m),
            }
        summary["distances"] = {
            fam: {
                "true": _quantiles([t for q, (_, _, t, _) in zip(queries, rows)
                                    if q.positive and q.family == fam]),
                "best_wrong": _quantiles([w for q, (_, _, _, w) in zip(queries, rows)
                                          if q.positive and q.family == fam]),
                "negative_best": _quantiles([d for q, (_, d, _, _) in zip(queries, rows)
                                             if not q.positive and q.family == fam]),
            }
            for fam in FAMILIES
        }
        summary["negative_best_all"] = _quantiles(negative)
        anchor_summary[method] = summary
    return {"picorigin": pico_summary, "anchors": anchor_summary}


def _percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else math.nan


def print_report(queries: list[Query], summary: dict, meta: dict) -> None:
    pico, anch = summary["picorigin"], summary["anchors"]
    n_family = {fam: sum(q.positive and q.family == fam for q in queries) for fam in FAMILIES}
    n_stage = {s: sum(q.positive and FAMILY_STAGE[q.family] == s for q in queries)
               for s in ("global", "local")}
    cols = ["phash", "goldberg", "pdq"] + (["fingerprint"] if "fingerprint" in anch else [])
    head = {"phash": "pHash", "goldberg": "Goldberg", "pdq": "PDQ-8", "fingerprint": "fp-only"}
    print()
    print(f"Copy detection: {meta['indexed']} indexed originals, {meta['negatives']} negative "
          f"photos ({meta.get('extra_negatives', 0)} from other wallpaper packages), "
          f"{len(EDITS)} edits -> {meta['positive_queries']} positive and "
          f"{meta['negative_queries']} negative queries")
    print("recall@1 (copy kinds only; anchors at their standard thresholds: pHash <= "
          f"{anchors.PHASH_THRESHOLD}, Goldberg < {anchors.GOLDBERG_THRESHOLD}, PDQ <= "
          f"{anchors.PDQ_THRESHOLD}; fp-only = picorigin's fingerprint alone at "
          "near_duplicate_distance)")
    line = f"{'family':16s} {'stage':6s} {'n':>4s} | {'picorigin':>9s} | " + " | ".join(
        f"{head[c]:>8s}" for c in cols) + " | pico/best anchor"
    print(line)
    print("-" * len(line))

    def row(label, stage, n, pico_value, anchor_values):
        best = max((v for c, v in anchor_values.items() if c != "fingerprint"
                    and v is not None and not math.isnan(v)), default=math.nan)
        ratio = f"{pico_value / best:6.2f}x" if best and best > 0 else "     -"
        print(f"{label:16s} {stage:6s} {n:4d} | {_pct(pico_value):>9s} | "
              + " | ".join(f"{_pct(anchor_values.get(c)):>8s}" for c in cols) + f" | {ratio}")

    for fam in FAMILIES:
        row(fam, FAMILY_STAGE[fam], n_family[fam], pico["recall@1_family"].get(fam, math.nan),
            {c: anch[c]["standard"]["recall@1_family"].get(fam, math.nan) for c in cols})
    print("-" * len(line))
    for stage in ("global", "local"):
        row(f"all {stage}", "", n_stage[stage], pico["recall@1_stage"].get(stage, math.nan),
            {c: anch[c]["standard"]["recall@1_stage"].get(stage, math.nan) for c in cols})
    row("all", "", sum(n_stage.values()), pico["recall@1"],
        {c: anch[c]["standard"]["recall@1"] for c in cols})
    print(f"{'FP rate':16s} {'':6s} {meta['negative_queries']:4d} | {_pct(pico['fp_rate']):>9s} | "
          + " | ".join(f"{_pct(anch[c]['standard']['fp_rate']):>8s}" for c in cols)
          + "   (negative queries with any copy claim)")
    print(f"picorigin: recall@10 {_pct(pico['recall@10'])}, mAP@10 {_pct(pico['mAP@10'])}, "
          f"orientation right on {pico['orientation_correct'][0]}/"
          f"{pico['orientation_correct'][1]} found orientation edits, query p50 "
          f"{pico['query_ms']['p50']:.1f} ms p99 {pico['query_ms']['p99']:.1f} ms "
          "(its elapsed_ms, 1 process)")

    print()
    print("Anchors at the threshold that maximises (recall + 1 - FP rate) / 2 on this set:")
    print(f"{'method':10s} | {'standard thr':>12s} {'recall':>7s} {'FP':>7s} | "
          f"{'best thr':>8s} {'recall':>7s} {'FP':>7s} | {'global':>7s} {'local':>7s}")
    for c in cols:
        s, b = anch[c]["standard"], anch[c]["best"]
        thr = anch[c]["thresholds"]
        print(f"{head[c]:10s} | {thr['standard']:>12.3g} {_pct(s['recall@1']):>7s} "
              f"{_pct(s['fp_rate']):>7s} | {thr['best']:>8.3g} {_pct(b['recall@1']):>7s} "
              f"{_pct(b['fp_rate']):>7s} | {_pct(b['recall@1_stage'].get('global')):>7s} "
              f"{_pct(b['recall@1_stage'].get('local')):>7s}")

    print()
    print("recall@1 per edit (anchors at standard thresholds)")
    print(f"{'edit':20s} {'family':15s} | {'picorigin':>9s} | "
          + " | ".join(f"{head[c]:>8s}" for c in cols))
    for edit in EDITS:
        print(f"{edit.name:20s} {edit.family:15s} | "
              f"{_pct(pico['recall@1_edit'].get(edit.name, math.nan)):>9s} | "
              + " | ".join(f"{_pct(anch[c]['standard']['recall@1_edit'].get(edit.name)):>8s}"
                           for c in cols))

    print()
    print("picorigin match dicts: `distance` of the true original's match and of the nearest "
          "wrong match (positives), and of the nearest match of negatives; p5 / p50 / p95 / max "
          "(n). The engine returns only matches within near_duplicate_distance, so wrong matches "
          "beyond it are not seen here; see the fingerprint-only table below for those.")
    print(f"{'family':16s} | {'true copy':>24s} | {'nearest wrong':>24s} | {'negatives':>24s}")

    def q4(d):
        if not d:
            return "-"
        return f"{d['p5']:.0f}/{d['p50']:.0f}/{d['p95']:.0f}/{d['max']:.0f} ({d['n']})"

    for fam in FAMILIES:
        d = pico["match_distances"].get(fam, {})
        print(f"{fam:16s} | {q4(d.get('true')):>24s} | {q4(d.get('best_wrong')):>24s} | "
              f"{q4(d.get('negative_best')):>24s}")

    if "fingerprint" in anch:
        print()
        print("picorigin fingerprint Hamming distances (of 256 bits; min over query probes), "
              "p5 / p50 / p95:")
        print(f"{'family':16s} | {'true copy':>17s} | {'nearest wrong':>17s} | "
              f"{'negatives nearest':>17s}")
        dist = anch["fingerprint"]["distances"]

        def q3(d):
            return "-" if not d else f"{d['p5']:.0f} / {d['p50']:.0f} / {d['p95']:.0f}"

        for fam in FAMILIES:
            print(f"{fam:16s} | {q3(dist[fam]['true']):>17s} | {q3(dist[fam]['best_wrong']):>17s}"
                  f" | {q3(dist[fam]['negative_best']):>17s}")
        neg = anch["fingerprint"]["negative_best_all"]
        print(f"all negatives' nearest original: min {neg['min']:.0f}, p5 {neg['p5']:.0f}, "
              f"p50 {neg['p50']:.0f}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a third of the photos")
    parser.add_argument("--no-wallpapers", action="store_true",
                        help="scikit-image photos only (no apt-get download)")
    parser.add_argument("--no-extra-negatives", action="store_true",
                        help="skip the extra negatives from Debian's other wallpaper packages")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes for making queries and anchor codes")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    photos = load_photos(wallpapers=not args.no_wallpapers)
    if args.quick:
        photos = photos[::3]
    indexed, negatives, hosts = split(photos)
    extra = [] if args.no_extra_negatives else distractor_photos()
    if args.quick:
        extra = extra[::3]
    negatives = negatives + extra
    timings = {}
    with get_context("forkserver").Pool(args.workers) as pool:
        t = time.perf_counter()
        queries = make_queries(indexed, negatives, hosts, pool)
        timings["make_queries_s"] = time.perf_counter() - t
        t = time.perf_counter()
        anchor = anchor_results(indexed, queries, pool)
        timings["anchors_s"] = time.perf_counter() - t
    t = time.perf_counter()
    pico = run_picorigin(indexed, queries)
    timings["picorigin_s"] = time.perf_counter() - t
    timings["picorigin_index_s"] = pico["index_seconds"]

    meta = {
        "quick": args.quick,
        "indexed": len(indexed),
        "negatives": len(negatives),
        "extra_negatives": len(extra),
        "hosts": [h.name for h in hosts],
        "positive_queries": sum(q.positive for q in queries),
        "negative_queries": sum(not q.positive for q in queries),
        "sources": sorted({p.source for p in photos}),
        "edits_version": EDITS_VERSION,
    }
    summary = evaluate(queries, pico, anchor)
    print_report(queries, summary, meta)
    if pico["errors"]:
        print(f"\n{len(pico['errors'])} queries failed in picorigin, e.g. {pico['errors'][:3]}")
    timings["total_s"] = time.perf_counter() - started
    print("\ntimings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))

    per_query = [
        {"photo": q.photo, "edit": q.edit, "family": q.family, "positive": q.positive,
         "original_id": pico["ids"].get(q.photo) if q.positive else None,
         "matches": [{k: m.get(k) for k in ("id", "kind", "score", "distance", "orientation")}
                     for m in r["matches"]],
         "elapsed_ms": r["elapsed_ms"],
         "anchors": {method: {"nearest": rows[i][0], "distance": rows[i][1],
                              "true_distance": rows[i][2]}
                     for method, rows in anchor.items()}}
        for i, (q, r) in enumerate(zip(queries, pico["results"]))
    ]
    out = {"meta": meta, "timings": timings, "summary": summary, "errors": pico["errors"],
           "indexed": [p.name for p in indexed], "negatives": [p.name for p in negatives],
           "queries": per_query}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / ("copy_detection_quick.json" if args.quick else "copy_detection.json")
    path.write_text(json.dumps(_plain(out), indent=1))
    print(f"results written to {path}")
    return out


def _plain(value):
    """``value`` as strict JSON data: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


if __name__ == "__main__":
    main()
