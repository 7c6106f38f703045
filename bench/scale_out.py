"""Past one machine: the copy benchmark on the embedded stack vs PostgreSQL, and vs PostgreSQL
with Milvus Lite indexes; ingest throughput on a Dask cluster (1 and 2 workers) vs the local
worker pool.

``python -m bench.scale_out [--every N] [--dsn postgresql://... --dsn2 postgresql://...]
[--ingest N]``

- Search: the copy benchmark's photos (a third of them, as ``--quick``) and every ``N``-th of
  its queries (default 2), searched with every stage through an ``Engine`` over the SQLite
  catalog with in-process indexes (the default), over PostgreSQL (a server started for the run
  with Debian's ``postgresql``, or ``--dsn``), and over PostgreSQL (``--dsn2``) with every index
  in Milvus Lite (``index=milvus-lite://index.db``). Recall@1 and the false-positive rate must
  be identical, and so must each query's top copy; all are printed.
- Ingest: the first ``--ingest`` query images (real photos, edited) indexed with every stage
  into a fresh data folder by the local pool (1 and 2 processes) and by a
  ``distributed.LocalCluster`` on 127.0.0.1 with 1 and 2 worker processes (one thread each).
  The cluster is started and warmed up (each worker's first batch loads the models) before the
  clock starts; the local pool starts its processes inside the timed run, as ``index`` does.

Writes ``bench/results/scale_out.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

from bench.copy_detection import COPY_KINDS, RESULTS, make_queries, split
from bench.datasets import load_photos
from picorigin import Engine, PicoriginError
from picorigin._evaluation import false_positive_rate, recall_at_k

ROOT = Path(__file__).resolve().parent.parent


def _search_all(settings: dict, indexed, queries) -> dict:
    with tempfile.TemporaryDirectory(prefix="picorigin-scale-") as folder:
        with Engine(folder, settings=settings) as engine:
            report = engine.index([str(p.path) for p in indexed])
            ids = {}
            for photo in indexed:
                uri = str(photo.path.resolve())
                matches = engine.search(str(photo.path), k=10).matches
                ids[photo.name] = next((m.id for m in matches if uri in m.uris), None)
            ranked, top, elapsed = [], [], []
            for query in queries:
                try:
                    result = engine.search(str(query.path), k=10)
                except PicoriginError:
                    ranked.append([])
                    top.append(None)
                    continue
                copies = [m for m in result.matches if m.kind in COPY_KINDS]
                # ids differ between catalogs: compare by the photo each id holds
                names = {v: k for k, v in ids.items()}
                ranked.append([names.get(m.id, f"?{m.id}") for m in copies])
                top.append((names.get(copies[0].id), copies[0].kind) if copies else None)
                elapsed.append(result.elapsed_ms)
    truth = [q.photo if q.positive else None for q in queries]
    elapsed.sort()
    return {
        "indexed": report.indexed, "index_seconds": round(report.seconds, 2),
        "recall@1": recall_at_k(ranked, truth, 1),
        "fp_rate": false_positive_rate(ranked, truth),
        "search_ms_p50": round(elapsed[len(elapsed) // 2], 1),
        "search_ms_p99": round(elapsed[min(len(elapsed) - 1, math.ceil(0.99 * len(elapsed)) - 1)],
                               1),
        "top": top,
    }


@contextlib.contextmanager
def postgres_database(dsn: str | None) -> Iterator[str]:
    """``dsn`` as it is; or, without one, a fresh database on a server started for the run
    (Debian's ``postgresql``, as the tests start it) and stopped on the way out."""
    if dsn is not None:
        yield dsn
        return
    sys.path.insert(0, str(ROOT / "tests"))
    import pgserver

    server = pgserver.Server()
    try:
        yield server.new_database()
    finally:
        server.stop()


def _ingest(paths: list[str], **kwargs) -> dict:
    with tempfile.TemporaryDirectory(prefix="picorigin-ingest-") as folder:
        with Engine(folder) as engine:
            report = engine.index(paths, **kwargs)
    assert not report.failed and report.indexed == len(paths), report.to_dict()
    return {"images": report.indexed, "seconds": round(report.seconds, 2),
            "images_per_s": round(report.indexed / report.seconds, 2)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--every", type=int, default=2, help="search every N-th query")
    parser.add_argument("--dsn", default=None, help="a PostgreSQL database to use (emptied "
                        "tables are not assumed: give a fresh one); default: start a server")
    parser.add_argument("--dsn2", default=None, help="a second fresh database, for the run with "
                        "Milvus Lite indexes (needed with --dsn)")
    parser.add_argument("--ingest", type=int, default=120, help="images for the ingest runs")
    args = parser.parse_args(argv)

    photos = load_photos()[::3]
    indexed, negatives, hosts = split(photos)
    with get_context("forkserver").Pool(os.cpu_count() or 1) as pool:
        queries = make_queries(indexed, negatives, hosts, pool)
    searched = queries[::args.every]
    out: dict = {"meta": {"indexed": len(indexed), "negatives": len(negatives),
                          "queries": len(searched),
                          "positive_queries": sum(q.positive for q in searched),
                          "cpu_count": os.cpu_count()}}

    server = None
    dsn, dsn2 = args.dsn, args.dsn2
    if dsn is None:
        sys.path.insert(0, str(ROOT / "tests"))
        import pgserver

        server = pgserver.Server()
        dsn, dsn2 = server.new_database(), server.new_database()
    if dsn2 is None:
        parser.error("--dsn needs --dsn2 (a second fresh database)")
    try:
        embedded = _search_all({}, indexed, searched)
        postgres = _search_all({"catalog": dsn}, indexed, searched)
        # a relative Lite file: inside the run's temporary data folder
        milvus = _search_all({"catalog": dsn2, "index": "milvus-lite://index.db"}, indexed,
                             searched)
    finally:
        if server is not None:
            server.stop()
    top = embedded.pop("top")
    same_top = sum(a == b for a, b in zip(top, postgres.pop("top")))
    same_top_milvus = sum(a == b for a, b in zip(top, milvus.pop("top")))
    out["search"] = {"sqlite": embedded, "postgresql": postgres,
                     "postgresql_milvus_lite": milvus,
                     "same_top_copy": same_top, "identical": same_top == len(searched),
                     "same_top_copy_milvus": same_top_milvus,
                     "identical_milvus": same_top_milvus == len(searched)}
    print(f"copy bench, {len(searched)} queries ({out['meta']['positive_queries']} positive),"
          f" {len(indexed)} indexed, every stage:")
    for name, row in (("SQLite", embedded), ("PostgreSQL", postgres),
                      ("PostgreSQL + Milvus Lite", milvus)):
        print(f"  {name:<24} recall@1 {row['recall@1']:.4f}  false positives"
              f" {row['fp_rate']:.4f}  search p50 {row['search_ms_p50']} ms"
              f" p99 {row['search_ms_p99']} ms  index {row['index_seconds']} s")
    print(f"  same top copy as SQLite: PostgreSQL {same_top}, PostgreSQL + Milvus Lite "
          f"{same_top_milvus}, of {len(searched)} queries")

    import distributed

    paths = [str(q.path) for q in queries[:args.ingest]]
    ingest = {"local_pool_1": _ingest(paths, workers=1), "local_pool_2": _ingest(paths, workers=2)}
    for n in (1, 2):
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=40) as cluster:
            _ingest(paths[:8 * n], ingest=cluster.scheduler_address)  # warm up every worker
            ingest[f"dask_{n}_workers"] = _ingest(paths, ingest=cluster.scheduler_address)
    ingest["dask_2_over_1"] = round(ingest["dask_2_workers"]["images_per_s"]
                                    / ingest["dask_1_workers"]["images_per_s"], 2)
    out["ingest"] = ingest
    print(f"ingest of {len(paths)} images, every stage (images/s):")
    for name, row in ingest.items():
        if isinstance(row, dict):
            print(f"  {name:<16} {row['images_per_s']:6.2f}  ({row['seconds']} s)")
    print(f"  2 Dask workers / 1: {ingest['dask_2_over_1']}x")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "scale_out.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return out


if __name__ == "__main__":
    main()
