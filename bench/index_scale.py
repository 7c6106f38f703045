"""Index backends at scale: FAISS in the process against Milvus Lite, for fingerprints and deep
descriptors.

``python -m bench.index_scale [--scale F] [--queries Q] [--milvus-max N]``

- **Fingerprints**: 10,000,000 random codes of ``fingerprint.BITS`` (256) bits, searched by
  radius 64 (``near_duplicate_distance``) as the fingerprint stage does, one query code a call,
  in: FAISS flat (``FaissBinaryIndex``, the default backend), FAISS multi-index hashing
  (``IndexBinaryMultiHash``, 16 tables of 16 bits, one bit flipped when probing: exact up to 31
  bits, sub-linear) and Milvus Lite ``BIN_FLAT`` (``MilvusBinaryIndex``). (FAISS's binary IVF
  was left out: training 4096 cells took 135 s for 100,000 codes here.) Queries are stored
  codes with 4, 16, 32 or 48 bits flipped (a quarter each); recall is the share whose source
  comes back within the radius.
- **Deep descriptors**: 1,000,000 clustered unit vectors of ``deep.DIM`` (256) dimensions
  (2,000 Gaussian clusters: closer to photo collections than uniform noise), top-10 by inner
  product, in: FAISS flat, FAISS IVF-SQ8 (``DenseIndex`` as the deep stage builds it at this
  size, nprobe tuned on the collection) and Milvus Lite ``FLAT`` (``MilvusDenseIndex``).
  Milvus is filled with plain inserts (a bulk load), the rest of the time by upserts.
  Queries are stored vectors plus noise (cosine about 0.9 to their source); recall@10 is
  against exact search, and ``source@1`` the share that ranks its source first.

- **Visual words** (the local stage): 50,000 images of 1,000 Zipf-distributed words each out
  of 32,768 (the packaged vocabulary's size; about 420 distinct a image), with their idf, in
  the inverted file (``InvertedFile``) and Milvus Lite's sparse index (``MilvusSparseIndex``,
  its shortlist re-scored from the words as the local stage does from the catalog); queries
  are a third of an image's words and as many random ones (a crop pasted into a picture).
  Reported: the share of the inverted file's top 20 that Milvus returns, and ``source@1``.

Each backend is built in a fresh process from the same seeded data; memory per image is that
process's resident-memory growth while building (for Milvus Lite: its server process's), over
the number of vectors. ``--scale`` multiplies every size (``--scale 0.1``: 1 M codes, 100,000
descriptors); ``--milvus-max`` caps the sizes given to Milvus Lite (its inserts run at about
30,000 codes/s here); ``--only binary,dense,sparse`` runs some parts, keeping the others'
rows in the results file. Writes ``bench/results/index_scale.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from multiprocessing import get_context

import numpy as np

from bench.copy_detection import RESULTS
from picorigin._features.fingerprint import BITS
from picorigin._stages.deep import DIM

RADIUS = 64
FLIPS = (4, 16, 32, 48)
CLUSTERS = 2000
WORDS = 32_768  # 8 ** 5, the packaged vocabulary
SHORT = 20  # the local stage's shortlist
_CHUNK = 250_000


def _rss(pid: int | None = None) -> int:
    import psutil

    return psutil.Process(pid).memory_info().rss


def _percentiles(ms: list[float]) -> dict:
    ms = sorted(ms)
    return {"p50_ms": round(ms[len(ms) // 2], 3),
            "p99_ms": round(ms[min(len(ms) - 1, math.ceil(0.99 * len(ms)) - 1)], 3)}


# -- data (the same in every process: seeded) --------------------------------------------------

def _codes(n: int) -> np.ndarray:
    return np.random.default_rng(10).integers(0, 256, (n, BITS // 8), dtype=np.uint8)


def _code_queries(codes: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    sources = rng.choice(len(codes), q, replace=False)
    flips = np.array([FLIPS[i % len(FLIPS)] for i in range(q)])
    queries = np.unpackbits(codes[sources], axis=1)
    for row, n in enumerate(flips):
        queries[row, rng.choice(BITS, n, replace=False)] ^= 1
    return np.packbits(queries, axis=1), sources, flips


def _vectors(n: int) -> np.ndarray:
    rng = np.random.default_rng(20)
    centres = rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    for start in range(0, n, _CHUNK):
        m = min(_CHUNK, n - start)
        block = centres[rng.integers(0, CLUSTERS, m)] + 0.8 * rng.standard_normal((m, DIM))
        out[start:start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _vector_queries(vectors: np.ndarray, q: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(21)
    sources = rng.choice(len(vectors), q, replace=False)
    noisy = vectors[sources] + 0.03 * rng.standard_normal((q, DIM)).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32), sources


def _documents(n: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(30)
    documents = [((rng.zipf(1.2, 1000) - 1) % WORDS).astype(np.int64) for _ in range(n)]
    seen_in = np.zeros(WORDS)
    for words in documents:
        seen_in[np.unique(words)] += 1
    return documents, np.log(n / np.maximum(seen_in, 1)).astype(np.float32)


def _word_queries(documents: list[np.ndarray], q: int) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(31)
    sources = rng.choice(len(documents), q, replace=False)
    queries = [np.concatenate([documents[i][:333], rng.integers(0, WORDS, 333)])
               for i in sources]
    return queries, sources


# -- one backend, in its own process -------------------------------------------------------------

def _binary(kind: str, n: int, q: int, folder: str) -> dict:
    import faiss

    codes = _codes(n)
    queries, sources, flips = _code_queries(codes, q)
    server_pid = None
    before = _rss()
    started = time.perf_counter()
    if kind == "faiss_flat":
        from picorigin._index.faiss_binary import FaissBinaryIndex

        index = FaissBinaryIndex(BITS)
        for s in range(0, n, _CHUNK):
            index.add(np.arange(s, min(n, s + _CHUNK)), codes[s:s + _CHUNK])
        search = index.search
    elif kind == "faiss_mih":
        raw = faiss.IndexBinaryMultiHash(BITS, 16, 16)
        raw.nflip = 1
        for s in range(0, n, _CHUNK):
            raw.add(codes[s:s + _CHUNK])

        def search(code: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
            limits, distances, ids = raw.range_search(code, radius + 1)
            return [(0, int(i), int(d)) for i, d in zip(ids[limits[0]:limits[1]],
                                                         distances[limits[0]:limits[1]])]
    else:
        from picorigin._index import milvus

        connection, server_pid = _lite(folder)
        before = _rss(server_pid)
        index = milvus.MilvusBinaryIndex(BITS, connection, "codes")
        for s in range(0, n, 20_000):
            index._collection.insert([{"id": s + i, "code": code.tobytes()}
                                      for i, code in enumerate(codes[s:s + 20_000])])
        len(index)  # waits for every insert to be visible
        search = index.search
    build = time.perf_counter() - started
    grown = _rss(server_pid) - before
    del codes
    ms, found = [], []
    search(queries[:1], RADIUS)  # warm up
    for row, source in enumerate(sources):
        t = time.perf_counter()
        hits = search(queries[row:row + 1], RADIUS)
        ms.append(1000 * (time.perf_counter() - t))
        found.append(int(source) in {i for _, i, _ in hits})
    found = np.array(found)
    return {"n": n, "build_s": round(build, 1), "bytes_per_image": round(grown / n, 1),
            **_percentiles(ms), "recall": round(float(found.mean()), 4),
            "recall_by_flipped_bits": {int(f): round(float(found[flips == f].mean()), 4)
                                       for f in FLIPS}}


def _dense(kind: str, n: int, q: int, folder: str) -> dict:
    import faiss

    vectors = _vectors(n)
    queries, sources = _vector_queries(vectors, q)
    _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    server_pid = None
    before = _rss()
    started = time.perf_counter()
    extra = {}
    if kind in ("faiss_flat", "faiss_ivf_sq8"):
        from picorigin._index.faiss_dense import DenseIndex

        index = DenseIndex(DIM, flat_max=n if kind == "faiss_flat" else 20_000)
        index.add(np.arange(n), vectors)  # one add: trained once, on the whole collection
        extra = {"layout": index.kind, "nprobe": index.nprobe if index.kind == "ivf" else None}
    else:
        from picorigin._index import milvus

        connection, server_pid = _lite(folder)
        before = _rss(server_pid)
        index = milvus.MilvusDenseIndex(DIM, connection, "vectors")
        for s in range(0, n, 5000):
            index._collection.insert([{"id": s + i, "vector": vector}
                                      for i, vector in enumerate(vectors[s:s + 5000])])
        len(index)
    build = time.perf_counter() - started
    grown = _rss(server_pid) - before
    del vectors
    ms, recall, first = [], [], []
    index.search(queries[:1], 10)
    for row, source in enumerate(sources):
        t = time.perf_counter()
        _, ids = index.search(queries[row:row + 1], 10)
        ms.append(1000 * (time.perf_counter() - t))
        recall.append(len(set(ids[0].tolist()) & set(truth[row].tolist())) / 10)
        first.append(ids[0][0] == source)
    return {"n": n, "build_s": round(build, 1), "bytes_per_image": round(grown / n, 1),
            **_percentiles(ms), "recall@10": round(float(np.mean(recall)), 4),
            "source@1": round(float(np.mean(first)), 4), **extra}


def _sparse(kind: str, n: int, q: int, folder: str) -> dict:
    from picorigin._index.inverted import InvertedFile

    documents, idf = _documents(n)
    queries, sources = _word_queries(documents, q)

    def inverted() -> InvertedFile:
        built = InvertedFile(idf)
        built.update([], list(enumerate(documents)))
        built.compact()
        return built

    server_pid = None
    if kind == "inverted_file":
        before = _rss()
        started = time.perf_counter()
        index = reference = inverted()
    else:
        from picorigin._index import milvus

        reference = inverted()
        connection, server_pid = _lite(folder)
        before = _rss(server_pid)
        started = time.perf_counter()
        # the shortlist is re-scored with the words, as the local stage does from the catalog
        index = milvus.MilvusSparseIndex(idf, connection, "words",
                                         lookup=lambda ids: {i: documents[i] for i in ids})
        for s in range(0, n, 2000):
            index._collection.insert([index._row(i, documents[i])
                                      for i in range(s, min(n, s + 2000))])
        len(index)
    build = time.perf_counter() - started
    grown = _rss(server_pid) - before
    truth = [reference.query(words, SHORT)[0] for words in queries]
    ms, recall, first = [], [], []
    index.query(queries[0], SHORT)
    for words, source, want in zip(queries, sources, truth):
        t = time.perf_counter()
        ids, _ = index.query(words, SHORT)
        ms.append(1000 * (time.perf_counter() - t))
        recall.append(len(set(ids.tolist()) & set(want.tolist())) / max(1, len(want)))
        first.append(len(ids) and ids[0] == source)
    # the inverted file's own count beside its RSS growth, which keeps the high-water mark of
    # its compactions' temporary arrays
    own = {"own_bytes_per_image": round(index.nbytes() / n, 1)} if kind == "inverted_file" \
        else {}
    return {"n": n, "build_s": round(build, 1), "bytes_per_image": round(grown / n, 1), **own,
            **_percentiles(ms), "recall@20": round(float(np.mean(recall)), 4),
            "source@1": round(float(np.mean(first)), 4)}


def _lite(folder: str) -> tuple:
    """A connection to a fresh Milvus Lite file in ``folder``, and its server's process id."""
    from picorigin._index import milvus

    connection = milvus.connect(milvus.parse_target("milvus-lite://index.db", folder))
    from milvus_lite.server_manager import server_manager_instance  # imported (quietly) now

    return connection, server_manager_instance._servers[connection.target.uri]._p.pid


def _run(job: tuple) -> dict:
    kind, what, n, q = job
    folder = tempfile.mkdtemp(prefix="picorigin-index-scale-")
    try:
        return {"binary": _binary, "dense": _dense, "sparse": _sparse}[what](kind, n, q, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies 10 M codes, 1 M descriptors, 50,000 word lists")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--milvus-max", type=int, default=10_000_000,
                        help="largest collection given to Milvus Lite")
    parser.add_argument("--only", default="binary,dense,sparse",
                        help="the parts to run (comma-separated)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    n_codes, n_vectors = int(10_000_000 * args.scale), int(1_000_000 * args.scale)
    n_documents = int(50_000 * args.scale)
    jobs = [("faiss_flat", "binary", n_codes), ("faiss_mih", "binary", n_codes),
            ("milvus_lite_bin_flat", "binary", min(n_codes, args.milvus_max)),
            ("faiss_flat", "dense", n_vectors), ("faiss_ivf_sq8", "dense", n_vectors),
            ("milvus_lite_flat", "dense", min(n_vectors, args.milvus_max)),
            ("inverted_file", "sparse", n_documents),
            ("milvus_lite_sparse", "sparse", min(n_documents, args.milvus_max))]
    path = RESULTS / "index_scale.json"
    out: dict = json.loads(path.read_text()) if path.exists() else {}
    for what in parts:  # the parts not run keep their rows
        out[what] = {}
        out.setdefault("meta", {})[what] = {
            "bits": BITS, "dim": DIM, "radius": RADIUS, "queries": args.queries,
            "scale": args.scale, "cpu_count": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    context = get_context("spawn")
    for kind, what, n in [job for job in jobs if job[1] in parts]:
        with context.Pool(1) as pool:  # a fresh process each: memory growth is its own
            row = pool.apply(_run, ((kind, what, n, args.queries),))
        row["load_average"] = round(os.getloadavg()[0], 1)  # the machine is shared
        out[what][kind] = row
        quality = " ".join(f"{key} {row[key]}" for key in
                           ("recall", "recall_by_flipped_bits", "recall@10", "recall@20",
                            "source@1") if key in row)
        print(f"{what:<6} {kind:<21} n={n:>10,}  p50 {row['p50_ms']:8.3f} ms  p99 "
              f"{row['p99_ms']:8.3f} ms  {row['bytes_per_image']:7.1f} B/image  build "
              f"{row['build_s']} s  {quality}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return out


if __name__ == "__main__":
    main()
