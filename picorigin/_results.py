"""Sorting and filtering a search's matches: pure functions over the result, no I/O.

Every surface (library, CLI, HTTP, page) orders results the same way through :func:`arrange`.
Copies (``exact``, ``near_duplicate``, ``partial``) always come before ``similar`` images, which
are not copies; each sort orders the two parts on their own:

``best``
    The engine's order: the strongest kind first, then the highest score.
``changed``
    The most changed copy first: the lowest score first (a score says how close a copy is to
    the query: ``1 - distance / 128`` for a near-duplicate, the share of keypoints that agree for
    a partial copy, 1 for an exact copy), then the weaker kind first.
``biggest``
    Genuine resolution first: the largest in pixels first, but an upscale (``upscaled``: bigger
    in pixels, no more detail than a smaller copy) after every copy that is not one.
``oldest`` / ``newest``
    By ``first_seen`` (the earliest sighting of that image itself), oldest or newest first;
    matches never seen at a known date last.

Ties keep the engine's order. Filters: ``domain`` keeps matches with a location (the image's own
URL or path, or a page it was seen on) on that host or in that folder, ``larger_only`` keeps the
genuinely larger copies (``larger_than_query``; an upscale is not one).
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence, TypeVar
from urllib.parse import urlsplit

__all__ = ["SORTS", "arrange", "first_seen", "in_domain", "normalise_domain"]

SORTS = ("best", "changed", "biggest", "oldest", "newest")
"""Every sort order, the default first."""

_COPY_KINDS = ("exact", "near_duplicate", "partial")
_KIND_RANK = {"exact": 0, "near_duplicate": 1, "partial": 2, "similar": 3}
_MAX_DOMAIN = 500

M = TypeVar("M")


def _get(match: Any, name: str, default: Any = None) -> Any:
    """A field of a match: a ``Match`` (fixed fields, then ``extra``) or its dict."""
    if isinstance(match, Mapping):
        return match.get(name, default)
    if hasattr(match, name):
        return getattr(match, name)
    return getattr(match, "extra", {}).get(name, default)


def _moment(value: Any) -> float | None:
    """Epoch seconds from an ISO 8601 date or time (naive read as UTC); None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00")
    for candidate in (text, text[:10]):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return None


def first_seen(locations: Iterable[Mapping[str, Any]]) -> str | None:
    """The earliest ``first_seen`` among an image's locations (as stored), or None."""
    best: tuple[float, str] | None = None
    for location in locations:
        value = location.get("first_seen")
        moment = _moment(value)
        if moment is not None and (best is None or moment < best[0]):
            best = (moment, value)
    return best[1] if best else None


def normalise_domain(value: str) -> str:
    """A domain filter as typed (``example.org``, ``https://www.example.org/news/``,
    ``/srv/photos``) in the form :func:`in_domain` compares: lower-case host, no scheme, no
    trailing slash. Raises ValueError for an empty or absurd one."""
    text = (value or "").strip()
    if not text or len(text) > _MAX_DOMAIN:
        raise ValueError(f"domain must be a host name or folder of at most {_MAX_DOMAIN} "
                         f"characters, got {text[:100]!r}")
    if text.startswith(("/", "~", "\\")) or (len(text) > 1 and text[1] == ":"):
        return text.replace("\\", "/").rstrip("/") or "/"  # a folder on disk
    if "://" not in text:
        text = "//" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        host = ""
    if not host:
        raise ValueError(f"domain must be a host name (example.org) or a folder "
                         f"(example.org/news), got {value.strip()[:100]!r}")
    return host + parts.path.rstrip("/")


def _within(path: str, folder: str) -> bool:
    # A folder, not a prefix: "/news" holds "/news/a.jpg", not "/newsletter.jpg".
    return not folder or path == folder or path.startswith(folder + "/")


def in_domain(locations: Iterable[str], domain: str) -> bool:
    """Whether any of ``locations`` (URLs or paths) lies on ``domain``: a host (its subdomains
    too) optionally followed by a folder, or a folder on disk, as :func:`normalise_domain`
    writes it."""
    on_disk = domain.startswith("/") or domain[1:2] == ":"
    host, _, folder = ("", "", "") if on_disk else domain.partition("/")
    folder = "/" + folder if folder else ""
    for location in locations:
        if not isinstance(location, str) or not location:
            continue
        if on_disk:
            path = location.replace("\\", "/")
            if "://" not in path and _within(path, domain):
                return True
            continue
        try:
            parts = urlsplit(location)
            there = (parts.hostname or "").rstrip(".")
        except ValueError:
            continue
        if parts.scheme.lower() not in ("http", "https") or not there:
            continue
        if (there == host or there.endswith("." + host)) and _within(parts.path, folder):
            return True
    return False


def _locations(match: Any) -> list[str]:
    """A match's own locations: its URIs and the pages its own copy was seen on (``pages``
    holds every copy's pages; only this image's count here)."""
    own = list(_get(match, "uris") or [])
    if _get(match, "uri"):
        own.append(_get(match, "uri"))
    image_id = _get(match, "id")
    for page in _get(match, "pages") or []:
        if page.get("image_id") in (None, image_id):
            own += [page.get("page_url"), page.get("image_url")]
    return [loc for loc in own if loc]


def _sort_key(sort: str):
    def changed(match: Any) -> tuple:
        return (float(_get(match, "score") or 0.0), -_KIND_RANK.get(_get(match, "kind"), 3))

    def biggest(match: Any) -> tuple:
        pixels = int(_get(match, "width") or 0) * int(_get(match, "height") or 0)
        return (bool(_get(match, "upscaled")), -pixels)

    def by_date(sign: int):
        def key(match: Any) -> tuple:
            moment = _moment(_get(match, "first_seen"))
            return (moment is None, sign * moment if moment is not None else math.inf)
        return key

    keys = {"changed": changed, "biggest": biggest, "oldest": by_date(1), "newest": by_date(-1)}
    return keys.get(sort)


def arrange(
    matches: Sequence[M],
    *,
    sort: str = "best",
    domain: str | None = None,
    larger_only: bool = False,
) -> list[M]:
    """``matches`` (in the engine's best-first order) filtered and sorted.

    Parameters
    ----------
    matches : sequence of Match or dict
        Search matches with their provenance (``upscaled``, ``first_seen``, ``pages``).
    sort : str
        One of :data:`SORTS` (see the module's description).
    domain : str, optional
        Keep only matches with a location on this host or in this folder.
    larger_only : bool
        Keep only genuinely larger copies than the query.

    Raises
    ------
    ValueError
        An unknown ``sort`` or an unreadable ``domain``.
    """
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; choose among {', '.join(SORTS)}")
    kept = list(matches)
    if domain:
        wanted = normalise_domain(domain)
        kept = [m for m in kept if in_domain(_locations(m), wanted)]
    if larger_only:
        kept = [m for m in kept if _get(m, "larger_than_query")]
    key = _sort_key(sort)
    if key is None:
        return kept
    copies = [m for m in kept if _get(m, "kind") in _COPY_KINDS]
    others = [m for m in kept if _get(m, "kind") not in _COPY_KINDS]
    return sorted(copies, key=key) + sorted(others, key=key)  # sorted() is stable: ties keep order
