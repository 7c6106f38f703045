"""FAISS index for dense, L2-normalised descriptors: cosine similarity by inner product.

Two layouts, switched by size:

- **flat** (exact; ``IndexIDMap2(IndexFlatIP)``) up to ``flat_max`` vectors (default 20,000):
  exact answers, 4 bytes a dimension, a few ms a query at that size.
- **IVF-SQ8** (``IndexIVFScalarQuantizer``, 8-bit scalar quantiser, inner product) above it:
  one byte a dimension, ``nlist`` about ``4 * sqrt(n)`` coarse cells (a power of two), ``nprobe``
  probed cells a query, tuned on the collection itself at each training to the fewest that
  give recall@10 >= 0.95 against exact search (a few percent of the cells for clustered real
  descriptors, a quarter for structureless ones).

Why IVF and not HNSW, measured at 1,000,000 vectors of 256 dimensions on 2 shared cores
(``bench/similar.py``; real descriptors plus synthetic ones, queries real): built in 50,000-vector
batches, this index reached recall@10 0.96 at nprobe 8 with a 0.15 ms p50 when the synthetic
vectors were clustered like a photo collection, and 0.97 at nprobe 2048 (of 4096) with a 17 ms
p50 when they came from one Gaussian fitted to the real ones (no structure: the hard case), in
about 150 s; HNSW32-SQ8 on the Gaussian set took 707 s to build and reached only 0.64 at
efSearch 256 (1.5 ms). IVF also removes vectors (with a hashtable direct map) and reconstructs
them, which FAISS's HNSW does not.

The catalog (here: the deep stage's SQLite file) is the source of truth; ``save`` is a
checkpoint. When the collection has doubled since its cells were trained, the next
:meth:`DenseIndex.add` retrains on the stored vectors (decoded from SQ8, which loses nothing
that matters for choosing cells) and re-tunes nprobe: fewer, fuller cells than ``4 sqrt(n)``
make every query scan more.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._threads import threads_for

__all__ = ["DenseIndex"]

FLAT_MAX = 20_000
TARGET_RECALL = 0.95  # nprobe is tuned at each (re)training to reach this recall@10
_EXACT_ALLOWED = 50_000  # a filter allowing at most this many ids is answered exactly


def _nlist(n: int) -> int:
    """About 4 sqrt(n) cells, a power of two, with >= 40 vectors a cell to train on."""
    cells = 2 ** round(np.log2(4 * np.sqrt(max(n, 1))))
    while cells > 16 and cells * 40 > n:
        cells //= 2
    return int(cells)


class DenseIndex:
    """Inner-product search over L2-normalised float32 vectors keyed by int64 ids.

    Parameters
    ----------
    dim : int
        Vector length.
    flat_max : int
        Largest size kept exact (flat); above it the index becomes IVF-SQ8.
    nprobe : int, optional
        IVF cells probed per query; by default tuned on the collection at each (re)training
        to the fewest giving recall@10 >= 0.95 against exact search.
    """

    def __init__(self, dim: int, *, flat_max: int = FLAT_MAX, nprobe: int | None = None) -> None:
        import faiss

        self.dim = dim
        self.flat_max = flat_max
        self._auto_nprobe = nprobe is None
        self.nprobe = nprobe or 32
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._trained_for = 0  # size the IVF cells were trained for; 0 while flat

    @property
    def kind(self) -> str:
        """``"flat"`` or ``"ivf"``."""
        return "ivf" if self._trained_for else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors.

        Parameters
        ----------
        ids : ndarray of int64, shape (n,)
        vectors : ndarray of float32, shape (n, dim)
            L2-normalised.
        """
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        if not len(ids):
            return
        self.remove(ids)  # replace, never duplicate
        self._index.add_with_ids(vectors, ids)
        n = len(self)
        if (self.kind == "flat" and n > self.flat_max) or (
            self.kind == "ivf" and n > 2 * self._trained_for
        ):
            self._retrain()

    def remove(self, ids: np.ndarray) -> int:
        """Remove every vector with one of these ids; how many were removed."""
        import faiss

        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids) or not len(self):
            return 0
        # IDSelectorArray: the only selector an IVF hashtable direct map removes with
        return int(self._index.remove_ids(faiss.IDSelectorArray(ids)))

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored (ids (n,), vectors (n, dim)); IVF vectors come back SQ8-decoded."""
        import faiss

        if self.kind == "flat":
            ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            # the flat storage is in insertion order, the id map too
            return ids, faiss.downcast_index(self._index.index).reconstruct_n(0, len(self))
        lists = self._index.invlists
        ids = np.concatenate([np.zeros(0, np.int64)] + [
            np.array(faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)), dtype=np.int64)
            for i in range(lists.nlist) if lists.list_size(i)])
        return ids, self._index.reconstruct_batch(ids) if len(ids) else np.zeros((0, self.dim))

    def _retrain(self) -> None:
        """Rebuild as IVF-SQ8 with cells trained on the vectors stored now, and tune nprobe."""
        import faiss

        ids, vectors = self.items()
        nlist = _nlist(len(ids))
        quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 12  # cells need not be optimal, only reasonable; halves the training time
        # 40 points a cell (FAISS asks for 39) from a fixed-seed sample keep it repeatable
        sample = np.random.default_rng(0).permutation(len(ids))[: 40 * nlist]
        index.train(vectors[np.sort(sample)])
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.add_with_ids(vectors, ids)
        index.nprobe = self._tune(index, ids, vectors) if self._auto_nprobe else self.nprobe
        self.nprobe = int(index.nprobe)
        self._index = index
        self._trained_for = len(ids)

    @staticmethod
    def _tune(index, ids: np.ndarray, vectors: np.ndarray) -> int:
        """The fewest probes giving recall@10 >= TARGET_RECALL for stored vectors as queries.

        How many cells a query must visit depends on how clustered the collection is (a few
        for real photo collections, a quarter of them for structureless vectors), so it is
        measured on the collection itself: 64 stored vectors, their exact 10 nearest others
        against the index's answer.
        """
        import faiss

        rng = np.random.default_rng(1)
        queries = rng.choice(len(ids), size=min(64, len(ids)), replace=False)
        _, exact = faiss.knn(vectors[queries], vectors, 11, metric=faiss.METRIC_INNER_PRODUCT)
        truth = [set(ids[row[1:]].tolist()) for row in exact]  # the query itself comes first
        nprobe = 8
        while True:
            index.nprobe = min(nprobe, index.nlist)
            _, found = index.search(vectors[queries], 11)
            recall = np.mean([len(t & set(f.tolist())) / 10 for t, f in zip(truth, found)])
            if recall >= TARGET_RECALL or nprobe >= index.nlist:
                return int(index.nprobe)
            nprobe *= 2

    # -- queries ---------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        with threads_for(len(self)):
            return self._search(queries, k, allowed=allowed)

    def _search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors to each query.

        Parameters
        ----------
        queries : ndarray of float32, shape (q, dim)
        k : int
        allowed : ndarray of int64, optional
            Only these ids may be returned. Small sets (<= 50,000 ids) are scored exactly.

        Returns
        -------
        similarities : ndarray of float32, shape (q, k)
            Inner products (cosine similarities), best first; -inf where fewer than k exist.
        ids : ndarray of int64, shape (q, k)
            -1 where fewer than k exist.
        """
        import faiss

        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        empty = (np.full((len(queries), k), -np.inf, np.float32),
                 np.full((len(queries), k), -1, np.int64))
        if k <= 0 or not len(self):
            return empty
        if allowed is not None:
            allowed = np.unique(np.asarray(allowed, dtype=np.int64))
            if not len(allowed):
                return empty
            if len(allowed) <= _EXACT_ALLOWED:
                return self._exact(queries, k, allowed)
            params = (faiss.SearchParametersIVF(sel=faiss.IDSelectorBatch(allowed),
                                                nprobe=min(4 * self.nprobe, self._index.nlist))
                      if self.kind == "ivf" else
                      faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed)))
            similarities, ids = self._index.search(queries, k, params=params)
        else:
            similarities, ids = self._index.search(queries, k)
        similarities = np.where(ids >= 0, similarities, -np.inf).astype(np.float32)
        return similarities, ids

    def _exact(self, queries: np.ndarray, k: int, allowed: np.ndarray):
        try:
            present = allowed
            vectors = self._index.reconstruct_batch(allowed)
        except RuntimeError:  # some id is not stored (a filter built from a newer catalog)
            present, rows = [], []
            for i in allowed:
                try:
                    rows.append(self._index.reconstruct(int(i)))
                    present.append(int(i))
                except RuntimeError:
                    continue
            present = np.asarray(present, dtype=np.int64)
            vectors = np.array(rows, dtype=np.float32).reshape(-1, self.dim)
        similarities = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if len(present):
            scores = queries @ vectors.T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            similarities[:, : top.shape[1]] = np.take_along_axis(scores, top, axis=1)
            ids[:, : top.shape[1]] = present[top]
        return similarities, ids

    # -- persistence -----------------------------------------------------------------------

    def memory_bytes(self) -> int:
        """Approximate bytes held in RAM: codes, ids, and the id map or direct map."""
        n = len(self)
        if self.kind == "flat":
            return n * (4 * self.dim + 8 + 8)
        # SQ8 codes + id + hashtable entry (~32 bytes) + the coarse centroids
        return n * (self.dim + 8 + 32) + self._index.nlist * self.dim * 4

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``path`` atomically."""
        import faiss

        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, flat_max: int = FLAT_MAX,
             nprobe: int | None = None) -> "DenseIndex":
        """Read an index written by :meth:`save` (with its tuned nprobe unless one is given)."""
        import faiss

        stored = faiss.read_index(str(path))
        index = cls(stored.d, flat_max=flat_max, nprobe=nprobe)
        if isinstance(stored, faiss.IndexIVF):
            stored.nprobe = nprobe or stored.nprobe
            index.nprobe = int(stored.nprobe)
            # cells trained for at least this many: retraining waits for 2x growth from here
            index._trained_for = max(int(stored.ntotal), 1)
        index._index = stored
        return index
