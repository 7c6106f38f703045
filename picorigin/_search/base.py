"""The types every search step shares: what is asked (``Ask``), what is found (``Hit``), and
the step protocol (``Step``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from .._query import Query
    from .fuse import Found

__all__ = ["Ask", "Hit", "Step"]

COPY_FINDING = frozenset({"exact", "near_duplicate", "partial"})


@dataclass(frozen=True)
class Ask:
    """What a search asks for.

    Attributes
    ----------
    k : int
        Most matches returned.
    kinds : frozenset of str
        The kinds wanted.
    label, colour : str or None
        Filters on the deep stage's labels and palette.
    fast : bool
        Fingerprint only (exact and near-duplicate copies).
    position : int
        The catalog's change-log position every index catches up to for this search.
    settings : Settings
    """

    k: int
    kinds: frozenset[str]
    label: str | None
    colour: str | None
    fast: bool
    position: int
    settings: Any

    @property
    def copies_wanted(self) -> bool:
        """Near-duplicates or partial copies are wanted (what the heavier steps find)."""
        return bool(self.kinds & {"partial", "near_duplicate"})


@dataclass
class Hit:
    """One indexed image a step found (or, with ``kind`` None, facts about one found earlier).

    Attributes
    ----------
    id : int
    kind : str or None
        ``exact``, ``near_duplicate``, ``partial``, ``similar``; None annotates an image
        already found (labels, palette) without claiming anything.
    score : float
    distance : int or None
        Fingerprint distance in bits, where a fingerprint decided.
    orientation : str or None
        How the query shows the image (``identity``, ``rot90``, ``mirror``, ...).
    extra : dict
        What the step adds to the match's JSON (boxes, transform, inliers, labels, ...).
    drop : bool
        The image fails a filter of the ask (label, colour): it is removed from the result.
    """

    id: int
    kind: str | None
    score: float = 0.0
    distance: int | None = None
    orientation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    drop: bool = False


class Step(Protocol):
    """One step of a search."""

    name: str

    def applies(self, ask: Ask) -> bool:
        """Whether this step runs for ``ask``."""

    def prepare(self, query: "Query") -> None:
        """Start (``query.prefetch``) the heavy computations ``run`` will need; called for
        every step that applies before the first runs, so they overlap."""

    def run(self, query: "Query", found: "Found", ask: Ask) -> list[Hit]:
        """Hits for ``query``, given what earlier steps ``found``."""


def verified_hit(hit: dict[str, Any]) -> Hit:
    """A geometric verification's description (``id``, ``kind``, ``score``, boxes, transform,
    ...; see ``picorigin._verify.describe_transform``) as a Hit."""
    extra = dict(hit)
    image_id, kind, score = extra.pop("id"), extra.pop("kind"), extra.pop("score")
    return Hit(int(image_id), kind, score, orientation=_orientation_of(extra), extra=extra)


def _orientation_of(hit: dict[str, Any]) -> str | None:
    """The dihedral name of a verified transform when it is a quarter-turn multiple (or None)."""
    rotation = hit.get("rotation")
    if rotation is None:
        return None
    turns = round(rotation / 90.0)
    if abs(rotation - 90.0 * turns) > 5.0:
        return None
    name = {0: "identity", 1: "rot90", 2: "rot180", 3: "rot270"}[turns % 4]
    if hit.get("mirror"):
        name = "mirror" if name == "identity" else f"mirror_{name}"
    return name
