"""An in-memory binary index: brute force in NumPy. For tests and as a reference for backends."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import BinaryIndex

__all__ = ["MemoryBinaryIndex"]

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint16)


class MemoryBinaryIndex(BinaryIndex):
    """A dict of id -> code, searched exhaustively."""

    def __init__(self, bits: int) -> None:
        super().__init__(bits)
        self._codes: dict[int, np.ndarray] = {}

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        for i, code in zip(np.asarray(ids).tolist(), np.asarray(codes, dtype=np.uint8)):
            self._codes[int(i)] = code.copy()

    def remove(self, ids: np.ndarray) -> int:
        return sum(self._codes.pop(int(i), None) is not None for i in np.asarray(ids).tolist())

    def search(self, codes: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
        if not self._codes:
            return []
        ids = np.fromiter(self._codes, dtype=np.int64)
        stored = np.stack(list(self._codes.values()))
        hits = []
        for row, code in enumerate(np.asarray(codes, dtype=np.uint8)):
            distances = _POPCOUNT[np.bitwise_xor(stored, code)].sum(axis=1)
            for j in np.flatnonzero(distances <= radius):
                hits.append((row, int(ids[j]), int(distances[j])))
        return hits

    def __len__(self) -> int:
        return len(self._codes)

    def save(self, path: Path) -> None:
        ids = np.fromiter(self._codes, dtype=np.int64)
        codes = (
            np.stack(list(self._codes.values()))
            if self._codes
            else np.empty((0, self.bits // 8), np.uint8)
        )
        tmp = Path(path).with_suffix(".tmp.npz")
        np.savez(tmp, ids=ids, codes=codes)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, bits: int) -> "MemoryBinaryIndex":
        index = cls(bits)
        with np.load(path) as saved:
            index.add(saved["ids"], saved["codes"])
        return index
