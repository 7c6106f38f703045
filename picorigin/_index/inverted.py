"""Vocabulary tree and tf-idf inverted file for binary (ORB) descriptors.

The vocabulary is a hierarchical k-majority tree (Nistér & Stewénius, CVPR 2006, with the
binary-descriptor variant of Gálvez-López & Tardós' DBoW2): every node splits its descriptors
into ``branching`` clusters, ``depth`` times; the leaves are the visual words. A descriptor is
quantised by walking down the tree, comparing with ``branching`` centres per level (Hamming
distance), so quantisation costs ``branching * depth`` comparisons instead of one per word.

Each word has an inverse document frequency computed when the vocabulary is trained (as DBoW2
does): weights then never change as images come and go, which keeps add and delete incremental.
An image is a vector of L1-normalised tf-idf weights; two images score the histogram
intersection ``sum_w min(q_w, d_w)`` in [0, 1], which equals ``1 - |q - d|_1 / 2``, Nistér's L1
score.

The inverted file holds, per word, the documents containing it and their weights: a compact
CSR base (loaded from disk or rebuilt) plus a small pending part for recent additions; deletions
are tombstones until the next compaction. Image ids are mapped to dense document numbers so
scores accumulate with one ``bincount``.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["InvertedFile", "Vocabulary", "train_vocabulary"]

logger = logging.getLogger("picorigin")

_FAR = np.uint32(1 << 20)  # distance given to missing tree nodes: never chosen


def _as_u64(descriptors: np.ndarray) -> np.ndarray:
    """View (n, 32) uint8 descriptors as (n, 4) uint64 for fast XOR/popcount."""
    d = np.ascontiguousarray(descriptors, dtype=np.uint8)
    if d.ndim != 2 or d.shape[1] % 8:
        raise ValueError(f"descriptors must be (n, 8*m) uint8, got shape {d.shape}")
    return d.view(np.uint64)


def _hamming(a64: np.ndarray, b64: np.ndarray) -> np.ndarray:
    """Hamming distances, shape (n, k), between (n, w) and (k, w) or (n, k, w) uint64 arrays."""
    if b64.ndim == 2:
        b64 = b64[None, :, :]
    return np.bitwise_count(a64[:, None, :] ^ b64).sum(axis=-1, dtype=np.uint32)


@dataclass(frozen=True)
class Vocabulary:
    """A trained vocabulary tree.

    Attributes
    ----------
    branching, depth : int
        Children per node and levels; there are ``branching ** depth`` words.
    centers : numpy.ndarray, shape (n_nodes, 32), uint8
        Node centres in level order (level 1 first); level ``l`` holds ``branching ** l`` nodes
        and the children of node ``p`` of level ``l - 1`` are ``p * branching + j``.
    valid : numpy.ndarray, shape (n_nodes,), bool
        False for nodes that no training descriptor reached.
    idf : numpy.ndarray, shape (n_words,), float32
        Inverse document frequency of each word, ``ln(N / n_w)`` over the training images.
    source : str
        Where the training descriptors came from (shown by ``stats``).
    """

    branching: int
    depth: int
    centers: np.ndarray
    valid: np.ndarray
    idf: np.ndarray
    source: str = ""

    @property
    def n_words(self) -> int:
        return self.branching**self.depth

    def _level_offsets(self) -> list[int]:
        offsets, total = [], 0
        for level in range(1, self.depth + 1):
            offsets.append(total)
            total += self.branching**level
        return offsets

    def quantize(self, descriptors: np.ndarray, level: int | None = None) -> np.ndarray:
        """Visual word of each descriptor.

        Parameters
        ----------
        descriptors : numpy.ndarray, shape (n, 32), uint8
        level : int, optional
            Stop at this level (1..depth) and return node numbers within it; default: leaves.

        Returns
        -------
        numpy.ndarray, shape (n,), int64
        """
        level = self.depth if level is None else level
        d64 = _as_u64(descriptors)
        c64 = _as_u64(self.centers)
        k = self.branching
        node = np.zeros(len(d64), dtype=np.int64)
        children = np.arange(k, dtype=np.int64)
        for offset in self._level_offsets()[:level]:
            ids = offset + node[:, None] * k + children  # (n, k)
            dist = _hamming(d64, c64[ids])
            dist[~self.valid[ids]] = _FAR
            node = node * k + dist.argmin(axis=1)
        return node

    def digest(self) -> str:
        """Short content hash: stored beside quantised words to notice a changed vocabulary."""
        h = hashlib.sha256()
        h.update(f"{self.branching}/{self.depth}".encode())
        h.update(np.ascontiguousarray(self.centers).tobytes())
        h.update(np.ascontiguousarray(self.idf, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary to ``path`` (npz), atomically."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            branching=self.branching,
            depth=self.depth,
            centers=self.centers,
            valid=np.packbits(self.valid),
            idf=self.idf.astype(np.float16),
            source=np.array(self.source),
        )
        _atomic_write(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        with np.load(path, allow_pickle=False) as data:
            centers = data["centers"]
            return cls(
                branching=int(data["branching"]),
                depth=int(data["depth"]),
                centers=centers,
                valid=np.unpackbits(data["valid"])[: len(centers)].astype(bool),
                idf=data["idf"].astype(np.float32),
                source=str(data["source"]),
            )


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _kmajority(
    x64: np.ndarray, k: int, iterations: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster binary vectors: k-means++ seeding, then assign / bitwise-majority steps.

    Returns centres (k', w) uint64 with k' <= k and labels (m,) in [0, k').
    """
    m = len(x64)
    if m <= k:
        return x64.copy(), np.arange(m)
    first = int(rng.integers(m))
    chosen = [first]
    nearest = _hamming(x64, x64[[first]])[:, 0].astype(np.float64)
    for _ in range(1, k):
        weights = nearest**2
        total = weights.sum()
        if total == 0:
            break  # fewer than k distinct descriptors
        pick = int(rng.choice(m, p=weights / total))
        chosen.append(pick)
        nearest = np.minimum(nearest, _hamming(x64, x64[[pick]])[:, 0])
    centers = x64[chosen].copy()
    bits = np.unpackbits(x64.view(np.uint8), axis=1)  # (m, 256)
    labels = np.zeros(m, dtype=np.int64)
    for _ in range(iterations):
        labels = _hamming(x64, centers).argmin(axis=1)
        new = centers.copy()
        for j in range(len(centers)):
            member = labels == j
            if member.any():
                majority = bits[member].mean(axis=0) > 0.5
                new[j] = np.packbits(majority).view(np.uint64)
        if np.array_equal(new, centers):
            break
        centers = new
    labels = _hamming(x64, centers).argmin(axis=1)
    return centers, labels


def train_vocabulary(
    images: Sequence[np.ndarray],
    *,
    branching: int = 10,
    depth: int = 4,
    iterations: int = 8,
    max_descriptors: int = 400_000,
    seed: int = 0,
    source: str = "",
) -> Vocabulary:
    """Train a vocabulary tree by hierarchical k-majority clustering.

    Parameters
    ----------
    images : sequence of numpy.ndarray, each shape (n_i, 32), uint8
        Descriptors grouped by image (the grouping gives the idf weights).
    branching, depth : int
        Tree shape; ``branching ** depth`` words.
    iterations : int
        Assignment/update rounds per node.
    max_descriptors : int
        Random subsample used for clustering (idf always uses every image).
    seed : int
        Seed of the subsample and of the k-means++ seeding, for reproducible vocabularies.
    source : str
        Free text saying where the descriptors came from.

    Returns
    -------
    Vocabulary
    """
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, dtype=np.uint8).reshape(-1, 32) for g in images]
    if not groups or sum(len(g) for g in groups) == 0:
        raise ValueError("no descriptors to train a vocabulary from")
    everything = np.concatenate(groups)
    if len(everything) > max_descriptors:
        everything = everything[rng.choice(len(everything), max_descriptors, replace=False)]
    x64 = _as_u64(everything)

    k = branching
    n_nodes = sum(k**level for level in range(1, depth + 1))
    centers = np.zeros((n_nodes, 4), dtype=np.uint64)
    valid = np.zeros(n_nodes, dtype=bool)
    # members[p]: indices of training descriptors under node p of the previous level
    members: list[np.ndarray] = [np.arange(len(x64))]
    offset = 0
    for level in range(1, depth + 1):
        next_members: list[np.ndarray] = [np.zeros(0, np.int64)] * (k**level)
        for parent, idx in enumerate(members):
            if len(idx) == 0:
                continue
            node_centers, labels = _kmajority(x64[idx], k, iterations, rng)
            for j in range(len(node_centers)):
                node = parent * k + j
                centers[offset + node] = node_centers[j]
                valid[offset + node] = True
                next_members[node] = idx[labels == j]
        members = next_members
        offset += k**level
        logger.debug("vocabulary level %d trained", level)

    vocabulary = Vocabulary(k, depth, centers.view(np.uint8).reshape(-1, 32), valid,
                            np.zeros(k**depth, np.float32), source)
    document_frequency = np.zeros(k**depth, dtype=np.float64)
    for g in groups:
        if len(g):
            document_frequency[np.unique(vocabulary.quantize(g))] += 1
    n_docs = max(1, sum(1 for g in groups if len(g)))
    # Unseen words get the largest idf (as if seen once): they are rare by definition.
    idf = np.log(n_docs / np.maximum(document_frequency, 1.0)).astype(np.float32)
    idf = idf.astype(np.float16).astype(np.float32)  # as stored, so a reload has the same digest
    return Vocabulary(k, depth, vocabulary.centers, valid, idf, source)


def tfidf(words: np.ndarray, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L1-normalised tf-idf vector of one image.

    Parameters
    ----------
    words : numpy.ndarray, shape (n,), int
    idf : numpy.ndarray, shape (n_words,), float32

    Returns
    -------
    unique_words : numpy.ndarray, shape (u,), int64
    weights : numpy.ndarray, shape (u,), float32, summing to 1 (empty if nothing weighs)
    """
    unique, counts = np.unique(np.asarray(words, dtype=np.int64), return_counts=True)
    weights = counts.astype(np.float32) * idf[unique]
    keep = weights > 0
    unique, weights = unique[keep], weights[keep]
    total = weights.sum()
    if total <= 0:
        return unique[:0], weights[:0]
    return unique, weights / total


class InvertedFile:
    """tf-idf inverted file with incremental add and delete.

    Parameters
    ----------
    idf : numpy.ndarray, shape (n_words,), float32
        Word weights (from the vocabulary).
    """

    # Fold pending postings into the CSR base when they exceed this share of it (amortised).
    _PENDING_SHARE = 0.25
    _PENDING_MIN = 200_000

    def __init__(self, idf: np.ndarray) -> None:
        self.idf = np.asarray(idf, dtype=np.float32)
        self.n_words = len(self.idf)
        self._offsets = np.zeros(self.n_words + 1, dtype=np.int64)
        self._docs = np.zeros(0, dtype=np.int32)
        self._weights = np.zeros(0, dtype=np.float16)
        self._pending: dict[int, tuple[list[int], list[float]]] = {}
        self._pending_count = 0
        self._doc_ids: list[int] = []  # doc number -> image id
        self._alive: list[bool] = []
        self._id_to_doc: dict[int, int] = {}
        self._dead = 0

    # ---- maintenance -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._id_to_doc)

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self._id_to_doc

    def ids(self) -> list[int]:
        return list(self._id_to_doc)

    def add(self, image_id: int, words: np.ndarray) -> None:
        """Index one image given its words, shape (n,); replaces an earlier entry."""
        image_id = int(image_id)
        if image_id in self._id_to_doc:
            self.remove(image_id)
        doc = len(self._doc_ids)
        self._doc_ids.append(image_id)
        self._alive.append(True)
        self._id_to_doc[image_id] = doc
        unique, weights = tfidf(words, self.idf)
        for word, weight in zip(unique.tolist(), weights.tolist()):
            entry = self._pending.get(word)
            if entry is None:
                self._pending[word] = ([doc], [weight])
            else:
                entry[0].append(doc)
                entry[1].append(weight)
        self._pending_count += len(unique)
        if self._pending_count > max(self._PENDING_MIN, self._PENDING_SHARE * len(self._docs)):
            self.compact()

    def update(self, removed: Sequence[int], added: Sequence[tuple[int, np.ndarray]]) -> None:
        """Forget ``removed`` images, then index ``(id, words)`` pairs (replacing)."""
        for image_id in removed:
            self.remove(int(image_id))
        for image_id, words in added:
            self.add(int(image_id), words)

    def remove(self, image_id: int) -> bool:
        """Forget one image; returns whether it was there. Its postings go at compaction."""
        doc = self._id_to_doc.pop(int(image_id), None)
        if doc is None:
            return False
        self._alive[doc] = False
        self._dead += 1
        return True

    def compact(self) -> None:
        """Fold pending postings into the CSR base, drop deleted images, renumber documents."""
        words_parts = [np.repeat(np.arange(self.n_words), np.diff(self._offsets))]
        docs_parts = [self._docs]
        weight_parts = [self._weights.astype(np.float32)]
        for word, (docs, weights) in self._pending.items():
            words_parts.append(np.full(len(docs), word, dtype=np.int64))
            docs_parts.append(np.asarray(docs, dtype=np.int32))
            weight_parts.append(np.asarray(weights, dtype=np.float32))
        words = np.concatenate(words_parts)
        docs = np.concatenate(docs_parts)
        weights = np.concatenate(weight_parts)
        alive = np.asarray(self._alive, dtype=bool)
        if len(docs):
            keep = alive[docs]
            words, docs, weights = words[keep], docs[keep], weights[keep]
        renumber = np.cumsum(alive) - 1
        docs = renumber[docs].astype(np.int32) if len(docs) else docs
        order = np.lexsort((docs, words))
        self._docs = docs[order]
        self._weights = weights[order].astype(np.float16)
        counts = np.bincount(words, minlength=self.n_words)
        self._offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        self._doc_ids = [i for i, a in zip(self._doc_ids, self._alive) if a]
        self._alive = [True] * len(self._doc_ids)
        self._id_to_doc = {image_id: doc for doc, image_id in enumerate(self._doc_ids)}
        self._pending = {}
        self._pending_count = 0
        self._dead = 0

    @property
    def dirty(self) -> bool:
        """True when pending postings or tombstones wait for a compaction."""
        return bool(self._pending_count or self._dead)

    # ---- search ------------------------------------------------------------------------
    def query(
        self, words: np.ndarray, top: int, *, max_postings: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Images whose word histograms best intersect the query's.

        Parameters
        ----------
        words : numpy.ndarray, shape (n,), int
            The query's visual words.
        top : int
            How many images to return.
        max_postings : int, optional
            Skip the most common query words once this many postings were read (their
            tf-idf weight is the smallest): bounds latency on large collections.

        Returns
        -------
        ids : numpy.ndarray, shape (m,), int64, best first (m <= top)
        scores : numpy.ndarray, shape (m,), float32, in [0, 1]
        """
        n_docs = len(self._doc_ids)
        if n_docs == 0 or top <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        unique, q = tfidf(words, self.idf)
        if len(unique) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        starts = self._offsets[unique]
        lengths = self._offsets[unique + 1] - starts
        if max_postings is not None and lengths.sum() > max_postings:
            # Rarest words first: they carry the most weight and the fewest postings.
            order = np.argsort(lengths, kind="stable")
            keep = order[np.cumsum(lengths[order]) <= max_postings]
            unique, q, starts, lengths = unique[keep], q[keep], starts[keep], lengths[keep]
        total = int(lengths.sum())
        scores = np.zeros(n_docs, dtype=np.float32)
        if total:
            ends = np.cumsum(lengths)
            index = np.arange(total) - np.repeat(ends - lengths - starts, lengths)
            contrib = np.minimum(np.repeat(q, lengths), self._weights[index].astype(np.float32))
            scores += np.bincount(self._docs[index], contrib, minlength=n_docs).astype(
                np.float32
            )
        if self._pending:
            p_docs: list[int] = []
            p_contrib: list[float] = []
            for word, weight in zip(unique.tolist(), q.tolist()):
                entry = self._pending.get(word)
                if entry is not None:
                    p_docs.extend(entry[0])
                    p_contrib.extend(min(weight, w) for w in entry[1])
            if p_docs:
                scores += np.bincount(p_docs, p_contrib, minlength=n_docs).astype(np.float32)
        if self._dead:
            scores[~np.asarray(self._alive, dtype=bool)] = 0
        top = min(top, n_docs)
        best = np.argpartition(-scores, top - 1)[:top]
        best = best[np.argsort(-scores[best], kind="stable")]
        best = best[scores[best] > 0]
        return np.asarray(self._doc_ids, dtype=np.int64)[best], scores[best]

    # ---- persistence -------------------------------------------------------------------
    def nbytes(self) -> int:
        """Approximate bytes held in RAM by the postings and the id maps."""
        pending = self._pending_count * 2 * 36  # two boxed Python numbers in lists
        maps = len(self._doc_ids) * (8 + 1) + len(self._id_to_doc) * 100  # list + dict entry
        return int(self._offsets.nbytes + self._docs.nbytes + self._weights.nbytes + pending + maps)

    def save(self, path: str | os.PathLike, stamp: str) -> None:
        """Compact and write the inverted file to ``path`` with a ``stamp`` saying what it holds."""
        self.compact()
        buffer = io.BytesIO()
        np.savez(
            buffer,
            offsets=self._offsets,
            docs=self._docs,
            weights=self._weights,
            doc_ids=np.asarray(self._doc_ids, dtype=np.int64),
            stamp=np.array(stamp),
        )
        _atomic_write(Path(path), buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike, idf: np.ndarray) -> tuple["InvertedFile", str]:
        """Read an inverted file written by :meth:`save`; returns it and its stamp."""
        inverted = cls(idf)
        with np.load(path, allow_pickle=False) as data:
            offsets = data["offsets"]
            if len(offsets) != inverted.n_words + 1:
                raise ValueError("inverted file does not match the vocabulary")
            inverted._offsets = offsets.astype(np.int64)
            inverted._docs = data["docs"].astype(np.int32)
            inverted._weights = data["weights"].astype(np.float16)
            inverted._doc_ids = data["doc_ids"].astype(np.int64).tolist()
            stamp = str(data["stamp"])
        inverted._alive = [True] * len(inverted._doc_ids)
        inverted._id_to_doc = {i: d for d, i in enumerate(inverted._doc_ids)}
        return inverted, stamp
