"""The local-feature stage: crops, pasted-in and screenshotted copies, with where they match.

Signals (:class:`~picorigin._features.local.LocalFeatures`, computed in worker processes by
:meth:`LocalStage.compute`): up to 1000 ORB keypoints and descriptors of the image (for a
query: from a larger working image, plus those of its mirror image), keypoints in the image's
original pixel coordinates.

Search: the query's descriptors are quantised with a vocabulary tree and scored against a
tf-idf inverted file (``picorigin._index.inverted``); the best-scoring images (and, for mirrored
copies, the best for the query's mirror image) are re-ranked by geometric verification
(``picorigin._verify``), which keeps only images whose keypoints agree on one transform, and
says where: boxes, overlaps, rotation, scale, mirror.

Storage, in the data folder:

``local.sqlite``           the source of truth (WAL): ``features`` (size, keypoints, descriptors
                           and visual words per image), ``changes`` (ids touched since the last
                           checkpoint) and ``meta`` (which vocabulary the words belong to).
``local_inverted.npz``     the inverted-file checkpoint, with the change-log position it holds.
``local_vocabulary.npz``   a vocabulary trained on this collection (``train_vocabulary``);
                           without it the packaged default ``picorigin/data/vocabulary.npz``
                           (trained on photographs from Debian's wallpaper packages) is used.

Every add or remove commits rows and a change-log entry in one transaction; a stale or missing
checkpoint is brought up to date by replaying the log, or rebuilt from ``features``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import _verify
from .._features import local as local_features
from .._features.local import LocalFeatures
from .._index.inverted import InvertedFile, Vocabulary, train_vocabulary
from . import _store

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
# A checkpoint is written when this share of the index changed since the last one (or on close).
_CHECKPOINT_SHARE = 0.05
_CHECKPOINT_MIN = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    id INTEGER PRIMARY KEY, width INTEGER NOT NULL, height INTEGER NOT NULL,
    points BLOB NOT NULL, descriptors BLOB NOT NULL, words BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_vocabulary_path():
    """The packaged vocabulary (a Traversable inside ``picorigin/data``)."""
    return resources.files("picorigin").joinpath("data/vocabulary.npz")


def _pack_points(points: np.ndarray) -> bytes:
    # Original-pixel coordinates to 1/8 pixel in uint16 would overflow past 8191 px; float32 is
    # exact enough and only 8 bytes a keypoint next to its 32-byte descriptor.
    return np.ascontiguousarray(points, dtype=np.float32).tobytes()


class LocalStage:
    """Local features behind the engine's Stage protocol (kinds ``partial``, ``near_duplicate``).

    Parameters
    ----------
    folder : path-like
        The data folder; ``local.sqlite`` and ``local_*.npz`` live there.
    settings : dict, optional
        Resolved settings; none are read yet.

    Notes
    -----
    The engine calls ``compute(image, (width, height))`` at ingest with the decoded working
    image and the original size, and ``compute(image, (width, height), query=True)`` for a
    query; ``search`` on an ingest-style signal works but finds neither mirrored copies nor
    small pasted-in copies as well.
    """

    name = "local"
    working_side = local_features.WORKING_SIDE

    def __init__(self, folder: str | os.PathLike, settings: dict | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._index_path = self.folder / "local_inverted.npz"
        self._state_path = self.folder / "local_inverted.json"
        self._vocabulary_path = self.folder / "local_vocabulary.npz"
        self._lock = threading.RLock()
        self._db = _store.connect(self.folder / "local.sqlite", _SCHEMA)
        self._db.execute("INSERT OR IGNORE INTO meta VALUES ('features', ?)", (FEATURES,))
        self._vocabulary: Vocabulary | None = None  # loaded on first use
        self._index: InvertedFile | None = None
        self._seq = 0  # change-log position the in-memory index includes
        self._saved_seq = -1

    # -- computing signals (pure; worker processes) -------------------------------------------

    @staticmethod
    def compute(image, full_size: tuple[int, int] | None = None, *,
                query: bool = False) -> LocalFeatures:
        """Keypoints and descriptors of a decoded image.

        Parameters
        ----------
        image : PIL.Image.Image
            The decoded (possibly reduced) image, RGB.
        full_size : tuple of int, optional
            The original ``(width, height)``; boxes are reported in these pixels. Defaults to
            the size of ``image``.
        query : bool
            Compute a query signal (more keypoints, plus the mirror image's).
        """
        return local_features.compute(image, full_size, query=query)

    # -- vocabulary ----------------------------------------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        with self._lock:
            if self._vocabulary is None:
                if self._vocabulary_path.exists():
                    self._vocabulary = Vocabulary.load(self._vocabulary_path)
                else:
                    with default_vocabulary_path().open("rb") as file:
                        self._vocabulary = Vocabulary.load(file)
            return self._vocabulary

    def _words(self, descriptors: np.ndarray) -> np.ndarray:
        if len(descriptors) == 0:
            return np.zeros(0, np.uint32)
        return self.vocabulary.quantize(descriptors).astype(np.uint32)

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
        with self._lock:
            if descriptor_sample is None:
                ids = [row[0] for row in self._db.execute("SELECT id FROM features")]
                rng = np.random.default_rng(seed)
                if len(ids) > max_images:
                    ids = rng.choice(ids, max_images, replace=False).tolist()
                descriptor_sample = [
                    np.frombuffer(blob, np.uint8).reshape(-1, 32)
                    for blob, in self._rows_column("descriptors", ids)
                ]
            vocabulary = train_vocabulary(
                list(descriptor_sample), branching=branching, depth=depth, seed=seed,
                source=f"ORB descriptors of {len(descriptor_sample)} images of this collection",
            )
            vocabulary.save(self._vocabulary_path)
            self._vocabulary = vocabulary
            self._requantize()
            self._index = None
            self._load()
        return {"images": len(descriptor_sample), "words": vocabulary.n_words,
                "seconds": round(time.perf_counter() - started, 1),
                "vocabulary": vocabulary.digest()}

    def _rows_column(self, column: str, ids: list[int]):
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT {column} FROM features WHERE id IN ({marks})", chunk)

    def _requantize(self) -> None:
        """Recompute every stored image's words with the current vocabulary (one transaction)."""
        digest = self.vocabulary.digest()
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            ids = [row[0] for row in self._db.execute("SELECT id FROM features")]
            for start in range(0, len(ids), 1000):  # in chunks: descriptors are 32 kB an image
                chunk = ids[start:start + 1000]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT id, descriptors FROM features WHERE id IN ({marks})", chunk
                ).fetchall()
                self._db.executemany(
                    "UPDATE features SET words=? WHERE id=?",
                    [(self._words(np.frombuffer(blob, np.uint8).reshape(-1, 32)).tobytes(), key)
                     for key, blob in rows])
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('vocabulary', ?)", (digest,))
        logger.info("local stage: re-quantised %d images with vocabulary %s", len(ids), digest)

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: list[int], signals: list[LocalFeatures]) -> None:
        """Store signals (replacing any for the same ids); durable once this returns."""
        if len(ids) != len(signals):
            raise ValueError("ids and signals differ in length")
        self._refresh_vocabulary()
        rows = []
        for key, signal in zip(ids, signals):
            descriptors = np.ascontiguousarray(signal.descriptors, dtype=np.uint8)
            rows.append((int(key), int(signal.size[0]), int(signal.size[1]),
                         _pack_points(signal.points), descriptors.tobytes(),
                         self._words(descriptors).tobytes()))
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('vocabulary', ?)",
                             (self.vocabulary.digest(),))
            self._db.executemany("INSERT OR REPLACE INTO features VALUES (?,?,?,?,?,?)", rows)
            _store.log_changes(self._db, [(r[0],) for r in rows])
        if self._index is not None:
            self._sync()

    def _refresh_vocabulary(self) -> None:
        """Make the stored words and the vocabulary in use agree (another process may retrain)."""
        with self._lock:
            stored = self._stored_vocabulary()
            if stored is None or stored == self.vocabulary.digest():
                return
            self._vocabulary, self._index = None, None  # reload the file the other one wrote
            if stored != self.vocabulary.digest():
                self._requantize()

    def remove(self, ids: list[int]) -> None:
        """Forget these images (ids not stored are ignored)."""
        keys = [(int(i),) for i in ids]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM features WHERE id=?", keys)
            _store.log_changes(self._db, keys)
        if self._index is not None:
            self._sync()

    # -- the inverted file, kept in step with the SQLite file -----------------------------------

    def _stored_vocabulary(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='vocabulary'").fetchone()
        return row[0] if row else None

    def _rebuild(self) -> None:
        position = _store.position(self._db)
        index = InvertedFile(self.vocabulary.idf)
        for key, blob in self._db.execute("SELECT id, words FROM features"):
            index.add(key, np.frombuffer(blob, np.uint32))
        index.compact()
        self._index, self._seq, self._saved_seq = index, position, -1
        logger.info("local stage: rebuilt the inverted file from %d stored images", len(index))

    def _load(self) -> None:
        # Words stored under another vocabulary (a crash during retraining, or a vocabulary
        # file replaced by hand) are recomputed first.
        stored = self._stored_vocabulary()
        if stored is not None and stored != self.vocabulary.digest():
            self._requantize()
        try:
            state = json.loads(self._state_path.read_text())
            if state.get("vocabulary") != self.vocabulary.digest():
                raise ValueError("vocabulary changed")
            if int(state["seq"]) > _store.position(self._db):
                raise ValueError("checkpoint is newer than local.sqlite")
            self._index, stamp = InvertedFile.load(self._index_path, self.vocabulary.idf)
            if stamp != str(state["seq"]):
                raise ValueError("checkpoint files disagree")
            self._seq = self._saved_seq = int(state["seq"])
        except (OSError, ValueError, KeyError) as error:
            logger.info("local stage: no usable inverted-file checkpoint (%s); rebuilding", error)
            self._rebuild()
            return
        self._sync()

    def _sync(self) -> None:
        """Apply commits made since the in-memory index was last brought up to date."""
        if self._index is None:
            self._load()
            return
        stored = self._stored_vocabulary()
        if stored is not None and stored != self.vocabulary.digest():
            self._refresh_vocabulary()  # another process retrained the vocabulary
            self._load()
            return
        position = _store.position(self._db)
        if position == self._seq:
            return
        touched = _store.changed_since(self._db, self._seq, position)
        if touched is None:
            self._index = None  # the log was pruned past us by another process's checkpoint
            self._load()
            return
        for key in touched:
            self._index.remove(key)
        for start in range(0, len(touched), 500):
            chunk = touched[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                    f"SELECT id, words FROM features WHERE id IN ({marks})", chunk):
                self._index.add(key, np.frombuffer(blob, np.uint32))
        self._seq = position

    def _features(self, ids: list[int]) -> dict[int, tuple[LocalFeatures, np.ndarray]]:
        out = {}
        for start in range(0, len(ids), 500):
            chunk = [int(i) for i in ids[start:start + 500]]
            marks = ",".join("?" * len(chunk))
            for key, width, height, points, descriptors, words in self._db.execute(
                    "SELECT id, width, height, points, descriptors, words FROM features "
                    f"WHERE id IN ({marks})", chunk):
                features = LocalFeatures(
                    np.frombuffer(points, np.float32).reshape(-1, 2),
                    np.frombuffer(descriptors, np.uint8).reshape(-1, 32),
                    (int(width), int(height)),
                )
                out[key] = (features, np.frombuffer(words, np.uint32))
        return out

    # -- queries ---------------------------------------------------------------------------

    def search(
        self,
        signal: LocalFeatures,
        k: int,
        *,
        candidates: list[int] | None = None,
        timings: dict | None = None,
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

        Returns
        -------
        list of dict
            Best first: ``{"id", "kind": "partial"|"near_duplicate", "score", "query_box",
            "match_box", "query_overlap", "match_overlap", "transform", "rotation", "scale",
            "mirror", "inliers"}`` (see ``picorigin._verify.describe``).
        """
        clock = time.perf_counter()
        spent = timings if timings is not None else {}

        def lap(step: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            spent[step] = round(spent.get(step, 0.0) + 1000 * (now - clock), 2)
            clock = now

        with self._lock:
            self._sync()
            lap("sync")
            query_words = self._words(signal.descriptors)
            mirrored = signal.mirrored
            mirror_words = self._words(mirrored.descriptors) if mirrored is not None else None
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
                ids, _ = self._index.query(query_words, SHORTLIST, max_postings=MAX_POSTINGS)
                direct.update(ids.tolist())
                exhaustive.update(ids[:EXHAUSTIVE_TOP].tolist())
                if mirror_words is not None:
                    ids, _ = self._index.query(mirror_words, SHORTLIST_MIRROR,
                                               max_postings=MAX_POSTINGS_MIRROR)
                    flipped.update(ids.tolist())
            lap("inverted")
            stored = self._features(sorted(direct | flipped))
            lap("fetch")
        query_cells = self._cells(query_words)
        mirror_cells = self._cells(mirror_words) if mirror_words is not None else None
        hits = []
        rechecked = 0
        for key, (features, words) in stored.items():
            orientations = {"direct": key in direct, "mirror": key in flipped}
            if key in exhaustive:
                result = _verify.verify(signal, features, **orientations)
                if result is not None:
                    hit = {"id": int(key)}
                    hit.update(_verify.describe(result, signal.size, features.size))
                    hits.append(hit)
                continue
            result = _verify.verify(
                signal, features, query_cells=query_cells, mirrored_cells=mirror_cells,
                match_cells=self._cells(words), min_inliers=RECHECK_FROM, **orientations,
            )
            if result is not None and result.inliers < 2 * _verify.MIN_INLIERS:
                # Borderline: cell matching misses some true matches (a strong change of
                # scale or viewpoint), so match again exhaustively (about 8 ms, rarely needed).
                rechecked += 1
                again = _verify.verify(signal, features, min_inliers=RECHECK_FROM,
                                       **orientations)
                if again is not None and again.inliers > result.inliers:
                    result = again
            if result is not None and result.inliers >= _verify.MIN_INLIERS:
                hit = {"id": int(key)}
                hit.update(_verify.describe(result, signal.size, features.size))
                hits.append(hit)
        spent["verified"] = len(stored)
        spent["rechecked"] = rechecked
        lap("verify")
        hits.sort(key=lambda h: (-h["inliers"], h["id"]))
        return hits[:k]

    def confirm(self, signal: LocalFeatures, ids: list[int], *, min_inliers: int) -> list[dict]:
        """Verify these images by exhaustive matching, with a bar of ``min_inliers``.

        For candidates another stage already vouches for (a near-certain ``similar`` match): the
        two pieces of evidence together allow a lower bar than keypoints alone. Hits as
        :meth:`search`.
        """
        with self._lock:
            self._sync()
            stored = self._features([int(i) for i in ids])
        hits = []
        for key, (features, _) in stored.items():
            result = _verify.verify(signal, features, min_inliers=min_inliers)
            if result is not None:
                hit = {"id": int(key)}
                hit.update(_verify.describe(result, signal.size, features.size))
                hits.append(hit)
        return hits

    # -- lifecycle -------------------------------------------------------------------------

    def save(self, *, force: bool = False) -> None:
        """Checkpoint the inverted file and prune the change log it covers.

        Cheap when little changed: a checkpoint is written only once 5 % of the images (at
        least 200) changed since the last one, or with ``force`` (``close`` forces); the change
        log keeps everything committed meanwhile.
        """
        with self._lock:
            if self._index is None and _store.position(self._db) == 0:
                return  # nothing was ever added
            self._sync()  # loads (or rebuilds) the index when it is not in memory yet
            if self._saved_seq == self._seq:
                return
            if not force and self._saved_seq >= 0:
                pending = self._seq - self._saved_seq
                if pending < max(_CHECKPOINT_MIN, _CHECKPOINT_SHARE * len(self._index)):
                    return
            self._index.save(self._index_path, str(self._seq))
            _store.write_checkpoint(self._db, self._state_path, {
                "seq": self._seq, "vocabulary": self.vocabulary.digest(), "features": FEATURES})
            self._saved_seq = self._seq

    def close(self) -> None:
        """Checkpoint and close the SQLite file."""
        with self._lock:
            if self._db is None:
                return
            self.save(force=True)
            self._db.close()
            self._db = None

    def ids(self) -> set[int]:
        """Every image id this stage holds features for (to find images it lacks)."""
        with self._lock:
            return {int(row[0]) for row in self._db.execute("SELECT id FROM features")}

    def stats(self) -> dict:
        """Counts and sizes: images, keypoints, vocabulary, bytes on disk and in RAM."""
        with self._lock:
            self._sync()
            images, keypoints = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(descriptors)), 0) / 32 FROM features"
            ).fetchone()
            on_disk = sum(path.stat().st_size for path in self.folder.glob("local*")
                          if path.is_file())
            in_ram = self._index.nbytes() if self._index is not None else 0
            vocabulary = self.vocabulary
            return {
                "images": int(images),
                "keypoints": int(keypoints),
                "features": FEATURES,
                "vocabulary": {"words": vocabulary.n_words, "digest": vocabulary.digest(),
                               "source": vocabulary.source,
                               "trained_here": self._vocabulary_path.exists()},
                "bytes_on_disk": int(on_disk),
                "bytes_in_ram": int(in_ram + vocabulary.centers.nbytes + vocabulary.idf.nbytes),
                "bytes_per_image_on_disk": round(on_disk / images) if images else 0,
                "bytes_per_image_in_ram": round(in_ram / images) if images else 0,
            }

    def __enter__(self) -> "LocalStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
