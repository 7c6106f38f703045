"""The interface every binary-code index backend implements.

A backend maps integer ids to fixed-length packed binary codes and answers radius queries in
Hamming distance. The catalog, not the backend, is the source of truth: a backend may lag behind
it after a crash and is then rebuilt from the codes stored there, so ``save`` is a checkpoint,
not a commit.
"""

from __future__ import annotations

import abc
from pathlib import Path

import numpy as np

__all__ = ["BinaryIndex"]


class BinaryIndex(abc.ABC):
    """Radius search over packed binary codes, with incremental add and remove.

    Parameters
    ----------
    bits : int
        Code length in bits, a multiple of 8.
    """

    def __init__(self, bits: int) -> None:
        if bits % 8:
            raise ValueError("bits must be a multiple of 8")
        self.bits = bits

    @abc.abstractmethod
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add codes.

        Parameters
        ----------
        ids : ndarray of int64, shape (n,)
        codes : ndarray of uint8, shape (n, bits // 8)
        """

    @abc.abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Remove every code with one of these ids; return how many were removed."""

    @abc.abstractmethod
    def search(self, codes: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
        """Every stored code within ``radius`` of a query code.

        Parameters
        ----------
        codes : ndarray of uint8, shape (q, bits // 8)
        radius : int
            Largest Hamming distance returned (inclusive).

        Returns
        -------
        list of (query_row, id, distance)
        """

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of stored codes."""

    @abc.abstractmethod
    def save(self, path: Path) -> None:
        """Write the index to ``path`` atomically."""

    @classmethod
    @abc.abstractmethod
    def load(cls, path: Path, bits: int) -> "BinaryIndex":
        """Read an index written by ``save``."""

    def memory_bytes(self) -> int:
        """Approximate bytes held in RAM."""
        return len(self) * (self.bits // 8 + 8)
