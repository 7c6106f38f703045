"""The result objects every surface (library, CLI, HTTP) renders: Match, SearchResult, IndexReport."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["KINDS", "COPY_KINDS", "IndexReport", "Match", "SearchResult"]

KINDS = ("exact", "near_duplicate", "partial", "similar")
"""Every kind of match, strongest first."""

COPY_KINDS = frozenset({"exact", "near_duplicate", "partial"})
"""The kinds that claim the matched image is a copy of (part of) the query."""


@dataclass
class Match:
    """One indexed image that matches a query.

    ``extra`` carries what a stage adds (boxes, transform, labels, pages, ...); ``to_dict``
    flattens it beside the fixed fields.
    """

    id: int
    kind: str
    score: float
    uri: str | None
    uris: list[str]
    width: int
    height: int
    format: str
    larger_than_query: bool
    orientation: str | None = None
    distance: int | None = None
    creator: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "uri": self.uri,
            "uris": self.uris,
            "kind": self.kind,
            "score": round(float(self.score), 4),
            "orientation": self.orientation,
            "distance": self.distance,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "larger_than_query": self.larger_than_query,
            "creator": self.creator,
            "metadata": self.metadata,
        }
        out.update(self.extra)
        return out


@dataclass
class SearchResult:
    """Everything a search found for one query, best match first."""

    query: str
    matches: list[Match]
    elapsed_ms: float
    width: int | None = None
    height: int | None = None
    stages: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def copies(self) -> list[Match]:
        """Matches that are copies (exact, near-duplicate or partial)."""
        return [m for m in self.matches if m.kind in COPY_KINDS]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "query": self.query,
            "width": self.width,
            "height": self.height,
            "matches": [m.to_dict() for m in self.matches],
            "stages": self.stages,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }
        out.update(self.extra)
        return out


@dataclass
class IndexReport:
    """What an ``index`` run did: counts, and every failure with its reason."""

    indexed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "skipped": self.skipped,
            "failed": [{"source": s, "reason": r} for s, r in self.failed],
            "seconds": round(self.seconds, 3),
        }
