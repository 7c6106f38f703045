"""The deep stage: visually similar images, a best guess of what an image shows, its colours.

Signals (:class:`DeepSignal`, computed anywhere by :meth:`DeepStage.compute_batch`): a 256-d
EfficientNet-Lite0 descriptor (``picorigin._features.deep``), the top-5 ImageNet labels with
probabilities, and a colour palette (``picorigin._features.colour``). Stored in the catalog,
the labels also as terms (for ``--label``); the derived index is a FAISS dense index
(``picorigin._index.faiss_dense``), or a Milvus collection with the setting ``index``.

Scores: a ``similar`` hit's ``score`` is ``1 / (1 + exp(-slope * (cosine - midpoint)))``, a fixed
function fitted on same-kind vs different-kind photo pairs of ``bench/similar.py`` with the two
classes weighted equally (so it does not depend on how many kinds a collection holds). It reads
as the probability that the two images show the same kind of thing; 0.5 is the even point. The
raw cosine is returned too, as ``similarity``.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .._features import colour as colour_features
from .._features import deep as deep_features
from .._store.migrate import import_stage_file
from .base import Stage

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


_LABEL = np.dtype([("class", "<u2"), ("p", "<f4")])
_HEADER = struct.Struct("<HH")  # labels, palette colours


class _Index:
    """The derived index: FAISS (flat, then IVF with 8-bit codes as it grows)."""

    def __init__(self, dense) -> None:
        self.dense = dense

    def update(self, removed: list[int], added: list[tuple[int, np.ndarray]]) -> None:
        if removed:
            self.dense.remove(np.asarray(removed, np.int64))
        if added:
            self.dense.add(np.asarray([i for i, _ in added], np.int64),
                           np.stack([v for _, v in added]).astype(np.float32))

    def save(self, path: Path) -> None:
        self.dense.save(path)

    def ids(self) -> set[int]:
        return {int(i) for i in self.dense.items()[0]}

    def __len__(self) -> int:
        return len(self.dense)

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None):
        return self.dense.search(queries, k, allowed=allowed)

    @property
    def kind(self) -> str:
        return self.dense.kind

    def memory_bytes(self) -> int:
        return self.dense.memory_bytes()


class DeepStage(Stage):
    """The ``similar`` kind, labels and palettes. See the module docstring."""

    name = "deep"
    # the decoded image this stage wants (longer side): the network sees 224 x 224, and
    # decoding larger bought nothing (bench mAP@10 0.627, 0.619, 0.619, 0.620 at 224, 256,
    # 320, 448) while costing decode time (JPEG draft at 1/4 instead of 1/8 scale)
    working_side = 224
    query_side = 224

    def __init__(self, catalog, folder: Path, settings) -> None:
        super().__init__(catalog, folder, settings)
        stored = catalog.get_meta("deep.descriptor")
        if stored is None:
            catalog.set_meta("deep.descriptor", DESCRIPTOR)
        elif stored != DESCRIPTOR:
            logger.warning("the catalog holds %s descriptors, this version computes %s: "
                           "re-index for meaningful similar results", stored, DESCRIPTOR)
        import_stage_file(self, self.folder / "deep.sqlite",
                          "SELECT id, embedding, labels, palette FROM signals", _legacy_signal)

    # -- computing signals (pure; any process) -------------------------------------------------

    @classmethod
    def check(cls) -> None:
        """Make sure the model is usable here, exporting it once if needed.

        Call once in the parent before starting workers, so that they do not each export it.

        Raises
        ------
        StageUnavailable
        """
        deep_features.ensure_model()

    @classmethod
    def compute(cls, image, full_size: tuple[int, int] | None = None, *,
                query: bool = False) -> DeepSignal:
        """The signal of one image (PIL, RGB); raises StageUnavailable without the model."""
        return cls.compute_batch([image], [full_size or image.size])[0]

    @classmethod
    def compute_batch(cls, images: list, sizes: list | None = None) -> list[DeepSignal]:
        """:meth:`compute` for several images with one network call (cheaper per image)."""
        features = deep_features.compute_batch(images)
        return [DeepSignal(f.embedding, f.labels, colour_features.compute(image))
                for f, image in zip(features, images)]

    @staticmethod
    def describe(signal: DeepSignal) -> dict:
        """``{"labels": [{"name", "p"}, ...], "palette": [{"hex", "share"}, ...]}`` for JSON."""
        return {"labels": deep_features.label_dicts(signal.labels),
                "palette": colour_features.to_json(signal.palette)}

    # -- stored form -----------------------------------------------------------------------------

    def encode(self, signal: DeepSignal) -> bytes:
        labels = np.array([(int(c), float(p)) for c, p in signal.labels], _LABEL)
        palette = np.asarray(signal.palette, np.float32).reshape(-1, 4)
        return b"".join([_HEADER.pack(len(labels), len(palette)),
                         np.asarray(signal.embedding, np.float32).reshape(DIM).tobytes(),
                         labels.tobytes(), palette.tobytes()])

    def decode(self, data: bytes) -> DeepSignal:
        n_labels, n_colours = _HEADER.unpack_from(data)
        at = _HEADER.size
        embedding = np.frombuffer(data, np.float32, DIM, at)
        at += 4 * DIM
        labels = np.frombuffer(data, _LABEL, n_labels, at)
        at += _LABEL.itemsize * n_labels
        palette = np.frombuffer(data, np.float32, 4 * n_colours, at).reshape(n_colours, 4)
        return DeepSignal(embedding, tuple((int(c), float(p)) for c, p in labels), palette)

    def terms(self, signal: DeepSignal) -> list[tuple[int, float]]:
        return [(int(c), float(p)) for c, p in signal.labels]

    def index_entry(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, np.float32, DIM, _HEADER.size)

    def new_index(self) -> _Index:
        from .._index.faiss_dense import DenseIndex

        return _Index(DenseIndex(DIM))

    def load_index(self, path: Path) -> _Index:
        from .._index.faiss_dense import DenseIndex

        return _Index(DenseIndex.load(path))

    def shared_index(self, connection) -> Any:
        from .._index.milvus import MilvusDenseIndex, parse_index_spec

        spec = parse_index_spec(self.settings.milvus_dense_index, "milvus_dense_index",
                                lite=connection.target.lite)
        return MilvusDenseIndex(DIM, connection, self.name, spec)

    def index_meta(self) -> dict[str, Any]:
        return {"descriptor": DESCRIPTOR}

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
        position: int | None = None,
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
        position : int, optional
            The change-log position to catch up to (default: the log's end).

        Returns
        -------
        list of dict
            ``{"id", "kind": "similar", "score", "similarity", "labels", "palette"}``
            (+ ``"colour_match"``), best first.
        """
        wanted = colour_features.parse_colour(colour) if colour else None
        allowed = None if candidates is None else np.asarray(candidates, np.int64)
        if label:
            matching = np.asarray(self.catalog.ids_with_terms(
                self.name, label_classes(label), LABEL_MIN_MASS), np.int64)
            allowed = matching if allowed is None else np.intersect1d(allowed, matching)
        pool = k if wanted is None else max(k, _COLOUR_POOL)
        with self.store.reading(position) as index:
            similarities, ids = index.search(
                np.asarray(signal.embedding, np.float32)[None], pool, allowed=allowed)
        keep = ids[0] >= 0
        similarities, ids = similarities[0][keep], ids[0][keep]
        details = self.stored([int(i) for i in ids])
        scores = calibrated(similarities)
        hits = []
        for key, similarity, score in zip(ids, similarities, scores):
            if score < min_score or int(key) not in details:
                continue
            stored = details[int(key)]
            hit = {"id": int(key), "kind": "similar", "score": round(float(score), 4),
                   "similarity": round(float(similarity), 4), **self.describe(stored)}
            if wanted is not None:
                presence = colour_features.presence(stored.palette, wanted)
                if presence < COLOUR_MIN_PRESENCE:
                    continue
                hit["colour_match"] = round(presence, 3)
            hits.append(hit)
            if len(hits) == k:
                break
        return hits

    def details(self, ids: list[int]) -> dict[int, dict]:
        """Stored labels and palette of these images: ``{id: {"labels": ..., "palette": ...}}``.

        For decorating matches of other kinds (copies) and ``Engine.info``; unknown ids are absent.
        """
        return {key: self.describe(signal) for key, signal in self.stored(ids).items()}

    def stats(self) -> dict:
        """Counts and sizes: images, index layout, bytes in RAM."""
        with self.store.reading() as index:
            kind, memory = index.kind, int(index.memory_bytes())
        return {**super().stats(), "index": kind, "descriptor": DESCRIPTOR,
                "bytes_in_ram": memory}


def _legacy_signal(row: tuple) -> tuple[int, DeepSignal]:
    key, embedding, labels, palette = row
    return key, DeepSignal(np.frombuffer(embedding, np.float32),
                           tuple((int(c), float(p)) for c, p in json.loads(labels)),
                           np.frombuffer(palette, np.float32).reshape(-1, 4))
