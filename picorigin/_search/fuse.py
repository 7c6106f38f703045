"""Fusion: one hit per image, the strongest kind winning, evidence kept.

A hit for an image already found replaces it when its kind is stronger (a ``similar`` image the
re-check verified becomes ``partial``), keeping the decorations the weaker hit carried (labels,
palette); otherwise it only adds the facts the found hit lacks (the boxes the local stage
measured explain a fingerprint match). An annotation (kind None) adds facts to a found image;
a drop removes the image and keeps it out.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from .._models import COPY_KINDS, KINDS
from .base import Hit

__all__ = ["Found"]

DECORATIONS = ("labels", "palette", "colour_match")


class Found:
    """The images a search found so far, by id."""

    def __init__(self) -> None:
        self._hits: dict[int, Hit] = {}
        self._dropped: set[int] = set()

    def merge(self, hits: Iterable[Hit]) -> None:
        for hit in hits:
            if hit.drop:
                self._hits.pop(hit.id, None)
                self._dropped.add(hit.id)
                continue
            if hit.id in self._dropped:
                continue
            old = self._hits.get(hit.id)
            if hit.kind is None:
                if old is not None:
                    old.extra.update(hit.extra)
            elif old is None:
                self._hits[hit.id] = hit
            elif KINDS.index(hit.kind) < KINDS.index(old.kind):
                for key in DECORATIONS:
                    if key in old.extra:
                        hit.extra.setdefault(key, old.extra[key])
                self._hits[hit.id] = hit
            else:
                for key, value in hit.extra.items():
                    old.extra.setdefault(key, value)

    def __contains__(self, image_id: object) -> bool:
        return image_id in self._hits

    def __iter__(self) -> Iterator[int]:
        return iter(self._hits)

    def __len__(self) -> int:
        return len(self._hits)

    def get(self, image_id: int) -> Hit | None:
        return self._hits.get(image_id)

    def hits(self) -> list[Hit]:
        return list(self._hits.values())

    def has_copy(self) -> bool:
        return any(hit.kind in COPY_KINDS for hit in self._hits.values())
