"""The local-feature stage: crops, pasted-in and screenshotted copies, with where they match.

Signals (:class:`~picorigin._features.local.LocalFeatures`, computed anywhere by
:meth:`LocalStage.compute`): up to 1000 ORB keypoints and descriptors of the image (for a
query: from a larger working image, plus those of its mirror image), keypoints in the image's
original pixel coordinates. Stored in the catalog with their visual words.

Search: the query's descriptors are quantised with a vocabulary tree and scored against a
tf-idf inverted file (``picorigin._index.inverted``, the stage's derived index; with the
setting ``index``, a Milvus collection of sparse vectors, ``picorigin._index.milvus``); the
best-scoring images (and, for mirrored copies, the best for the query's mirror image) are
re-ranked by geometric verification (``picorigin._verify``), which keeps only images whose
keypoints agree on one transform, and says where: boxes, overlaps, rotation, scale, mirror.

Vocabulary: ``local_vocabulary.npz`` in the data folder when trained on this collection
(``train_vocabulary``), else the packaged ``picorigin/data/vocabulary.npz`` (trained on
photographs from Debian's wallpaper packages). The catalog's meta ``local.vocabulary`` names the
one the stored words belong to; a process that finds another's retrained vocabulary reloads it.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from importlib import resources
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .. import _verify
from .._features import local as local_features
from .._features.local import LocalFeatures
from .._index.inverted import InvertedFile, Vocabulary, train_vocabulary
from .._store.migrate import import_stage_file
from .base import Stage

__all__ = ["LocalStage"]

logger = logging.getLogger("picorigin")

FEATURES = "orb1000-grid4-fast8-640/v1"
MATCH_LEVELS_UP = 2
SHORTLIST = 20  # images verified for the query as it is (40: +16 ms p50 at 100,000, same recall)
SHORTLIST_MIRROR = 8  # ... and for its mirror image
MAX_CANDIDATES = 200  # explicit candidates verified at most
# Candidates whose cell matching gives at least this many inliers (but fewer than twice the
# acceptance threshold) are matched again by brute force. Unrelated pairs reach 8 in about 1 %
# of cases (bench/partial_copies.py), so this costs about one brute-force match per query.
RECHECK_FROM = 8
# The best-ranked images of the inverted file are matched by brute force from the start: that
# is where a true match most likely is, and cell matching loses matches across strong changes
# of scale or viewpoint (a photographed object in a scene).
EXHAUSTIVE_TOP = 1
# Skip the commonest query words past this many postings (bounds latency on big collections:
# at 100,000 images the cap binds; both lookups then cost about 40 ms together).
MAX_POSTINGS = 1_500_000
MAX_POSTINGS_MIRROR = 500_000
_VOCABULARY_KEY = "local.vocabulary"
_HEADER = struct.Struct("<III")  # keypoints, width, height


def default_vocabulary_path():
    """The packaged vocabulary (a Traversable inside ``picorigin/data``)."""
    return resources.files("picorigin").joinpath("data/vocabulary.npz")


class _Index:
    """The derived index: an inverted file of visual words."""

    def __init__(self, inverted: InvertedFile) -> None:
        self.inverted = inverted

    def update(self, removed: list[int], added: list[tuple[int, np.ndarray]]) -> None:
        self.inverted.update(removed, added)

    def save(self, path: Path) -> None:
        self.inverted.save(path, "")

    def ids(self) -> set[int]:
        return {int(i) for i in self.inverted.ids()}

    def __len__(self) -> int:
        return len(self.inverted)

    def query(self, words: np.ndarray, top: int, *, max_postings: int | None = None):
        return self.inverted.query(words, top, max_postings=max_postings)

    def nbytes(self) -> int:
        return self.inverted.nbytes()


@dataclass(frozen=True)
class QueryWords:
    """A query's visual words, and the vocabulary they belong to."""

    vocabulary: Vocabulary
    direct: np.ndarray
    mirrored: np.ndarray | None


class LocalStage(Stage):
    """Local features (kinds ``partial``, ``near_duplicate``). See the module docstring."""

    name = "local"
    working_side = local_features.WORKING_SIDE
    query_side = local_features.WORKING_SIDE

    def __init__(self, catalog, folder: Path, settings) -> None:
        super().__init__(catalog, folder, settings)
        self._vocabulary_path = self.folder / "local_vocabulary.npz"
        self._vocabulary_lock = threading.RLock()
        self._vocabulary: Vocabulary | None = None  # loaded on first use
        import_stage_file(self, self.folder / "local.sqlite",
                          "SELECT id, width, height, points, descriptors FROM features",
                          _legacy_features)

    # -- computing signals (pure; any process) -------------------------------------------------

    @classmethod
    def compute(cls, image, full_size: tuple[int, int] | None = None, *,
                query: bool = False) -> LocalFeatures:
        """Keypoints and descriptors of a decoded image (see ``_features.local.compute``)."""
        return local_features.compute(image, full_size, query=query)

    # -- stored form -----------------------------------------------------------------------------

    def encode(self, signal: LocalFeatures) -> bytes:
        self._refresh_vocabulary()
        descriptors = np.ascontiguousarray(signal.descriptors, dtype=np.uint8)
        return _pack(signal.points, descriptors, signal.size, self._words(descriptors))

    def decode(self, data: bytes) -> tuple[LocalFeatures, np.ndarray]:
        """``(features, words)`` of a stored signal."""
        n, width, height = _HEADER.unpack_from(data)
        at = _HEADER.size
        points = np.frombuffer(data, np.float32, 2 * n, at).reshape(n, 2)
        at += 8 * n
        descriptors = np.frombuffer(data, np.uint8, 32 * n, at).reshape(n, 32)
        words = np.frombuffer(data, np.uint32, n, at + 32 * n)
        return LocalFeatures(points, descriptors, (width, height)), words

    def index_entry(self, data: bytes) -> np.ndarray:
        n = _HEADER.unpack_from(data)[0]
        return np.frombuffer(data, np.uint32, n, _HEADER.size + 40 * n)

    def new_index(self) -> _Index:
        return _Index(InvertedFile(self.vocabulary.idf))

    def load_index(self, path: Path) -> _Index:
        return _Index(InvertedFile.load(path, self.vocabulary.idf)[0])

    def shared_index(self, connection) -> Any:
        from .._index.milvus import MilvusSparseIndex

        return MilvusSparseIndex(self.vocabulary.idf, connection, self.name,
                                 lookup=self._stored_words)

    def _stored_words(self, ids: list[int]) -> dict[int, np.ndarray]:
        return {key: self.index_entry(data)
                for key, data in self.catalog.signals(self.name, ids).items()}

    def index_meta(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary.digest(), "features": FEATURES}

    def _features(self, ids: list[int]) -> dict[int, tuple[LocalFeatures, np.ndarray]]:
        return self.stored(ids)

    # -- vocabulary ----------------------------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        with self._vocabulary_lock:
            if self._vocabulary is None:
                if self._vocabulary_path.exists():
                    self._vocabulary = Vocabulary.load(self._vocabulary_path)
                else:
                    with default_vocabulary_path().open("rb") as file:
                        self._vocabulary = Vocabulary.load(file)
            return self._vocabulary

    def _refresh_vocabulary(self) -> None:
        """Use the vocabulary the stored words belong to (another process may have retrained)."""
        stored = self.catalog.get_meta(_VOCABULARY_KEY)
        with self._vocabulary_lock:
            if stored is None:
                self.catalog.set_meta(_VOCABULARY_KEY, self.vocabulary.digest())
            elif stored != self.vocabulary.digest():
                self._vocabulary = None
                self.store.reset()
                if stored != self.vocabulary.digest():
                    self._requantize()  # a crash mid-retraining, or a file replaced by hand

    def _words(self, descriptors: np.ndarray, vocabulary: Vocabulary | None = None) -> np.ndarray:
        if len(descriptors) == 0:
            return np.zeros(0, np.uint32)
        return (vocabulary or self.vocabulary).quantize(descriptors).astype(np.uint32)

    def _cells(self, words: np.ndarray) -> np.ndarray:
        # Matching cells MATCH_LEVELS_UP levels above the leaves (512 cells in the default
        # 8^5 tree): true matches that quantisation split between nearby leaves still meet
        # there, and each cell holds only a couple of an image's keypoints to compare.
        return np.asarray(words, np.int64) // self.vocabulary.branching**MATCH_LEVELS_UP

    def train_vocabulary(
        self,
        descriptor_sample: Sequence[np.ndarray] | None = None,
        *,
        branching: int = 10,
        depth: int = 4,
        max_images: int = 5000,
        seed: int = 0,
    ) -> dict:
        """Train a vocabulary for this collection, then re-quantise every stored image.

        Parameters
        ----------
        descriptor_sample : sequence of numpy.ndarray, each shape (n_i, 32), uint8, optional
            Descriptors grouped by image. Default: up to ``max_images`` stored images drawn at
            random.
        branching, depth : int
            Tree shape (``branching ** depth`` words); deeper trees suit larger collections.
        max_images : int
            Images sampled from the store when no sample is given.

        Returns
        -------
        dict
            ``{"images": sample size, "words", "seconds", "vocabulary": digest}``
        """
        started = time.perf_counter()
        with self._vocabulary_lock:
            if descriptor_sample is None:
                ids = sorted(self.ids())
                if len(ids) > max_images:
                    ids = np.random.default_rng(seed).choice(ids, max_images, replace=False)
                descriptor_sample = [features.descriptors
                                     for features, _ in self.stored(list(ids)).values()]
            vocabulary = train_vocabulary(
                list(descriptor_sample), branching=branching, depth=depth, seed=seed,
                source=f"ORB descriptors of {len(descriptor_sample)} images of this collection",
            )
            vocabulary.save(self._vocabulary_path)
            self._vocabulary = vocabulary
            self._requantize()
        return {"images": len(descriptor_sample), "words": vocabulary.n_words,
                "seconds": round(time.perf_counter() - started, 1),
                "vocabulary": vocabulary.digest()}

    def _requantize(self) -> None:
        """Recompute every stored image's words with the vocabulary in use."""
        digest = self.vocabulary.digest()
        count = 0
        for rows in self.catalog.scan_signals(self.name, batch=1000):
            updated = []
            for key, data in rows:
                features, _ = self.decode(data)
                updated.append((key, _pack(features.points, features.descriptors,
                                           features.size, self._words(features.descriptors))))
            self.catalog.put_signals(self.name, updated)
            count += len(updated)
        self.catalog.set_meta(_VOCABULARY_KEY, digest)
        self.store.reset()
        logger.info("local stage: re-quantised %d images with vocabulary %s", count, digest)

    # -- queries ---------------------------------------------------------------------------

    def search(
        self,
        signal: LocalFeatures,
        k: int,
        *,
        candidates: list[int] | None = None,
        timings: dict | None = None,
        position: int | None = None,
        words: "QueryWords | None" = None,
    ) -> list[dict]:
        """Indexed images that the query shows, or that show the query, verified geometrically.

        Parameters
        ----------
        signal : LocalFeatures
            The query's signal, best from ``compute(image, full_size, query=True)``.
        k : int
            Most hits returned.
        candidates : list of int, optional
            Verify exactly these ids (both orientations) instead of searching the inverted
            file: e.g. to explain a fingerprint match with boxes. Only these may be returned.
        timings : dict, optional
            Filled with milliseconds spent per step (``quantize``, ``inverted``, ``fetch``,
            ``verify``) and ``verified`` (images verified).
        position : int, optional
            The change-log position to catch up to (default: the log's end).
        words : QueryWords, optional
            ``quantize(signal)``, when made ahead (a search step starts it on the query pool).

        Returns
        -------
        list of dict
            Best first: ``{"id", "kind": "partial"|"near_duplicate", "score", "query_box",
            "match_box", "query_overlap", "match_overlap", "transform", "rotation", "scale",
            "mirror", "inliers"}`` (see ``picorigin._verify.describe``).
        """
        clock = time.perf_counter()
        spent = timings if timings is not None else {}
        self._refresh_vocabulary()

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            spent[step] = round(spent.get(step, 0.0) + 1000 * (now - clock), 2)
            clock = now

        with self.store.reading(position) as index:
            lap("sync")
            if words is None or words.vocabulary is not self.vocabulary:  # none, or retrained
                words = self.quantize(signal)
            query_words, mirror_words = words.direct, words.mirrored
            mirrored = signal.mirrored
            lap("quantize")
            direct: set[int] = set()
            flipped: set[int] = set()
            exhaustive: set[int] = set()  # best-ranked: matched by brute force straight away
            if candidates is not None:
                chosen = [int(i) for i in candidates][:MAX_CANDIDATES]
                direct.update(chosen)
                flipped.update(chosen if mirrored is not None else ())
                if len(chosen) <= EXHAUSTIVE_TOP:
                    exhaustive.update(chosen)
            else:
                ids, _ = index.query(query_words, SHORTLIST, max_postings=MAX_POSTINGS)
                direct.update(ids.tolist())
                exhaustive.update(ids[:EXHAUSTIVE_TOP].tolist())
                if mirror_words is not None:
                    ids, _ = index.query(mirror_words, SHORTLIST_MIRROR,
                                               max_postings=MAX_POSTINGS_MIRROR)
                    flipped.update(ids.tolist())
            lap("inverted")
        stored = self._features(sorted(direct | flipped))
        lap("fetch")
        query_cells = self._cells(query_words)
        mirror_cells = self._cells(mirror_words) if mirror_words is not None else None
        # Cell matches of every candidate at once (the same as one by one, a third the cost).
        matched: dict[int, dict[bool, tuple]] = {key: {} for key in stored}
        for flip, cells, keys in ((False, query_cells, direct), (True, mirror_cells, flipped)):
            keys = sorted(keys - exhaustive)
            if cells is None or not keys:
                continue
            query_features = signal.mirrored if flip else signal
            pairs = _verify.match_by_words_many(
                query_features.descriptors, cells,
                [(stored[key][0].descriptors, self._cells(stored[key][1])) for key in keys])
            for key, found in zip(keys, pairs):
                matched[key][flip] = found

        def check(key: int) -> tuple[dict | None, bool]:
            """Verify one candidate: (hit or None, whether it was matched a second time)."""
            features, words = stored[key]
            orientations = {"direct": key in direct, "mirror": key in flipped}
            if key in exhaustive:
                result = _verify.verify(signal, features, **orientations)
                return (None if result is None else _hit(key, result, signal, features)), False
            result, again = _verify.verify_candidate(
                signal, features, query_cells=query_cells, mirrored_cells=mirror_cells,
                match_cells=self._cells(words), recheck_from=RECHECK_FROM, matched=matched[key],
                **orientations)
            return (None if result is None else _hit(key, result, signal, features)), again

        # Candidates side by side on the query pool: matching and RANSAC release the GIL.
        checked = _in_parallel(check, list(stored))
        hits = [hit for hit, _ in checked if hit is not None]
        rechecked = sum(again for _, again in checked)
        spent["verified"] = len(stored)
        spent["rechecked"] = rechecked
        lap("verify")
        hits.sort(key=lambda h: (-h["inliers"], h["id"]))
        return hits[:k]

    def quantize(self, signal: LocalFeatures) -> "QueryWords":
        """The visual words of a query's descriptors (and of its mirror image's)."""
        vocabulary = self.vocabulary
        mirrored = signal.mirrored
        return QueryWords(vocabulary, self._words(signal.descriptors, vocabulary),
                          None if mirrored is None else self._words(mirrored.descriptors,
                                                                    vocabulary))

    def confirm(self, signal: LocalFeatures, ids: list[int], *, min_inliers: int) -> list[dict]:
        """Verify these images by exhaustive matching, with a bar of ``min_inliers``.

        For candidates another stage already vouches for (a near-certain ``similar`` match): the
        two pieces of evidence together allow a lower bar than keypoints alone. Hits as
        :meth:`search`.
        """
        stored = self._features([int(i) for i in ids])

        def check(key: int) -> dict | None:
            features = stored[key][0]
            result = _verify.verify(signal, features, min_inliers=min_inliers)
            return None if result is None else _hit(key, result, signal, features)

        return [hit for hit in _in_parallel(check, list(stored)) if hit is not None]

    def stats(self) -> dict:
        """Counts and sizes: images, keypoints, vocabulary, bytes in RAM."""
        with self.store.reading() as index:
            in_ram = index.nbytes()
        images = self.catalog.count_signals(self.name)
        vocabulary = self.vocabulary
        return {
            **super().stats(),
            "features": FEATURES,
            "vocabulary": {"words": vocabulary.n_words, "digest": vocabulary.digest(),
                           "source": vocabulary.source,
                           "trained_here": self._vocabulary_path.exists()},
            "bytes_in_ram": int(in_ram + vocabulary.centers.nbytes + vocabulary.idf.nbytes),
            "bytes_per_image_in_ram": round(in_ram / images) if images else 0,
        }


def _hit(key: int, result: _verify.Verification, query: LocalFeatures,
         match: LocalFeatures) -> dict:
    return {"id": int(key), **_verify.describe(result, query.size, match.size)}


def _in_parallel(function, items: list) -> list:
    """``[function(item) for item in items]``, on the query pool when there is more than one."""
    if len(items) < 2:
        return [function(item) for item in items]
    from .._query import executor

    return list(executor().map(function, items))


def _pack(points: np.ndarray, descriptors: np.ndarray, size: tuple[int, int],
          words: np.ndarray) -> bytes:
    # Original-pixel coordinates as float32: exact enough, and only 8 bytes a keypoint next
    # to its 32-byte descriptor.
    n = len(descriptors)
    return b"".join([_HEADER.pack(n, int(size[0]), int(size[1])),
                     np.ascontiguousarray(points, np.float32).reshape(n, 2).tobytes(),
                     np.ascontiguousarray(descriptors, np.uint8).tobytes(),
                     np.ascontiguousarray(words, np.uint32).tobytes()])


def _legacy_features(row: tuple) -> tuple[int, LocalFeatures]:
    key, width, height, points, descriptors = row
    return key, LocalFeatures(np.frombuffer(points, np.float32).reshape(-1, 2),
                              np.frombuffer(descriptors, np.uint8).reshape(-1, 32),
                              (width, height))
