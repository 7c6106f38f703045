"""Exact copies: the same bytes, or the same decoded pixels (a JPEG with its EXIF stripped)."""

from __future__ import annotations

from .base import Ask, Hit

__all__ = ["ExactStep"]


class ExactStep:
    name = "exact"

    def __init__(self, catalog) -> None:
        self.catalog = catalog

    def prepare(self, query) -> None:
        pass  # cheap, or needed only sometimes

    def applies(self, ask: Ask) -> bool:
        return True

    def run(self, query, found, ask: Ask) -> list[Hit]:
        ids = set(self.catalog.find_by_pixel_sha256(query.pixel_sha256))
        by_bytes = self.catalog.find_by_sha256(query.sha256)
        if by_bytes is not None:
            ids.add(by_bytes)
        return [Hit(i, "exact", 1.0, distance=0, orientation="identity") for i in sorted(ids)]
