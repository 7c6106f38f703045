"""Where a picture came from: its copies' pages, its creator and rights, its larger versions,
its original.

Pure functions over plain records: an image record is what ``Engine.info`` returns (``id``,
``uri``, ``width``, ``height``, ``format``, ``byte_size``, ``metadata``, ``signals`` and
``locations``, each location a sighting with ``uri``, ``page_url``, ``page_title``, ``alt``,
``author``, ``published``, ``first_seen``, ``last_seen``, ``removed_at`` and ``rights``, the
structured data's claims about the image). Nothing here touches
SQLite, the network or pixels, except :func:`compute_detail` (pixels of one image, at ingest)
and :func:`jpeg_quality` (header of one file, at ingest).

Detail, and why an upscale is not a larger version
--------------------------------------------------
Enlarging a file adds pixels, not detail: everything in an image upscaled by a factor ``u``
lives below ``1/u`` of its Nyquist frequency. :func:`compute_detail` measures that directly.
For a scale ``k`` it shrinks the image by ``k`` and enlarges it back, and takes the energy the
round trip loses, ``e(k)`` (the detail finer than ``1/k`` of the resolution). In a genuine
photograph detail is spread over every scale (power falls roughly as ``1/f^2``), so
``e(k) / e(2k)`` stays above about 0.14 at ``k`` = 1.5, rising to 0.4 at ``k`` = 4 (JPEG
quality 30 included). In an image enlarged by ``u`` the round trip at ``k = u`` loses almost
nothing: the ratio falls well below those (thresholds in ``_UPSCALE_RATIO``, set between the two
populations measured on 12 scikit-image photographs and 14 variants each: bicubic, bilinear,
Lanczos and nearest upscales by 1.5 to 4, before and after JPEG recompression at quality 50 to
90, against originals, halves, noisy and quality-30 copies). The upscale factor is the largest
``k`` whose ratio is below its threshold, and the detail is ``1 / k``: 1.0 for a genuine image,
at most 0.5 for one enlarged 2x. Of 168 images, every genuine one read 1.0 except two that are
soft throughout (the ``brick`` texture and the ``retina`` photograph read 0.25-0.33), and every
upscale read at most its true ``1/u`` except one 1.5x bilinear upscale (read 1.0). The largest-k
rule errs on the side of less detail: past ``u`` the ratio is the source's own ratio at ``k/u``,
which can dip under a looser threshold, so a 2x upscale may read 0.33 or 0.25. That is harmless
for the question asked of it, whether a larger copy is an upscale of a smaller one.

The effective resolution of an image is ``detail * its longer side``; a version is genuinely
larger than another only when its effective resolution exceeds the other's pixel size by 15 %.
Only the six most textured 256-pixel tiles are measured, so the cost is bounded
whatever the image size (30-80 ms, 12-megapixel photos included), and flat sky or a black
border cannot fool it.

The measure needs the image at (or near) full resolution: an image reduced by ``r`` before it is
measured hides any upscale up to ``r``. :data:`DETAIL_SIDE` is the smallest longer side worth
measuring at; the engine should decode with ``working_side=DETAIL_SIDE`` for it (the 128-pixel
fingerprint decode is far too small).
"""

from __future__ import annotations

import io
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

__all__ = [
    "COPY_KINDS",
    "DETAIL_SIDE",
    "annotate",
    "compute_detail",
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

DETAIL_SIDE = 2048
"""Measure detail on an image whose longer side is at least this (or its full size if smaller)."""

# Thresholds on e(k)/e(2k) below which the image is taken to be enlarged by k (see module doc).
_UPSCALE_RATIO = {1.5: 0.12, 2.0: 0.18, 2.5: 0.24, 3.0: 0.29, 4.0: 0.33}
_TILE, _TILES, _MARGIN = 256, 3, 8

# Tolerances: sizes within 15 % are "the same resolution"; dates within a day are a tie.
_SAME_SIZE = 1.15
_SAME_DAY = 86_400.0
_SAME_ASPECT = 0.03
_LARGER = 1.1             # "larger than the query": at least 10 % more pixels


# -- per-image measures, computed at ingest ------------------------------------------------

def compute_detail(image: "PIL.Image.Image") -> float:  # noqa: F821 - PIL imported lazily
    """Fraction of an image's linear resolution that carries detail.

    Parameters
    ----------
    image : PIL.Image.Image
        The image at full resolution (or with its longer side at least :data:`DETAIL_SIDE`),
        any mode.

    Returns
    -------
    float
        In ``(0, 1]``: ``1.0`` for a genuine image, ``1 / u`` for one enlarged by ``u``
        (``u`` in 1.5, 2, 2.5, 3, 4). Images smaller than 48 pixels a side give ``1.0``.
    """
    if min(image.size) < 48:
        return 1.0
    tiles = _textured_tiles(image)
    cache: dict[float, float] = {}

    def loss(k: float) -> float:
        if k not in cache:
            # A nearest-neighbour upscale is only undone exactly by nearest at integer factors.
            kernels = (
                (cv2.INTER_CUBIC, cv2.INTER_NEAREST) if k in (2.0, 3.0, 4.0) else (cv2.INTER_CUBIC,)
            )
            cache[k] = min(_round_trip_loss(tiles, k, kernel) for kernel in kernels)
        return cache[k]

    factor = 1.0
    for k, threshold in _UPSCALE_RATIO.items():
        coarser = loss(2 * k)
        if coarser > 0 and loss(k) < threshold * coarser:
            factor = k
    return 1.0 / factor


def _textured_tiles(image: "PIL.Image.Image") -> list:  # noqa: F821
    """The most textured ``_TILE``-pixel tiles, in grey (the whole image when it is small)."""
    width, height = image.size
    if width < 2 * _TILE or height < 2 * _TILE:
        return [image.convert("L")]
    # Texture judged on a 1/8 view: coarse structure marks where fine detail can be. Only
    # the chosen tiles are converted to grey, not a whole 24-megapixel image.
    step = 8
    coarse = np.asarray(image.reduce(step).convert("L"), np.float32)
    dy, dx = np.gradient(coarse)
    energy = dx * dx + dy * dy
    cells, cols, rows = _TILE // step, width // _TILE, height // _TILE
    scores = energy[: rows * cells, : cols * cells].reshape(rows, cells, cols, cells).sum((1, 3))
    best = np.argsort(scores, axis=None)[::-1][:_TILES]
    tiles = []
    for flat in best:
        row, col = divmod(int(flat), cols)
        x, y = col * _TILE, row * _TILE
        tiles.append(image.crop((x, y, x + _TILE, y + _TILE)).convert("L"))
    return tiles


def _round_trip_loss(tiles: list, k: float, kernel: int) -> float:
    """Mean squared difference between the tiles and their shrink-by-k-and-back round trip.

    OpenCV rather than Pillow: area averaging down and cubic (or nearest) up are several times
    faster than Pillow's Lanczos, and this runs a few dozen times per ingested image.
    """
    total, count = 0.0, 0
    for tile in tiles:
        pixels = np.asarray(tile)
        height, width = pixels.shape
        small = cv2.resize(
            pixels, (max(4, round(width / k)), max(4, round(height / k))),
            interpolation=cv2.INTER_AREA,
        )
        back = cv2.resize(small, (width, height), interpolation=kernel).astype(np.int16)
        diff = (pixels.astype(np.int16) - back)[_MARGIN:-_MARGIN, _MARGIN:-_MARGIN]
        diff = diff.astype(np.int32)
        total += float(np.einsum("ij,ij->", diff, diff))
        count += diff.size
    return total / max(count, 1)


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


def effective_side(record: Mapping[str, Any]) -> float:
    """Longer side, in pixels, of the smallest image that would carry the same detail.

    ``detail * longer side``; the longer side itself when no detail was measured.
    """
    detail = _signal(record, "detail")
    return _side(record) * (float(detail) if detail else 1.0)


def is_upscale(larger: Mapping[str, Any], smaller: Mapping[str, Any]) -> bool:
    """Whether ``larger`` is bigger than ``smaller`` in pixels yet carries no more detail.

    Both are copies of one picture. ``larger`` is an upscale when its effective resolution is
    within 15 % of ``smaller``'s pixel size. Without a detail measure for ``larger`` this
    cannot be told, and the answer is ``False``.
    """
    if _signal(larger, "detail") is None:
        return False
    small = _side(smaller)
    return _side(larger) > small * _SAME_SIZE and effective_side(larger) <= small * _SAME_SIZE


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
    2. largest genuine resolution: effective resolution (detail x size) within 15 % of the best,
       so an upscale cannot win by size;
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
    best_side = max(effective_side(r) for r in records)
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
        side = effective_side(r)
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
        ``width``, ``height`` and, when measured, ``detail`` of the query image.
    matches : list of dict
        ``Match.to_dict()`` rows (``id``, ``kind``, ...).
    records : dict
        ``id -> Engine.info(id)`` for every match.

    Returns
    -------
    dict
        ``{"matches": {id: {"pages", "creator", "rights", "larger_than_query", "upscaled"}},
        "likely_original": {...} or None}``. Every copy (exact, near-duplicate, partial) shares
        the pages, creator and rights claims of the whole group; ``larger_than_query`` is true only for a genuinely
        higher-resolution version (an upscale has it false and ``upscaled`` true). A "similar"
        match is not a copy: its pages are its own, and it is never upscaled or larger.
    """
    copies = [records[m["id"]] for m in matches
              if m.get("kind") in COPY_KINDS and m["id"] in records]
    original = likely_original(copies)
    ordered = sorted(copies, key=lambda r: r["id"] != (original or {}).get("id"))
    group_pages, group_creator, group_rights = pages(ordered), creator(ordered), rights(ordered)
    smaller_pool = [query, *copies]
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
        upscaled = any(is_upscale(record, other) for other in smaller_pool if other is not record)
        bigger = _pixels(record) > _pixels(query) * _LARGER and not upscaled
        out[match["id"]] = {"pages": group_pages, "creator": group_creator,
                            "rights": group_rights,
                            "larger_than_query": bigger, "upscaled": upscaled}
    return {"matches": out, "likely_original": original}
