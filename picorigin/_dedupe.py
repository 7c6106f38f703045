"""Clean a photo library: every group of copies in a folder, the best copy of each, and why.

Built on the public ``Engine`` API only: the folder is indexed (``Engine.index``), every image
in it is searched for (``Engine.search`` with the kinds asked for), and the copy links found,
restricted to files under the folder, are chained into groups with a union-find
(:func:`picorigin._provenance.origin.group_copies`). A match's ``uris`` lists every place its
bytes are, so byte-identical files fall into one group without a search of their own.

The best copy of a group
------------------------
Edits a person makes to a copy leave traces the engine measures, so the best copy is the one
that lost nothing the others kept. Candidates go through these filters in order; each keeps the
files that pass it, when at least one does:

1. in colour, when some copy is greyscale (a grey copy lost its colour);
2. no added frame: a copy whose area beyond the common picture is one flat colour (a border,
   letterbox) has gained pixels, not picture;
3. not cropped: a copy that shows only part of another copy's picture, where the rest is real
   content, is cropped relative to it (``query_overlap`` / ``match_overlap`` of the matches).

The survivors go to :func:`picorigin._provenance.origin.likely_original`: aspect ratio most
copies share, largest *genuine* resolution (an upscale of a smaller copy, as its pixels show,
counts at that copy's size, so it never wins by size), camera EXIF, earliest sighting, least recompressed (JPEG quality from the catalog's
signals). Every reason that decided, or that the winner passed, is kept for the report.

Moving copies
-------------
:meth:`DedupeReport.move_copies` moves every file but the best of each group into another
folder, keeping paths relative to the scanned folder, never overwriting, never deleting. It
writes a manifest (JSON: each move with the file's SHA-256) that :func:`undo_moves` replays.
A file whose bytes no longer match what was indexed is left where it is and reported.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ._errors import NotFound, PicoriginError
from ._imaging import expand_sources
from ._models import COPY_KINDS, KINDS
from ._provenance import origin

__all__ = [
    "DedupeFile",
    "DedupeGroup",
    "DedupeReport",
    "MoveReport",
    "check_move_target",
    "dedupe",
    "undo_moves",
]

DEFAULT_KINDS = ("exact", "near_duplicate")

# Matches asked of each search: more than any group of copies a folder is likely to hold; a
# larger group still closes through the chain of its members' own searches.
_MATCHES = 50
# The engine calls a match partial when it covers less than 80 % of either image, so a crop
# keeping 80 % of the area sits on the line; for cleaning, a verified match covering at least
# this share of both images still groups as a near-duplicate.
NEAR_DUPLICATE_SHARE = 0.75
# A copy whose matched region covers less than this share of it holds more than the other.
_WHOLE = 0.95
# A region is a flat frame when this share of its pixels lie within _FLAT_LEVELS of its median.
_FLAT_SHARE = 0.97
_FLAT_LEVELS = 10
# Fewer pixels than this share of a thumbnail beyond the common picture: nothing to judge.
_MIN_EXTRA = 0.01
# Mean |R - G| + |G - B| (of 255) below which a thumbnail is greyscale.
_GREY_LEVELS = 3.0
_THUMB_SIDE = 256
MANIFEST_VERSION = 1


# -- results --------------------------------------------------------------------------------

@dataclass
class DedupeFile:
    """One file of a group.

    ``kind`` says how it matches the group's best copy (``exact``, ``near_duplicate``,
    ``partial``; ``None`` for the best copy itself), ``notes`` what the engine saw in it
    (``greyscale``, ``framed``, ``cropped ...``, ``no more detail than a smaller copy``).
    """

    path: str
    relative: str
    id: int
    width: int
    height: int
    format: str
    byte_size: int
    sha256: str
    best: bool = False
    kind: str | None = None
    notes: list[str] = field(default_factory=list)
    thumbnail: bytes | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "relative": self.relative,
            "id": self.id,
            "best": self.best,
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "byte_size": self.byte_size,
            "sha256": self.sha256,
            "notes": self.notes,
        }


@dataclass
class DedupeGroup:
    """Copies of one picture: ``files[0]`` is the best copy, ``reasons`` say why."""

    files: list[DedupeFile]
    reasons: list[str]
    decided_by: str

    @property
    def best(self) -> DedupeFile:
        return self.files[0]

    @property
    def others(self) -> list[DedupeFile]:
        return self.files[1:]

    def to_dict(self) -> dict[str, Any]:
        return {
            "best": self.best.path,
            "reasons": self.reasons,
            "decided_by": self.decided_by,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass
class MoveReport:
    """What :meth:`DedupeReport.move_copies` or :func:`undo_moves` did.

    ``moved`` lists ``(from, to)`` pairs, ``skipped`` ``(path, reason)`` pairs.
    """

    manifest: str | None = None
    moved: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "moved": [{"from": a, "to": b} for a, b in self.moved],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


@dataclass
class DedupeReport:
    """Every group of copies found in a folder (largest group first) and what went wrong."""

    folder: str
    kinds: tuple[str, ...]
    groups: list[DedupeGroup] = field(default_factory=list)
    images: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def duplicates(self) -> list[DedupeFile]:
        """Every file that is not the best copy of its group."""
        return [f for group in self.groups for f in group.others]

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "kinds": list(self.kinds),
            "images": self.images,
            "groups": [g.to_dict() for g in self.groups],
            "duplicates": len(self.duplicates),
            "duplicate_bytes": sum(f.byte_size for f in self.duplicates),
            "failed": [{"source": s, "reason": r} for s, r in self.failed],
            "seconds": round(self.seconds, 3),
        }

    def move_copies(self, move_to: str | Path) -> MoveReport:
        """Move every non-best copy into ``move_to``, keeping its path relative to the folder.

        Never overwrites and never deletes. Writes ``move_to/manifest.json`` (or
        ``manifest-N.json`` when one exists) for :func:`undo_moves`. A file whose SHA-256 no
        longer matches the indexed bytes, or whose destination exists, is left and reported.

        Raises
        ------
        ValueError
            When ``move_to`` lies inside the scanned folder (the moved copies would be found
            again by the next run).
        """
        folder = Path(self.folder)
        target = check_move_target(folder, move_to)
        target.mkdir(parents=True, exist_ok=True)
        result = MoveReport()
        entries = []
        for file in self.duplicates:
            source = Path(file.path)
            destination = target / file.relative
            reason = _unmovable(source, file.sha256, destination)
            if reason:
                result.skipped.append((str(source), reason))
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, destination)
            result.moved.append((str(source), str(destination)))
            entries.append({"from": str(source), "to": str(destination), "sha256": file.sha256})
            # Written after every move, so an interrupted run can still be undone.
            result.manifest = str(_write_manifest(target, folder, entries, result.manifest))
        return result

    def write_html(self, path: str | Path) -> None:
        """Write the report as one self-contained HTML page (thumbnails inlined)."""
        Path(path).write_text(_html(self), encoding="utf-8")


def check_move_target(folder: str | Path, move_to: str | Path) -> Path:
    """``move_to`` resolved; ValueError when it is, or lies inside, ``folder`` (the moved copies
    would be grouped again by the next run)."""
    folder = Path(folder).expanduser().resolve()
    target = Path(move_to).expanduser().resolve()
    if target == folder or folder in target.parents:
        raise ValueError(f"the folder to move copies to ({target}) is inside the scanned "
                         f"folder {folder}: choose one outside it")
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target} exists and is not a folder")
    return target


def _unmovable(source: Path, sha256: str, destination: Path) -> str | None:
    """Why ``source`` must stay where it is, or None."""
    if not source.is_file():
        return "no longer there"
    if _file_sha256(source) != sha256:
        return "changed since it was indexed"
    if destination.exists():
        return f"{destination} already exists"
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_manifest(target: Path, folder: Path, entries: list[dict], current: str | None) -> Path:
    if current is None:
        path, n = target / "manifest.json", 1
        while path.exists():
            n += 1
            path = target / f"manifest-{n}.json"
    else:
        path = Path(current)
    document = {
        "picorigin_dedupe_manifest": MANIFEST_VERSION,
        "folder": str(folder),
        "moved_at": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "moves": entries,
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
    tmp.replace(path)
    return path


def undo_moves(manifest: str | Path) -> MoveReport:
    """Move every file a manifest lists back where it was.

    A file is moved back only when it is still at its new place with the same SHA-256 and
    nothing has taken its old place; otherwise it is reported in ``skipped``. Folders the move
    created and left empty are removed.

    Raises
    ------
    ValueError
        When ``manifest`` is not a readable dedupe manifest.
    """
    path = Path(manifest).expanduser()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        moves = document["moves"]
        if document.get("picorigin_dedupe_manifest") != MANIFEST_VERSION or not isinstance(
            moves, list
        ):
            raise KeyError("picorigin_dedupe_manifest")
        moves = [(Path(m["from"]), Path(m["to"]), str(m["sha256"])) for m in moves]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} is not a picorigin dedupe manifest ({error})") from None
    result = MoveReport(manifest=str(path))
    for back, moved, sha256 in moves:
        if back.exists():
            reason = f"{back} exists again" if moved.exists() else "already restored"
            result.skipped.append((str(moved), reason))
        elif not moved.is_file():
            result.skipped.append((str(moved), "no longer there"))
        elif _file_sha256(moved) != sha256:
            result.skipped.append((str(moved), "changed since it was moved"))
        else:
            back.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(moved, back)
            result.moved.append((str(moved), str(back)))
            _remove_empty_parents(moved.parent, stop=path.parent)
    return result


def _remove_empty_parents(folder: Path, *, stop: Path) -> None:
    stop = stop.resolve()
    folder = folder.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty: the first folder still in use ends the walk
            return
        folder = folder.parent


# -- grouping -------------------------------------------------------------------------------

def dedupe(
    engine: Any,
    folder: str | Path,
    *,
    kinds: Iterable[str] = DEFAULT_KINDS,
    progress: Callable[[str, int, int], None] | None = None,
) -> DedupeReport:
    """Find every group of copies in a folder and the best copy of each.

    Parameters
    ----------
    engine : Engine
        The collection the folder is indexed into (files already indexed are not re-read).
    folder : str or Path
        Searched recursively for images.
    kinds : iterable of str
        Copy kinds that link two files: any of ``exact``, ``near_duplicate``, ``partial``.
        With ``near_duplicate``, a crop keeping at least :data:`NEAR_DUPLICATE_SHARE` of the
        picture counts as one; ``partial`` also groups smaller crops and pasted-in copies,
        often a deliberate second picture rather than a duplicate.
    progress : callable, optional
        Called as ``progress(phase, done, total)``, ``phase`` being ``"index"`` then
        ``"group"``.

    Returns
    -------
    DedupeReport
        Groups of two or more files, largest first; files that could not be indexed or
        searched in ``failed``.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        When ``folder`` is missing or not a folder.
    ValueError
        When a kind is not a copy kind.
    """
    started = time.perf_counter()
    kinds = tuple(dict.fromkeys(kinds))
    wrong = [k for k in kinds if k not in COPY_KINDS]
    if not kinds or wrong:
        raise ValueError(
            f"dedupe kinds must be copy kinds {[k for k in KINDS if k in COPY_KINDS]}, "
            f"got {list(kinds)}"
        )
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"no such folder: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"not a folder: {root}")
    root = root.resolve()
    report = DedupeReport(folder=str(root), kinds=kinds)

    indexed = engine.index([str(root)], progress=_phase(progress, "index"))
    report.failed.extend(indexed.failed)
    failed = {str(Path(source).resolve()) for source, _ in indexed.failed}
    paths = [str(Path(p).resolve()) for p in expand_sources([str(root)])]
    paths = [p for p in paths if p not in failed]
    in_folder = set(paths)

    links: dict[tuple[str, str], dict] = {}
    listed: dict[str, int] = {}  # path -> id, from any match's locations
    own: dict[str, int] = {}     # path -> id of the bytes its own search found as exact
    step = _phase(progress, "group")
    widen = "near_duplicate" in kinds and "partial" not in kinds
    asked = (*kinds, "partial") if widen else kinds
    for done, path in enumerate(paths, 1):
        try:
            result = engine.search(path, kinds=asked, k=_MATCHES, fast=kinds == ("exact",))
        except PicoriginError as error:
            report.failed.append((path, str(error)))
            continue
        finally:
            if step:
                step(done, len(paths))
        for match in result.matches:
            if match.kind == "exact" and path in match.uris:
                own[path] = match.id
            link = _link(match)
            if match.kind not in kinds:  # a partial match asked for only to widen near-dups
                if min(link["query_share"], link["match_share"]) < NEAR_DUPLICATE_SHARE:
                    continue
                link["kind"] = "near_duplicate"
            for uri in match.uris:
                if uri in in_folder:
                    listed.setdefault(uri, match.id)
                    if uri != path:
                        links[(path, uri)] = link
    ids = {**listed, **own}
    searched = [p for p in paths if p in ids]
    report.images = len(searched)
    index_of = {p: i for i, p in enumerate(searched)}
    pairs = [(index_of[a], index_of[b]) for a, b in links if a in ids and b in ids]
    groups = [sorted(m) for m in origin.group_copies(pairs) if len(m) > 1]
    group_of = {searched[i]: n for n, members in enumerate(groups) for i in members}
    group_links: list[dict] = [{} for _ in groups]
    for (a, b), link in links.items():
        if a in group_of:
            group_links[group_of[a]][(a, b)] = link
    for members, inside in zip(groups, group_links):
        group = _best_copy(engine, root, [searched[i] for i in members], ids, inside)
        if group is not None:
            report.groups.append(group)
    report.groups.sort(key=lambda g: (-len(g.files), g.best.relative))
    report.seconds = time.perf_counter() - started
    return report


def _phase(progress, name: str):
    if progress is None:
        return None
    return lambda done, total: progress(name, done, total)


def _link(match: Any) -> dict:
    extra = match.extra
    return {
        "kind": match.kind,
        "query_share": float(extra.get("query_overlap") or 1.0),
        "match_share": float(extra.get("match_overlap") or 1.0),
        "query_box": extra.get("query_box"),
        "match_box": extra.get("match_box"),
    }


# -- the best copy --------------------------------------------------------------------------

def _best_copy(
    engine: Any,
    root: Path,
    paths: list[str],
    ids: dict[str, int],
    links: dict[tuple[str, str], dict],
) -> DedupeGroup | None:
    """The group of ``paths`` with its best copy first, or None when fewer than two remain."""
    records = {}
    for image_id in sorted({ids[p] for p in paths}):
        try:
            records[image_id] = engine.info(image_id)
        except NotFound:  # removed meanwhile by another writer: judged without it
            continue
    paths = [p for p in paths if ids[p] in records]
    if len(paths) < 2:
        return None
    files = {p: _file(engine, root, p, records[ids[p]]) for p in paths}
    pixels = {p: _thumb_pixels(files[p].thumbnail) for p in paths}

    grey = {p for p in paths if pixels[p] is not None and _is_grey(pixels[p])}
    framed: set[str] = set()
    cropped: dict[str, str] = {}
    for (query, match), link in links.items():
        if query not in files or match not in files:
            continue
        for this, other, share, box in (
            (query, match, link["query_share"], link["query_box"]),
            (match, query, link["match_share"], link["match_box"]),
        ):
            if share >= _WHOLE or box is None:
                continue
            # ``this`` holds more than ``other``: a plain frame, or picture ``other`` lacks.
            if _outside_is_flat(pixels[this], box, files[this]):
                framed.add(this)
            else:
                cropped.setdefault(other, this)
    for p in grey:
        files[p].notes.append("greyscale")
    for p in framed:
        files[p].notes.append("framed")
    for p, whole in cropped.items():
        files[p].notes.append(f"cropped (part of {files[whole].relative})")
    for p in paths:
        record = records[ids[p]]
        group = [records[ids[q]] for q in paths]
        if any(origin.is_upscale(record, records[ids[q]], group) for q in paths
               if ids[q] != ids[p]):
            files[p].notes.append("no more detail than a smaller copy")

    applied: list[tuple[str, str]] = []
    candidates = list(paths)
    for name, reason, drop in (
        ("colour", "in colour (a greyscale copy exists)", grey),
        ("no frame", "no added frame (a framed copy exists)", framed),
        ("not cropped", "not cropped (another copy shows only part of it)", set(cropped)),
    ):
        keep = [p for p in candidates if p not in drop]
        if keep and len(keep) < len(candidates):
            candidates = keep
            applied.append((name, reason))
    candidate_ids = sorted({ids[p] for p in candidates})
    if len(candidate_ids) == 1:
        # The edits seen in the others decided; likely_original would only judge one record.
        chosen_id = candidate_ids[0]
        decided_by = applied[-1][0] if applied else "identical copies"
        reasons = [reason for _, reason in reversed(applied)]
    else:
        # A framed copy's size is partly frame: it lends no resolution to the others.
        lenders = sorted({ids[p] for p in paths if p not in framed} | set(candidate_ids))
        judged = _with_inherited_detail([records[i] for i in candidate_ids],
                                        [records[i] for i in lenders])
        chosen = origin.likely_original(judged)
        chosen_id, decided_by = chosen["id"], chosen["decided_by"]
        reasons = [*chosen["evidence"], *(reason for _, reason in applied)]
    winners = [p for p in candidates if ids[p] == chosen_id]
    # Byte-identical files share one record: keep the shortest path, then the first by name.
    best = min(winners, key=lambda p: (len(files[p].relative), files[p].relative))
    if len(winners) > 1:
        reasons.append("byte-identical copies: kept the shortest path")

    files[best].best = True
    for p in paths:
        if p != best:
            files[p].kind = _kind_to(best, p, links, files)
    ordered = [files[best], *sorted((files[p] for p in paths if p != best),
                                    key=lambda f: f.relative)]
    return DedupeGroup(ordered, reasons, decided_by)


def _file(engine: Any, root: Path, path: str, record: dict) -> DedupeFile:
    try:
        thumbnail = engine.thumbnail(record["id"])
    except NotFound:  # the collection keeps none (thumbnail_side = 0): make one
        thumbnail = _make_thumbnail(path)
    return DedupeFile(
        path=path,
        relative=os.path.relpath(path, root),
        id=int(record["id"]),
        width=int(record["width"]),
        height=int(record["height"]),
        format=str(record["format"]),
        byte_size=int(record["byte_size"]),
        sha256=str(record["sha256"]),
        thumbnail=thumbnail,
    )


def _with_inherited_detail(candidates: list[dict], group: list[dict]) -> list[dict]:
    """Candidates with the resolution (``effective_side``) their copies show they carry.

    Of two copies one was made from the other. So the larger carries at least the detail of
    the smaller, unless it is an upscale of it (``origin.is_upscale``: then it carries exactly
    the smaller one's). Both rules only ever tie a copy with another, so size alone cannot
    decide between an upscale and its source, and the later tests (camera EXIF, date,
    recompression) do.
    """
    effective = {id(r): origin.effective_side(r, group) for r in group}

    def area(record: dict) -> int:
        return int(record.get("width") or 0) * int(record.get("height") or 0)

    out = []
    for record in candidates:
        shared = [effective[id(other)] for other in group
                  if other is not record
                  and (area(other) <= area(record) or origin.is_upscale(other, record, group))]
        best = max([effective[id(record)], *shared])
        out.append({**record, "effective_side": best,
                    "uri": (record.get("uris") or [None])[0]})
    return out


def _kind_to(best: str, path: str, links: dict, files: dict) -> str:
    """How ``path`` matches ``best``: the link between them, else its strongest link."""
    for key in ((best, path), (path, best)):
        if key in links:
            return links[key]["kind"]
    if files[path].sha256 == files[best].sha256:
        return "exact"
    seen = [link["kind"] for (a, b), link in links.items() if path in (a, b)]
    return min(seen, key=KINDS.index) if seen else "near_duplicate"


def _make_thumbnail(path: str) -> bytes | None:
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image.draft("RGB", (_THUMB_SIDE, _THUMB_SIDE))
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85)
            return out.getvalue()
    except Exception:  # noqa: BLE001 - a file unreadable now just has no thumbnail
        return None


def _thumb_pixels(jpeg: bytes | None) -> np.ndarray | None:
    """The thumbnail as an (H, W, 3) uint8 array, or None."""
    if not jpeg:
        return None
    from PIL import Image

    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB"))


def _is_grey(pixels: np.ndarray) -> bool:
    p = pixels.astype(np.int16)
    spread = np.abs(p[..., 0] - p[..., 1]) + np.abs(p[..., 1] - p[..., 2])
    return float(spread.mean()) < _GREY_LEVELS


def _outside_is_flat(pixels: np.ndarray | None, box: list, file: DedupeFile) -> bool:
    """Whether the part of an image outside ``box`` (its own pixels) is one flat colour.

    Judged on the thumbnail (H, W, 3), the box widened by 2 thumbnail pixels so the blend at
    its edge does not count. False when there is too little outside to judge.
    """
    if pixels is None:
        return False
    height, width = pixels.shape[:2]
    full_w, full_h = file.width, file.height
    if (full_w > full_h) != (width > height) and full_w != full_h:
        full_w, full_h = full_h, full_w  # stored size before the EXIF turn
    sx, sy = width / max(1, full_w), height / max(1, full_h)
    x0, y0, x1, y1 = (float(v) for v in box)
    mask = np.ones((height, width), bool)
    mask[max(0, int(y0 * sy) - 2): int(np.ceil(y1 * sy)) + 2,
         max(0, int(x0 * sx) - 2): int(np.ceil(x1 * sx)) + 2] = False
    outside = pixels[mask].astype(np.int16)
    if len(outside) < _MIN_EXTRA * height * width:
        return False
    median = np.median(outside, axis=0)
    close = np.all(np.abs(outside - median) <= _FLAT_LEVELS, axis=1)
    return float(close.mean()) >= _FLAT_SHARE


# -- the HTML report ------------------------------------------------------------------------

_CSS = """
body{font:15px/1.4 system-ui,sans-serif;margin:0;padding:1rem;background:#f4f4f2;color:#222}
h1{font-size:1.4rem;margin:.2rem 0}
.summary{color:#555;margin-bottom:1rem}
.group{background:#fff;border-radius:8px;padding:.8rem 1rem;margin:0 0 1rem;
 box-shadow:0 1px 3px rgba(0,0,0,.12)}
.group h2{font-size:1.05rem;margin:0 0 .5rem}
.copies{display:flex;flex-wrap:wrap;gap:.8rem}
figure{margin:0;width:200px;border:3px solid transparent;border-radius:6px;padding:4px}
figure.best{border-color:#1a7f37;background:#eef8f0}
figure img{display:block;max-width:100%;max-height:180px;margin:0 auto;background:#ddd}
figcaption{font-size:.8rem;word-break:break-all;margin-top:.3rem}
.badge{display:inline-block;font-size:.72rem;padding:0 .4rem;border-radius:9px;
 background:#e5e5e5;margin:.1rem .2rem 0 0;word-break:normal}
.best .keep{background:#1a7f37;color:#fff;font-weight:600}
.note{background:#fde8c8}
ul.reasons{margin:.5rem 0 0;padding-left:1.2rem;font-size:.88rem}
.failed{color:#a40000}
@media (max-width:480px){figure{width:calc(50% - .6rem)}}
"""


def _html(report: DedupeReport) -> str:
    e = html.escape
    total = sum(f.byte_size for f in report.duplicates)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        # Self-contained: nothing may load from anywhere, images are data: URIs.
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>Duplicates in {e(report.folder)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Duplicates in {e(report.folder)}</h1>",
        f"<p class=summary>{len(report.groups)} groups of copies among {report.images} images; "
        f"{len(report.duplicates)} files ({total / 1e6:.1f} MB) are not the best copy. "
        f"Kinds: {e(', '.join(report.kinds))}.</p>",
    ]
    for number, group in enumerate(report.groups, 1):
        parts.append(f"<section class=group id=group-{number}><h2>Group {number}: "
                     f"{len(group.files)} copies, keep {e(group.best.relative)}</h2>"
                     "<div class=copies>")
        for file in group.files:
            src = ("data:image/jpeg;base64," + base64.b64encode(file.thumbnail).decode()
                   if file.thumbnail else "")
            badges = ["<span class='badge keep'>keep</span>" if file.best else
                      f"<span class=badge>{e(file.kind or '')}</span>"]
            badges += [f"<span class='badge note'>{e(n)}</span>" for n in file.notes]
            parts.append(
                f"<figure class={'best' if file.best else 'copy'}>"
                f"<img src=\"{src}\" alt=\"{e(file.relative)}\">"
                f"<figcaption>{''.join(badges)}<br>{e(file.relative)}<br>"
                f"{file.width}x{file.height} {e(file.format)}, {_size(file.byte_size)}"
                "</figcaption></figure>"
            )
        reasons = "".join(f"<li>{e(r)}</li>" for r in group.reasons) or "<li>all equal</li>"
        parts.append(f"</div><ul class=reasons>{reasons}</ul></section>")
    if report.failed:
        parts.append("<h2 class=failed>Could not be read</h2><ul class=failed>")
        parts += [f"<li>{e(s)}: {e(r)}</li>" for s, r in report.failed]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _size(byte_size: int) -> str:
    return f"{byte_size / 1e6:.1f} MB" if byte_size >= 1e6 else f"{byte_size / 1e3:.0f} kB"
