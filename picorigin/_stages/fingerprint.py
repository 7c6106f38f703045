"""The fingerprint stage: 256-bit DCT-sign codes in a FAISS binary index (always on), or in a
Milvus collection with the setting ``index`` (``picorigin._index.milvus``).

See ``picorigin._features.fingerprint`` for the code and its canonical orientation; the
orientation is a column of the image's record, the code a signal like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._features import fingerprint
from .._index.faiss_binary import FaissBinaryIndex
from .base import Stage

__all__ = ["FingerprintStage"]


class _Index:
    """The derived index: FAISS flat binary with an id map."""

    def __init__(self, index: FaissBinaryIndex) -> None:
        self.faiss = index

    def update(self, removed: list[int], added: list[tuple[int, np.ndarray]]) -> None:
        if removed:
            self.faiss.remove(np.asarray(removed, np.int64))
        if added:
            self.faiss.add(np.asarray([i for i, _ in added], np.int64),
                           np.stack([code for _, code in added]))

    def save(self, path: Path) -> None:
        self.faiss.save(path)

    def ids(self) -> set[int]:
        return {int(i) for i in self.faiss.ids()}

    def __len__(self) -> int:
        return len(self.faiss)

    def search(self, codes: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
        return self.faiss.search(codes, radius)

    def memory_bytes(self) -> int:
        return self.faiss.memory_bytes()

    @property
    def backend(self) -> str:
        return type(self.faiss).__name__


class FingerprintStage(Stage):
    """Exact Hamming radius search over every image's fingerprint."""

    name = "fingerprint"
    working_side = 128  # a JPEG decodes at 1/8 scale when that leaves this much
    query_side = 128

    @classmethod
    def compute(cls, image: Any, full_size: tuple[int, int] | None = None, *,
                query: bool = False) -> fingerprint.Fingerprint:
        return fingerprint.compute(image)

    def encode(self, signal: fingerprint.Fingerprint) -> bytes:
        return np.asarray(signal.code, np.uint8).tobytes()

    def decode(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, np.uint8)

    def new_index(self) -> _Index:
        return _Index(FaissBinaryIndex(fingerprint.BITS))

    def load_index(self, path: Path) -> _Index:
        return _Index(FaissBinaryIndex.load(path, fingerprint.BITS))

    def shared_index(self, connection) -> Any:
        from .._index.milvus import MilvusBinaryIndex, parse_index_spec

        spec = parse_index_spec(self.settings.milvus_binary_index, "milvus_binary_index",
                                lite=connection.target.lite)
        return MilvusBinaryIndex(fingerprint.BITS, connection, self.name, spec)

    def index_meta(self) -> dict[str, Any]:
        return {"bits": fingerprint.BITS}

    def search(self, codes: np.ndarray, radius: int,
               position: int | None = None) -> list[tuple[int, int, int]]:
        """``(probe row, id, distance)`` of every code within ``radius`` bits of a probe."""
        if not len(codes):
            return []
        with self.store.reading(position) as index:
            return index.search(codes, radius)

    def stats(self) -> dict[str, Any]:
        with self.store.reading() as index:
            memory, backend = index.memory_bytes(), index.backend
        return {**super().stats(), "backend": backend, "memory_bytes": memory}
