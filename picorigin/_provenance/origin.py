"""Where a picture came from: its copies' pages, its creator and rights, its larger versions,
its original.

Pure functions over plain records: an image record is what ``Engine.info`` returns (``id``,
``uri``, ``width``, ``height``, ``format``, ``byte_size``, ``metadata``, ``signals`` and
``locations``, each location a sighting with ``uri``, ``page_url``, ``page_title``, ``alt``,
``author``, ``published``, ``first_seen``, ``last_seen``, ``removed_at`` and ``rights``, the
structured data's claims about the image). Nothing here touches SQLite, the network or pixels,
except :func:`jpeg_quality` (header of one file, at ingest); the pixel evidence of enlargement
is :mod:`picorigin._provenance.enlarged`'s, measured at ingest into ``signals``.

Larger versions, and why an upscale is not one
----------------------------------------------
A copy is larger than another when it has more pixels; it is a larger *version* only if those
pixels hold more of the picture, and an upscale's do not. Whether a copy holds more detail
cannot be read from the copy alone: a macro shot with a defocused background, or a portrait,
has as little fine detail as an enlargement, and a measure of detail per image called such
camera originals upscales of their own reductions. So the question is asked of a pair, the
larger copy B and a smaller copy A at hand (the query, or another copy of the result): is B an
enlargement of a picture of A's size? B's stored traces answer it
(:func:`picorigin._provenance.enlarged.grid_score`): the 8x8 block grid of a JPEG of A's size,
stretched to ``8 * side(B) / side(A)`` pixels, or pixels repeated by a nearest-neighbour
enlargement. Without such a trace B is taken as genuine: a copy smaller than the query, or one
whose traces were never measured, is never called an upscale of it.

:func:`is_upscale` is that test for one pair (sizes within 15 % are the same resolution);
:func:`effective_side` is the resolution a copy really carries among the copies at hand (its
side, or the side of the smaller copy it was enlarged from); a copy is larger than the query
when it has 10 % more pixels and carries more than the query's side.
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from picorigin._provenance import enlarged

__all__ = [
    "COPY_KINDS",
    "annotate",
    "creator",
    "effective_side",
    "group_copies",
    "is_upscale",
    "jpeg_quality",
    "likely_original",
    "pages",
    "rights",
]

COPY_KINDS = frozenset({"exact", "near_duplicate", "partial"})

# Tolerances: sizes within 15 % are "the same resolution"; dates within a day are a tie.
_SAME_SIZE = 1.15
_SAME_DAY = 86_400.0
_SAME_ASPECT = 0.03
_LARGER = 1.1             # "larger than the query": at least 10 % more pixels


# The IJG standard luminance quantisation table (quality 50), summed.
_IJG_LUMA_SUM = 3688


def jpeg_quality(data: bytes) -> float | None:
    """Estimate the quality (1-100) a JPEG was last saved at, from its quantisation tables.

    Reads only the header. A lower quality means more compression; across copies of one
    picture the highest quality is the least recompressed. ``None`` when not a JPEG.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            tables = getattr(image, "quantization", None)
    except Exception:  # noqa: BLE001 - any unreadable header just means "unknown"
        return None
    if not tables or 0 not in tables:
        return None
    scale = 100.0 * sum(tables[0]) / _IJG_LUMA_SUM     # the IJG scaling factor, in percent
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return round(min(100.0, max(1.0, quality)), 1)


# -- reading records -----------------------------------------------------------------------

def _signal(record: Mapping[str, Any], name: str) -> Any:
    signals = record.get("signals") or {}
    return signals.get(name, record.get(name))


def _side(record: Mapping[str, Any]) -> int:
    return max(int(record.get("width") or 0), int(record.get("height") or 0))


def _pixels(record: Mapping[str, Any]) -> int:
    return int(record.get("width") or 0) * int(record.get("height") or 0)


def effective_side(record: Mapping[str, Any], copies: Iterable[Mapping[str, Any]] = ()) -> float:
    """Longer side, in pixels, of the resolution a copy really carries among ``copies``.

    Its own longer side, unless it is an enlargement: then the side of the smallest of
    ``copies`` it is an upscale of (:func:`is_upscale`), or the side its own traces show it was
    enlarged from. A record may carry ``effective_side`` already worked out (``dedupe`` lends
    copies the detail their smaller copies show they hold): that value is used as it is.
    """
    if record.get("effective_side") is not None:
        return float(record["effective_side"])
    sides = [float(_side(record))]
    source = enlarged.source_side(_traces(record), _side(record))
    if source is not None:
        sides.append(source)
    copies = list(copies)
    sides += [float(_side(other)) for other in copies
              if other is not record and is_upscale(record, other, copies)]
    return min(sides)


def _traces(record: Mapping[str, Any]) -> dict[str, Any]:
    """The enlargement traces measured for a record (empty when never measured)."""
    found = {key: _signal(record, key)
             for key in ("jpeg_grids", "jpeg_grids_smooth", "nearest_factor")}
    return {key: value for key, value in found.items() if value is not None}


def is_upscale(larger: Mapping[str, Any], smaller: Mapping[str, Any],
               copies: Iterable[Mapping[str, Any]] = ()) -> bool:
    """Whether ``larger`` is an enlargement of a picture no bigger than ``smaller``.

    Both are copies of one picture; ``copies`` are the others at hand. True only when
    ``larger`` is over 15 % bigger (longer side) and its pixels show it
    (:mod:`~picorigin._provenance.enlarged`): the block grid of a JPEG of ``smaller``'s size
    at the period the two sizes predict (smoothed reading at least ``GRID_BAR``, or, for a
    JPEG, sharp reading at least ``GRID_SHARP_BAR``), or traces of an enlargement from at most
    ``smaller``'s size (nearest-neighbour repeats, a strong grid of any period). ``False``
    when ``larger`` was never measured.

    A reduction of a larger JPEG holds that JPEG's grid shrunk below 8 pixels, and the measure
    can hear it beat against the reduction's own grid at a period of 8 x ``side(B)`` over
    ``|n * side(O) - m * side(B)|``. When a copy O among ``copies`` puts such a beat at the
    period asked about (the 1333-px reduction of a 2000-px JPEG, asked about a 666-px copy),
    only the smoothed reading counts, and only from ``GRID_BEAT_BAR``.
    """
    big, small = _side(larger), _side(smaller)
    if small <= 0 or big <= small * _SAME_SIZE:
        return False
    traces = _traces(larger)
    beat = any(_beats_at(_side(other), big, small) for other in copies
               if other is not larger and _side(other) > big * _SAME_SIZE)
    smooth = enlarged.grid_score(traces, big / small)
    if smooth is not None and smooth >= (enlarged.GRID_BEAT_BAR if beat else enlarged.GRID_BAR):
        return True
    sharp = enlarged.grid_score(traces, big / small, "jpeg_grids")
    if not beat and sharp is not None and sharp >= enlarged.GRID_SHARP_BAR and (
            str(larger.get("format") or "JPEG").upper() in ("JPEG", "MPO")):
        return True
    source = enlarged.source_side(traces, big)
    return source is not None and source <= small * _SAME_SIZE


def _beats_at(source: int, reduced: int, side: int) -> bool:
    """Whether a JPEG ``source`` px long, reduced to ``reduced``, beats at ``side``'s period."""
    for n in (1, 2):
        ratio = n * source / reduced
        for m in (math.floor(ratio), math.ceil(ratio)):
            if abs(abs(n * source - m * reduced) / side - 1.0) <= 0.015:
                return True
    return False


def _locations(record: Mapping[str, Any]) -> list[dict]:
    return list(record.get("locations") or record.get("sightings") or [])


def _when(value: Any) -> float | None:
    """A timestamp (epoch seconds) from an ISO 8601 string or a number; None when unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text[:10])
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _earliest(record: Mapping[str, Any]) -> tuple[float, str] | None:
    """The earliest moment this image is known to have existed, and what says so."""
    best: tuple[float, str] | None = None
    for location in _locations(record):
        where = location.get("page_url") or location.get("uri") or "?"
        for key in ("published", "first_seen"):
            moment = _when(location.get(key))
            if moment is not None and (best is None or moment < best[0]):
                label = "published" if key == "published" else "first seen"
                best = (moment, f"{label} {location[key]} on {where}")
    taken = _when((record.get("metadata") or {}).get("date_taken", "").replace(":", "-", 2))
    if taken is not None and (best is None or taken < best[0]):
        best = (taken, f"taken {record['metadata']['date_taken']} (EXIF)")
    return best


# -- group-level answers -------------------------------------------------------------------

def group_copies(pairs: Iterable[tuple[int, int]], ids: Iterable[int] = ()) -> list[set[int]]:
    """Group image ids into sets of copies, given pairs known to be copies of each other.

    Copy relations are chained (a copy of a copy is a copy), so this is a union-find over the
    pairs. ``ids`` adds singletons. Groups come out largest first, then by smallest id.
    """
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for node in ids:
        root(node)
    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, set[int]] = {}
    for node in list(parent):
        groups.setdefault(root(node), set()).add(node)
    return sorted(groups.values(), key=lambda g: (-len(g), min(g)))


def pages(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Every page where any of these images was seen, oldest sighting first.

    Returns
    -------
    list of dict
        ``{"page_url", "image_url", "image_id", "title", "alt", "first_seen", "last_seen",
        "removed"}``; sightings with no page (local files) are left out.
    """
    seen: dict[tuple[str, str], dict] = {}
    for record in records:
        for location in _locations(record):
            if not location.get("page_url"):
                continue
            key = (location["page_url"], location.get("uri") or "")
            if key in seen:
                continue
            seen[key] = {
                "page_url": location["page_url"],
                "image_url": location.get("uri"),
                "image_id": record.get("id"),
                "title": location.get("page_title"),
                "alt": location.get("alt"),
                "first_seen": location.get("first_seen"),
                "last_seen": location.get("last_seen"),
                "removed": bool(location.get("removed_at") or location.get("removed")),
            }
    return sorted(seen.values(), key=lambda p: (_when(p["first_seen"]) or math.inf, p["page_url"]))


def _metadata_source(metadata: Mapping[str, Any], key: str) -> str:
    sources = metadata.get("sources") or {}
    return sources.get(key) or metadata.get(f"{key}_source") or f"metadata:{key}"


def _by_age(record: Mapping[str, Any]) -> list[dict]:
    return sorted(_locations(record), key=lambda loc: _when(loc.get("first_seen")) or 0)


def _structured_claims(record: Mapping[str, Any], field: str) -> Iterable[dict]:
    """The claims of ``field`` the pages' structured data made about this image, oldest first."""
    for location in _by_age(record):
        for claim in ((location.get("rights") or {}).get("claims") or []):
            if isinstance(claim, dict) and claim.get("field") == field and claim.get("value"):
                yield {"name": claim["value"], "source": claim.get("source") or "page",
                       "image_id": record.get("id"), "page_url": location.get("page_url")}


def creator(records: Iterable[Mapping[str, Any]]) -> dict | None:
    """Who made the picture, and where that claim came from.

    The image's own metadata wins over what a page says, and what a page says of the image in
    its structured data wins over what it says of itself (a page author is often the writer,
    not the photographer). In order: the records' ``creator`` (EXIF Artist, IPTC By-line or
    XMP dc:creator), a page's structured ``creator`` for the image (``jsonld:creator``,
    ``microdata:creator``, ``rdfa:creator``, ``jsonld:author``), the records' ``credit``, a
    page's ``creditText``, the XMP licensor (``xmp:plus:Licensor``), then the page authors.
    Records are read in the order given, so pass the likely original first. Every other claim,
    conflicting ones included, is listed by :func:`rights`.

    Returns
    -------
    dict or None
        ``{"name", "source", "image_id"}`` (``"page_url"`` too for a page's claim). ``source``
        is the metadata field when the metadata reader recorded it (``metadata["sources"]``),
        else ``"metadata:creator"``; for structured data ``<syntax>:<property>``; for a page's
        own signals, ``"page:author"`` (``"page:<signal>"`` when the sighting says which).
    """
    records = list(records)
    for key, field in (("creator", "creator"), ("credit", "credit"), ("licensor", None)):
        for record in records:
            metadata = record.get("metadata") or {}
            if metadata.get(key):
                return {"name": metadata[key], "source": _metadata_source(metadata, key),
                        "image_id": record.get("id")}
        for record in records if field else ():
            for claim in _structured_claims(record, field):
                return claim
    for record in records:
        for location in _by_age(record):
            if location.get("author"):
                return {
                    "name": location["author"],
                    "source": location.get("author_source") or "page:author",
                    "image_id": record.get("id"),
                    "page_url": location.get("page_url"),
                }
    return None


# What the image file states, as rights claims: metadata key -> claim field.
_METADATA_CLAIMS = {
    "creator": "creator",
    "credit": "credit",
    "copyright": "copyright_notice",
    "web_statement": "license",              # IPTC's Web Statement of Rights: the licence URL
    "usage_terms": "usage_terms",
    "licensor": "licensor",
    "licensor_url": "acquire_license_page",  # where a licence is acquired
    "creator_contact": "creator_contact",
}
RIGHTS_FIELDS = ("license", "acquire_license_page", "copyright_notice", "credit",
                 "copyright_holder", "usage_terms")
"""The fields :func:`rights` answers with one value each (the first claim's)."""
_MAX_CLAIMS = 200


def _claims(record: Mapping[str, Any]) -> list[dict]:
    """Every claim about credit and rights one image carries: its file's first, then each
    sighting's (oldest first; a page's structured data about the image before the page's own
    ``rel=license`` and author)."""
    claims: list[dict] = []
    image_id = record.get("id")
    metadata = record.get("metadata") or {}
    for key, field in _METADATA_CLAIMS.items():
        if metadata.get(key):
            claims.append({"field": field, "value": str(metadata[key]),
                           "source": _metadata_source(metadata, key), "image_id": image_id})
    page_level: list[dict] = []
    for location in _by_age(record):
        where = {"image_id": image_id, "page_url": location.get("page_url") or None}
        for claim in ((location.get("rights") or {}).get("claims") or []):
            if isinstance(claim, dict) and claim.get("field") and claim.get("value"):
                claims.append({"field": str(claim["field"]), "value": str(claim["value"]),
                               "source": str(claim.get("source") or "page"), **where})
        if location.get("license"):
            page_level.append({"field": "license", "value": location["license"],
                               "source": "page:rel=license", **where})
        if location.get("author"):
            page_level.append({"field": "creator", "value": location["author"],
                               "source": location.get("author_source") or "page:author",
                               **where})
    return claims + page_level


def _same(value: str) -> str:
    return value.strip().lower().rstrip("/")


def rights(records: Iterable[Mapping[str, Any]]) -> dict:
    """What the images and the pages that show them claim about credit and licence.

    Claims are kept, not reconciled: ``sources`` lists every one with where it came from, and
    ``conflicts`` names the fields whose claims disagree. Each field's value is its first
    claim's: records in the order given (pass the likely original first), within a record its
    file's metadata (EXIF, IPTC, XMP), then its pages' structured data about it, then a page's
    ``rel=license``.

    Returns
    -------
    dict
        ``{"license", "acquire_license_page", "copyright_notice", "credit", "copyright_holder",
        "usage_terms"}`` (each a str or None), ``"sources"``: ``[{"field", "value", "source",
        "image_id", "page_url"?}, ...]`` (``field`` also ``creator``, ``licensor``,
        ``date_created``, ``creator_contact``) and ``"conflicts"``: sorted field names.
    """
    claims: list[dict] = []
    seen: set[tuple] = set()
    for record in records:
        for claim in _claims(record):
            key = (claim["field"], _same(claim["value"]), claim["source"],
                   claim["image_id"], claim.get("page_url"))
            if key not in seen and len(claims) < _MAX_CLAIMS:
                seen.add(key)
                claims.append(claim)
    out: dict[str, Any] = {field: next((c["value"] for c in claims if c["field"] == field), None)
                           for field in RIGHTS_FIELDS}
    values: dict[str, set[str]] = {}
    for claim in claims:
        values.setdefault(claim["field"], set()).add(_same(claim["value"]))
    out["sources"] = claims
    out["conflicts"] = sorted(field for field, distinct in values.items() if len(distinct) > 1)
    return out


def _aspect(record: Mapping[str, Any]) -> float:
    width, height = int(record.get("width") or 1), int(record.get("height") or 1)
    return max(width, height) / max(1, min(width, height))


def _reference_aspect(records: list[Mapping[str, Any]]) -> float:
    """The aspect ratio most copies share (ties: the one of the largest copy)."""
    votes: list[tuple[int, int, float]] = []
    for record in records:
        aspect = _aspect(record)
        agree = sum(abs(_aspect(other) / aspect - 1) <= _SAME_ASPECT for other in records)
        votes.append((agree, _pixels(record), aspect))
    return max(votes)[2]


def _compression(record: Mapping[str, Any]) -> tuple[float, str]:
    """Higher is less recompressed: JPEG quality when known, else bits per pixel."""
    quality = _signal(record, "jpeg_quality")
    if quality is not None:
        return float(quality), f"JPEG quality {float(quality):.0f}"
    bits = 8.0 * int(record.get("byte_size") or 0) / max(1, _pixels(record))
    return bits, f"{bits:.2f} bits per pixel"


def likely_original(records: Iterable[Mapping[str, Any]]) -> dict | None:
    """Name the copy most likely to be the original, with the evidence that decided it.

    Candidates go through the tests below in order; each keeps only the candidates that pass it
    (when at least one does). The test that leaves one candidate decided it.

    1. not cropped: its aspect ratio is the one most copies share (crops change it);
    2. largest genuine resolution: effective resolution (:func:`effective_side` among these
       copies) within 15 % of the best, so an upscale cannot win by size;
    3. camera EXIF present (camera model or date taken), which re-posts usually strip;
    4. earliest sighting: page publication date or first seen, within a day of the earliest;
    5. credit and rights stated: the most claims of creator, credit, copyright and licence, in
       the file or in the pages that show it (see :func:`rights`), which re-posts usually drop;
    6. least recompressed: highest JPEG quality (or bits per pixel), within 5 %.

    Returns
    -------
    dict or None
        ``{"id", "uri", "evidence": [str, ...], "decided_by": str}``; ``evidence`` lists every
        test the winner passed, the deciding one first. None for no records.
    """
    records = [r for r in records if r is not None]
    if not records:
        return None
    aspect = _reference_aspect(records)
    sides = {r["id"]: effective_side(r, records) for r in records}
    best_side = max(sides.values())
    dates = {r["id"]: _earliest(r) for r in records}
    known_dates = [d[0] for d in dates.values() if d is not None]
    first_date = min(known_dates) if known_dates else None
    compression = {r["id"]: _compression(r) for r in records}
    claims = {r["id"]: _claims(r) for r in records}
    most_claims = max(len(c) for c in claims.values())
    best_compression = max(c[0] for c in compression.values())

    def camera(r: Mapping[str, Any]) -> str | None:
        metadata = r.get("metadata") or {}
        if metadata.get("camera"):
            return f"camera EXIF present ({metadata['camera']})"
        if metadata.get("date_taken"):
            return f"camera EXIF present (taken {metadata['date_taken']})"
        return None

    def earliest(r: Mapping[str, Any]) -> str | None:
        date = dates[r["id"]]
        if date is None or first_date is None or date[0] > first_date + _SAME_DAY:
            return None
        return f"earliest sighting ({date[1]})"

    def resolution(r: Mapping[str, Any]) -> str | None:
        side = sides[r["id"]]
        if side * _SAME_SIZE < best_side:
            return None
        return f"largest genuine resolution ({r['width']}x{r['height']}, detail {side:.0f} px)"

    def not_cropped(r: Mapping[str, Any]) -> str | None:
        if abs(_aspect(r) / aspect - 1) > _SAME_ASPECT:
            return None
        return "not cropped (same aspect ratio as the other copies)"

    def stated(r: Mapping[str, Any]) -> str | None:
        mine = claims[r["id"]]
        if not mine or len(mine) < most_claims:
            return None
        sources = sorted({claim["source"] for claim in mine})
        listed = ", ".join(sources[:6]) + (", ..." if len(sources) > 6 else "")
        return f"credit and rights stated ({len(mine)} claims: {listed})"

    def least_recompressed(r: Mapping[str, Any]) -> str | None:
        value, text = compression[r["id"]]
        if value < best_compression * 0.95:
            return None
        return f"least recompressed ({text})"

    tests = (
        ("not cropped", not_cropped),
        ("largest genuine resolution", resolution),
        ("camera EXIF", camera),
        ("earliest sighting", earliest),
        ("credit and rights stated", stated),
        ("least recompressed", least_recompressed),
    )
    candidates = sorted(records, key=lambda r: r["id"])
    decided_by = None
    for name, test in tests:
        passing = [r for r in candidates if test(r)]
        if passing and len(passing) < len(candidates):
            candidates = passing
            if len(candidates) == 1:
                decided_by = name
                break
    if decided_by is None:
        decided_by = "tie (lowest id among equals)" if len(candidates) > 1 else "only copy"
    winner = candidates[0]
    # The deciding test first, then every other test the winner passed.
    ranked = sorted(tests, key=lambda named: named[0] != decided_by)
    evidence = [text for _, test in ranked if (text := test(winner))]
    uri = winner.get("uri") or next((loc.get("uri") for loc in _locations(winner)), None)
    return {"id": winner["id"], "uri": uri, "evidence": evidence, "decided_by": decided_by}


def annotate(
    query: Mapping[str, Any],
    matches: list[Mapping[str, Any]],
    records: Mapping[int, Mapping[str, Any]],
) -> dict:
    """Add provenance to a search result: pages, creator, larger versions, the likely original.

    Parameters
    ----------
    query : dict
        ``width``, ``height`` and, when measured, the query's enlargement traces
        (:func:`picorigin._provenance.enlarged.measure`, as ``signals`` or at the top level).
    matches : list of dict
        ``Match.to_dict()`` rows (``id``, ``kind``, ...).
    records : dict
        ``id -> Engine.info(id)`` for every match.

    Returns
    -------
    dict
        ``{"matches": {id: {"pages", "creator", "rights", "larger_than_query", "upscaled"}},
        "likely_original": {...} or None, "query_upscaled": bool}``. Every copy (exact,
        near-duplicate, partial) shares the pages, creator and rights claims of the whole group.
        ``upscaled``: the copy is an enlargement of a smaller copy at hand, the query or another
        match (:func:`is_upscale`; never of a query it is not larger than).
        ``larger_than_query``: 10 % more pixels than the query and more resolution than it
        carries (an upscale of a copy the query's size has it false). ``query_upscaled``: the
        query is an enlargement of one of the copies. A "similar" match is not a copy: its pages
        are its own, and it is never upscaled or larger.
    """
    copies = [records[m["id"]] for m in matches
              if m.get("kind") in COPY_KINDS and m["id"] in records]
    original = likely_original(copies)
    ordered = sorted(copies, key=lambda r: r["id"] != (original or {}).get("id"))
    group_pages, group_creator, group_rights = pages(ordered), creator(ordered), rights(ordered)
    pool = [query, *copies]
    out: dict[int, dict] = {}
    for match in matches:
        record = records.get(match["id"])
        if record is None:
            continue
        if match.get("kind") not in COPY_KINDS:
            out[match["id"]] = {"pages": pages([record]), "creator": creator([record]),
                                "rights": rights([record]),
                                "larger_than_query": False, "upscaled": False}
            continue
        upscaled = any(is_upscale(record, other, pool) for other in pool if other is not record)
        bigger = _pixels(record) > _pixels(query) * _LARGER and (
            not upscaled or effective_side(record, pool) > _side(query) * _SAME_SIZE)
        out[match["id"]] = {"pages": group_pages, "creator": group_creator,
                            "rights": group_rights,
                            "larger_than_query": bigger, "upscaled": upscaled}
    query_upscaled = any(is_upscale(query, record, copies) for record in copies)
    return {"matches": out, "likely_original": original, "query_upscaled": query_upscaled}
