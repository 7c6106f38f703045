"""The watch index: every watched picture's signals, in memory, matched against a new image.

Watched pictures live in their own small index, so checking a new image costs at most one
search's worth of work whatever the size of the collection: a dictionary lookup by SHA-256
(``exact``), a FAISS Hamming range search over their fingerprints (``near_duplicate``), and,
for crops and paste-ins, a tf-idf shortlist of their local features verified geometrically
like a search's candidates (``partial``, with boxes in both images).

The roles are a search's turned round: a watched picture is the query (its features are
computed as a query's, 800 px and its mirror image too) and the new image is the candidate,
so ``query_box`` is where the match lies in the watched picture and ``match_box`` where it
lies in the copy. Each watched picture's fingerprint is stored in all eight orientations: a
new image's one stored canonical code then meets the right one whatever the copy's rotation
or mirror, without the near-tie probing a search needs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import _verify
from .._features import fingerprint
from .._features.local import LocalFeatures

__all__ = ["WatchHit", "WatchIndex", "pack_fingerprints", "pack_local", "unpack_local"]

SHORTLIST = 10  # watched pictures verified for a new image as it is ...
SHORTLIST_MIRROR = 4  # ... and for their mirror images
RECHECK_FROM = 8  # cell matching at or above this (and below 2 x the bar) is redone exhaustively
_ORIENTATIONS = len(fingerprint.ORIENTATIONS)
_COUNT = struct.Struct("<I")
_SIZE = struct.Struct("<II")


def pack_fingerprints(coeffs: np.ndarray) -> bytes:
    """The packed code of a picture's DCT coefficients in each of the eight orientations."""
    return b"".join(fingerprint.pack(fingerprint.transform(coeffs, g)).tobytes()
                    for g in fingerprint.ORIENTATIONS)


def pack_local(features: LocalFeatures, words: np.ndarray, mirror_words: np.ndarray,
               vocabulary: str) -> bytes:
    """A watched picture's query features (and its mirror image's) with their visual words."""
    parts = [_SIZE.pack(*map(int, features.size)), _COUNT.pack(len(vocabulary.encode())),
             vocabulary.encode()]
    mirrored = features.mirrored or LocalFeatures(np.zeros((0, 2), np.float32),
                                                  np.zeros((0, 32), np.uint8), features.size)
    for side, side_words in ((features, words), (mirrored, mirror_words)):
        n = len(side.descriptors)
        parts += [_COUNT.pack(n), np.ascontiguousarray(side.points, np.float32).tobytes(),
                  np.ascontiguousarray(side.descriptors, np.uint8).tobytes(),
                  np.ascontiguousarray(side_words, np.uint32).tobytes()]
    return b"".join(parts)


def unpack_local(data: bytes) -> tuple[LocalFeatures, np.ndarray, np.ndarray, str]:
    """``(features with .mirrored, words, mirror words, vocabulary digest)``."""
    width, height = _SIZE.unpack_from(data)
    at = _SIZE.size
    (length,) = _COUNT.unpack_from(data, at)
    at += _COUNT.size
    vocabulary = data[at:at + length].decode()
    at += length
    sides = []
    for _ in range(2):
        (n,) = _COUNT.unpack_from(data, at)
        at += _COUNT.size
        points = np.frombuffer(data, np.float32, 2 * n, at).reshape(n, 2)
        at += 8 * n
        descriptors = np.frombuffer(data, np.uint8, 32 * n, at).reshape(n, 32)
        at += 32 * n
        words = np.frombuffer(data, np.uint32, n, at)
        at += 4 * n
        sides.append((points, descriptors, words))
    (points, descriptors, words), (m_points, m_descriptors, m_words) = sides
    mirrored = LocalFeatures(m_points, m_descriptors, (width, height), flipped=True)
    features = LocalFeatures(points, descriptors, (width, height), mirrored=mirrored)
    return features, words, m_words, vocabulary


@dataclass
class WatchHit:
    """A watched picture that a new image copies."""

    picture_id: int
    watch_id: int
    kind: str
    score: float
    details: dict[str, Any] = field(default_factory=dict)


class WatchIndex:
    """Every watched picture's signals, searchable by a new image's stored signals.

    Parameters
    ----------
    pictures : list of dict
        ``Catalog.watch_pictures()``.
    local_stage : LocalStage or None
        For the vocabulary (words and matching cells); None leaves partial copies out.
    """

    def __init__(self, pictures: list[dict[str, Any]], local_stage: Any = None) -> None:
        from .._index.faiss_binary import FaissBinaryIndex
        from .._index.inverted import InvertedFile

        self.local_stage = local_stage
        self.watch_of: dict[int, int] = {}
        self.sha256: dict[str, list[int]] = {}
        self.pixel_sha256: dict[str, list[int]] = {}
        self.faiss = FaissBinaryIndex(fingerprint.BITS)
        self.local: dict[int, tuple[LocalFeatures, np.ndarray, np.ndarray]] = {}
        self.inverted = None
        ids, codes = [], []
        for picture in pictures:
            pid = int(picture["id"])
            self.watch_of[pid] = int(picture["watch_id"])
            self.sha256.setdefault(picture["sha256"], []).append(pid)
            self.pixel_sha256.setdefault(picture["pixel_sha256"], []).append(pid)
            ids.extend(pid * _ORIENTATIONS + g for g in range(_ORIENTATIONS))
            codes.append(np.frombuffer(picture["fingerprint"], np.uint8).reshape(-1, 32))
        if ids:
            self.faiss.add(np.asarray(ids, np.int64), np.concatenate(codes))
        if local_stage is not None:
            vocabulary = local_stage.vocabulary
            self.inverted = InvertedFile(vocabulary.idf)
            digest = vocabulary.digest()
            for picture in pictures:
                if picture.get("local") is None:
                    continue
                features, words, mirror_words, used = unpack_local(picture["local"])
                if used != digest:  # the collection's vocabulary was retrained since
                    words = local_stage._words(features.descriptors)
                    mirror_words = local_stage._words(features.mirrored.descriptors)
                pid = int(picture["id"])
                self.local[pid] = (features, words, mirror_words)
                self.inverted.add(2 * pid, words)
                self.inverted.add(2 * pid + 1, mirror_words)

    def __len__(self) -> int:
        return len(self.watch_of)

    def match(self, record: dict[str, Any], code: np.ndarray | None,
              local: tuple[LocalFeatures, np.ndarray] | None, radius: int) -> list[WatchHit]:
        """The watched pictures a new image copies, each once, the strongest kind winning.

        Parameters
        ----------
        record : dict
            The image's catalog record (``sha256``, ``pixel_sha256``, ``orientation``).
        code : numpy.ndarray or None
            Its stored canonical fingerprint (32 bytes).
        local : (LocalFeatures, words) or None
            Its stored local features.
        radius : int
            ``near_duplicate_distance``.
        """
        hits: dict[int, WatchHit] = {}
        for pid in {*self.sha256.get(record["sha256"], ()),
                    *self.pixel_sha256.get(record["pixel_sha256"], ())}:
            hits[pid] = WatchHit(pid, self.watch_of[pid], "exact", 1.0,
                                 {"distance": 0, "orientation": "identity"})
        if code is not None and len(self.faiss):
            best: dict[int, tuple[int, int]] = {}
            for _, key, distance in self.faiss.search(code.reshape(1, -1), radius):
                pid, g = divmod(key, _ORIENTATIONS)
                if pid not in best or distance < best[pid][0]:
                    best[pid] = (distance, g)
            for pid, (distance, g) in best.items():
                if pid in hits:
                    continue
                # The watched picture turned by g, and the copy by its stored orientation,
                # reach the same code: the copy shows the picture as stored^-1 . g.
                element = fingerprint.compose(
                    g_of(g), fingerprint.inverse(fingerprint.ORIENTATIONS[record["orientation"]]))
                hits[pid] = WatchHit(pid, self.watch_of[pid], "near_duplicate",
                                     fingerprint.similarity(distance),
                                     {"distance": distance,
                                      "orientation": fingerprint.orientation_name(element)})
        if local is not None and self.inverted is not None and len(self.inverted):
            for pid, described in self._verified(local, exclude=set(hits)).items():
                kind, score = described.pop("kind"), described.pop("score")
                hits[pid] = WatchHit(pid, self.watch_of[pid], kind, score, described)
        return sorted(hits.values(), key=lambda h: h.picture_id)

    def _verified(self, local: tuple[LocalFeatures, np.ndarray],
                  exclude: set[int]) -> dict[int, dict[str, Any]]:
        stage = self.local_stage
        features, words = local
        keys, _ = self.inverted.query(np.asarray(words), SHORTLIST + SHORTLIST_MIRROR)
        direct: list[int] = []
        flipped: list[int] = []
        for key in keys.tolist():
            pid, mirrored = divmod(int(key), 2)
            chosen = flipped if mirrored else direct
            if pid not in exclude and len(chosen) < (SHORTLIST_MIRROR if mirrored else SHORTLIST):
                chosen.append(pid)
        match_cells = stage._cells(words)
        out = {}
        for pid in dict.fromkeys(direct + flipped):
            watched, watched_words, mirror_words = self.local[pid]
            result, _ = _verify.verify_candidate(
                watched, features, query_cells=stage._cells(watched_words),
                mirrored_cells=stage._cells(mirror_words), match_cells=match_cells,
                recheck_from=RECHECK_FROM, direct=pid in direct, mirror=pid in flipped)
            if result is not None:
                out[pid] = _verify.describe(result, watched.size, features.size)
        return out


def g_of(index: int) -> Any:
    """The dihedral element stored at position ``index`` of a packed fingerprint."""
    return fingerprint.ORIENTATIONS[index]
