"""The deep stage: visually similar images, a best guess of what an image shows, its colours.

Signals (:class:`DeepSignal`, computed in worker processes by :meth:`DeepStage.compute`):
a 256-d EfficientNet-Lite0 descriptor (``picorigin._features.deep``), the top-5 ImageNet labels
with probabilities, and a colour palette (``picorigin._features.colour``).

Storage, in the data folder:

``deep.sqlite``  the source of truth (WAL): ``signals`` (descriptor, labels, palette per image),
                 ``labels`` (image, class, p; for ``--label``), ``changes`` (a log of touched ids
                 since the last checkpoint) and ``meta``.
``deep.faiss``   the dense index checkpoint (``picorigin._index.faiss_dense``), with
``deep.json``    the change-log position it includes.

Every add or remove commits rows and a change-log entry in one transaction, so nothing
committed is lost: an index checkpoint that is stale or missing is brought up to date by
replaying the log (idempotently: each touched id is removed, then re-added from its row if the
row exists), or rebuilt from ``signals`` when the log no longer reaches back that far. A reader in
another process (the web server) notices new commits the same way before each search.

Scores: a ``similar`` hit's ``score`` is ``1 / (1 + exp(-slope * (cosine - midpoint)))``, a fixed
function fitted on same-kind vs different-kind photo pairs of ``bench/similar.py`` with the two
classes weighted equally (so it does not depend on how many kinds a collection holds). It reads
as the probability that the two images show the same kind of thing; 0.5 is the even point. The
raw cosine is returned too, as ``similarity``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .._features import colour as colour_features
from .._features import deep as deep_features
from . import _store

__all__ = ["DeepSignal", "DeepStage", "label_classes"]

logger = logging.getLogger("picorigin")

DESCRIPTOR = "efficientnet-lite0/gem3/pca256w0.25/v1"
DIM = 256
# --label keeps images whose stored top-5 probability on the asked classes sums to this
LABEL_MIN_MASS = 0.2
COLOUR_MIN_PRESENCE = 0.1  # --colour keeps images with at least this much of the colour
_COLOUR_POOL = 200  # neighbours examined when filtering by colour

# Coarse ImageNet groups for --label (class index ranges, inclusive), where no class is named so.
_GROUPS: dict[str, tuple[tuple[int, int], ...]] = {
    "dog": ((151, 268),),
    "cat": ((281, 285),),
    "big cat": ((286, 293),),
    "bird": ((7, 24), (80, 100), (127, 146)),
    "fish": ((0, 6), (389, 397)),
    "amphibian": ((25, 32),),
    "reptile": ((33, 68),),
    "turtle": ((33, 37),),
    "lizard": ((38, 48),),
    "snake": ((52, 68),),
    "insect": ((300, 326),),
    "butterfly": ((321, 326),),
    "bear": ((294, 297),),
    "primate": ((365, 384),),
    "monkey": ((369, 384),),
    "ape": ((365, 369),),
    "car": ((407, 407), (436, 436), (468, 468), (511, 511), (609, 609), (627, 627),
            (656, 656), (661, 661), (717, 717), (751, 751), (817, 817)),
    "fruit": ((948, 957),),
    "apple": ((948, 948),),
    "flower": ((985, 986),),
}


@dataclass(frozen=True)
class DeepSignal:
    """What the deep stage stores and searches with, for one image.

    Attributes
    ----------
    embedding : ndarray of float32, shape (256,)
        L2-normalised descriptor.
    labels : tuple of (int, float)
        Top-5 ImageNet classes (index, probability).
    palette : ndarray of float32, shape (k, 4)
        Dominant colours ``(L, a, b, share)``, k <= 5.
    """

    embedding: np.ndarray
    labels: tuple[tuple[int, float], ...]
    palette: np.ndarray


@lru_cache(maxsize=256)
def label_classes(text: str) -> frozenset[int]:
    """ImageNet class indices a ``--label`` text stands for.

    A coarse group name (``dog``, ``bird``, ``car``, ... plural or not) gives the group;
    otherwise every class whose name contains the text as whole words (``squirrel`` gives
    ``fox squirrel``, ``squirrel monkey``).
    """
    words = " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("-", " ")))
    if not words:
        return frozenset()
    for candidate in (words, words[:-1] if words.endswith("s") else None):
        if candidate in _GROUPS:
            return frozenset(i for low, high in _GROUPS[candidate] for i in range(low, high + 1))
    found = set()
    for candidate in (words, words[:-1] if words.endswith("s") else None):
        if candidate:
            pattern = re.compile(rf"(^|\s){re.escape(candidate)}($|\s)")
            found |= {i for i, name in enumerate(deep_features.class_names())
                      if pattern.search(name.lower().replace("-", " "))}
    return frozenset(found)


@lru_cache(maxsize=1)
def _calibration() -> tuple[float, float]:
    from importlib import resources

    with resources.files("picorigin").joinpath("data/deep_whitening.npz").open("rb") as file:
        slope, midpoint = np.load(file)["calibration"]
    return float(slope), float(midpoint)


def calibrated(similarity: np.ndarray | float) -> np.ndarray:
    """Cosine similarity to a ``similar`` score in [0, 1] (see the module docstring)."""
    slope, midpoint = _calibration()
    return 1.0 / (1.0 + np.exp(-slope * (np.asarray(similarity, dtype=np.float64) - midpoint)))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY, embedding BLOB NOT NULL, labels TEXT NOT NULL, palette BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    class INTEGER NOT NULL, id INTEGER NOT NULL, p REAL NOT NULL, PRIMARY KEY (class, id))
    WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_id ON labels (id);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class DeepStage:
    """The ``similar`` kind, labels and palettes, behind the engine's Stage protocol.

    Parameters
    ----------
    folder : path-like
        The data folder; ``deep.sqlite``, ``deep.faiss`` and ``deep.json`` live there.
    settings : dict
        Resolved settings (none read yet; kept for the Stage protocol).
    """

    name = "deep"
    # the decoded image this stage wants (longer side): the network sees 224 x 224, and
    # decoding larger bought nothing (bench mAP@10 0.627, 0.619, 0.619, 0.620 at 224, 256,
    # 320, 448) while costing decode time (JPEG draft at 1/4 instead of 1/8 scale)
    working_side = 224

    def __init__(self, folder: str | os.PathLike, settings: dict | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._index_path = self.folder / "deep.faiss"
        self._state_path = self.folder / "deep.json"
        self._lock = threading.RLock()
        self._db = _store.connect(self.folder / "deep.sqlite", _SCHEMA)
        stored = self._db.execute("SELECT value FROM meta WHERE key='descriptor'").fetchone()
        if stored is None:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('descriptor', ?)", (DESCRIPTOR,))
        elif stored[0] != DESCRIPTOR:
            logger.warning("deep.sqlite holds %s descriptors, this version computes %s: "
                           "re-index for meaningful similar results", stored[0], DESCRIPTOR)
        self._index = None  # loaded on first use
        self._seq = 0  # change-log position the in-memory index includes
        self._saved_seq = -1

    # -- computing signals (pure; worker processes) -------------------------------------------

    @staticmethod
    def check() -> None:
        """Make sure the model is usable here, exporting it once if needed.

        Call once in the parent before starting workers, so that they do not each export it.

        Raises
        ------
        StageUnavailable
        """
        deep_features.ensure_model()

    @staticmethod
    def compute(image) -> DeepSignal:
        """The signal of one image (PIL, RGB); raises StageUnavailable without the model."""
        return DeepStage.compute_batch([image])[0]

    @staticmethod
    def compute_batch(images: list) -> list[DeepSignal]:
        """:meth:`compute` for several images with one network call (cheaper per image)."""
        features = deep_features.compute_batch(images)
        return [DeepSignal(f.embedding, f.labels, colour_features.compute(image))
                for f, image in zip(features, images)]

    @staticmethod
    def describe(signal: DeepSignal) -> dict:
        """``{"labels": [{"name", "p"}, ...], "palette": [{"hex", "share"}, ...]}`` for JSON."""
        return {"labels": deep_features.label_dicts(signal.labels),
                "palette": colour_features.to_json(signal.palette)}

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: list[int], signals: list[DeepSignal]) -> None:
        """Store signals (replacing any for the same ids); durable once this returns."""
        if len(ids) != len(signals):
            raise ValueError("ids and signals differ in length")
        rows = [(int(i), np.asarray(s.embedding, np.float32).tobytes(),
                 json.dumps([[int(c), float(p)] for c, p in s.labels]),
                 np.asarray(s.palette, np.float32).tobytes()) for i, s in zip(ids, signals)]
        labels = [(int(c), int(i), float(p)) for i, s in zip(ids, signals) for c, p in s.labels]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM labels WHERE id=?", [(r[0],) for r in rows])
            self._db.executemany("INSERT OR REPLACE INTO signals VALUES (?,?,?,?)", rows)
            self._db.executemany("INSERT OR REPLACE INTO labels VALUES (?,?,?)", labels)
            _store.log_changes(self._db, [(r[0],) for r in rows])
        if self._index is not None:
            self._sync()

    def remove(self, ids: list[int]) -> None:
        """Forget these images (ids not stored are ignored)."""
        keys = [(int(i),) for i in ids]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM signals WHERE id=?", keys)
            self._db.executemany("DELETE FROM labels WHERE id=?", keys)
            _store.log_changes(self._db, keys)
        if self._index is not None:
            self._sync()

    # -- the index, kept in step with the SQLite file ------------------------------------------

    def _rows(self, ids) -> tuple[np.ndarray, np.ndarray]:
        found_ids, vectors = [], []
        ids = [int(i) for i in ids]
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, blob in self._db.execute(
                    f"SELECT id, embedding FROM signals WHERE id IN ({marks})", chunk):
                found_ids.append(key)
                vectors.append(np.frombuffer(blob, np.float32))
        return (np.asarray(found_ids, np.int64),
                np.array(vectors, np.float32).reshape(-1, DIM))

    def _rebuild(self) -> None:
        from .._index.faiss_dense import DenseIndex

        position = _store.position(self._db)
        index = DenseIndex(DIM)
        batch_ids, batch = [], []
        for key, blob in self._db.execute("SELECT id, embedding FROM signals"):
            batch_ids.append(key)
            batch.append(np.frombuffer(blob, np.float32))
            if len(batch) == 50_000:
                index.add(np.asarray(batch_ids), np.array(batch))
                batch_ids, batch = [], []
        if batch:
            index.add(np.asarray(batch_ids), np.array(batch))
        self._index, self._seq, self._saved_seq = index, position, -1
        logger.info("deep stage: rebuilt the dense index from %d stored signals", len(index))

    def _load(self) -> None:
        from .._index.faiss_dense import DenseIndex

        try:
            state = json.loads(self._state_path.read_text())
            if state.get("descriptor") != DESCRIPTOR:
                raise ValueError("descriptor changed")
            if int(state["seq"]) > _store.position(self._db):
                raise ValueError("checkpoint is newer than deep.sqlite")
            self._index = DenseIndex.load(self._index_path)
            self._seq = self._saved_seq = int(state["seq"])
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            logger.info("deep stage: no usable index checkpoint (%s); rebuilding", error)
            self._rebuild()
            return
        self._sync()

    def _sync(self) -> None:
        """Apply commits made since the in-memory index was last brought up to date."""
        if self._index is None:
            self._load()
            return
        position = _store.position(self._db)
        if position == self._seq:
            return
        touched = _store.changed_since(self._db, self._seq, position)
        if touched is None:
            # the log was pruned past us by a checkpoint from another process: start again
            self._index = None
            self._load()
            return
        self._index.remove(np.asarray(touched, np.int64))
        ids, vectors = self._rows(touched)
        self._index.add(ids, vectors)
        self._seq = position

    # -- queries ---------------------------------------------------------------------------

    def search(
        self,
        signal: DeepSignal,
        k: int,
        *,
        candidates: list[int] | None = None,
        label: str | None = None,
        colour: str | None = None,
        min_score: float = 0.0,
    ) -> list[dict]:
        """The ``k`` most similar indexed images.

        Parameters
        ----------
        signal : DeepSignal
            The query's signal (from :meth:`compute`).
        k : int
        candidates : list of int, optional
            Only these ids may be returned.
        label : str, optional
            Keep images whose stored top-5 labels put at least 0.2 of their probability on the
            classes this text stands for (see :func:`label_classes`).
        colour : str, optional
            A colour name or ``#rrggbb``: keep images with at least 10 % of it (see
            ``colour.presence``); each hit then carries ``colour_match``.
        min_score : float
            Drop hits scoring below this.

        Returns
        -------
        list of dict
            ``{"id", "kind": "similar", "score", "similarity", "labels", "palette"}``
            (+ ``"colour_match"``), best first.
        """
        wanted = colour_features.parse_colour(colour) if colour else None
        with self._lock:
            self._sync()
            allowed = None if candidates is None else np.asarray(candidates, np.int64)
            if label:
                classes = sorted(label_classes(label))
                matching = self._label_matches(classes)
                allowed = matching if allowed is None else np.intersect1d(allowed, matching)
            pool = k if wanted is None else max(k, _COLOUR_POOL)
            similarities, ids = self._index.search(
                np.asarray(signal.embedding, np.float32)[None], pool, allowed=allowed)
            keep = ids[0] >= 0
            similarities, ids = similarities[0][keep], ids[0][keep]
            details = self._details([int(i) for i in ids])
        scores = calibrated(similarities)
        hits = []
        for key, similarity, score in zip(ids, similarities, scores):
            if score < min_score or int(key) not in details:
                continue
            labels, palette = details[int(key)]
            hit = {"id": int(key), "kind": "similar", "score": round(float(score), 4),
                   "similarity": round(float(similarity), 4),
                   "labels": deep_features.label_dicts(labels),
                   "palette": colour_features.to_json(palette)}
            if wanted is not None:
                presence = colour_features.presence(palette, wanted)
                if presence < COLOUR_MIN_PRESENCE:
                    continue
                hit["colour_match"] = round(presence, 3)
            hits.append(hit)
            if len(hits) == k:
                break
        return hits

    def _label_matches(self, classes: list[int]) -> np.ndarray:
        if not classes:
            return np.zeros(0, np.int64)
        marks = ",".join("?" * len(classes))
        rows = self._db.execute(
            f"SELECT id FROM labels WHERE class IN ({marks}) GROUP BY id HAVING SUM(p) >= ?",
            [*classes, LABEL_MIN_MASS])
        return np.fromiter((row[0] for row in rows), np.int64)

    def _details(self, ids: list[int]) -> dict[int, tuple]:
        out = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, labels, palette in self._db.execute(
                    f"SELECT id, labels, palette FROM signals WHERE id IN ({marks})", chunk):
                out[key] = (tuple((int(c), float(p)) for c, p in json.loads(labels)),
                            np.frombuffer(palette, np.float32).reshape(-1, 4))
        return out

    def details(self, ids: list[int]) -> dict[int, dict]:
        """Stored labels and palette of these images: ``{id: {"labels": ..., "palette": ...}}``.

        For decorating matches of other kinds (copies) and ``Engine.info``; unknown ids are absent.
        """
        with self._lock:
            found = self._details([int(i) for i in ids])
        return {key: {"labels": deep_features.label_dicts(labels),
                      "palette": colour_features.to_json(palette)}
                for key, (labels, palette) in found.items()}

    # -- lifecycle -------------------------------------------------------------------------

    def save(self) -> None:
        """Checkpoint the dense index and prune the change log it covers (cheap if unchanged)."""
        with self._lock:
            if self._index is None:
                return
            self._sync()
            if self._saved_seq == self._seq:
                return
            self._index.save(self._index_path)
            _store.write_checkpoint(self._db, self._state_path,
                                    {"seq": self._seq, "descriptor": DESCRIPTOR})
            self._saved_seq = self._seq

    def close(self) -> None:
        """Checkpoint and close the SQLite file."""
        with self._lock:
            if self._db is None:
                return
            self.save()
            self._db.close()
            self._db = None

    def ids(self) -> set[int]:
        """Every image id this stage holds a signal for (to find images it lacks)."""
        with self._lock:
            return {int(row[0]) for row in self._db.execute("SELECT id FROM signals")}

    def stats(self) -> dict:
        """Counts and sizes: images, index layout, bytes on disk and in RAM."""
        with self._lock:
            images = self._db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
            on_disk = sum(path.stat().st_size for path in self.folder.glob("deep.*")
                          if path.is_file())
            return {
                "images": int(images),
                "index": self._index.kind if self._index is not None else "not loaded",
                "descriptor": DESCRIPTOR,
                "bytes_on_disk": int(on_disk),
                "bytes_in_ram": int(self._index.memory_bytes()) if self._index is not None else 0,
            }

    def __enter__(self) -> "DeepStage":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

