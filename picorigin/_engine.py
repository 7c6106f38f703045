"""The engine: add, index, search, remove, compare. Every surface (library, CLI, HTTP) uses it.

Data flows one way. A source (path, URL or bytes) is read once and hashed; an image already in
the catalog by SHA-256 only gains a location. Otherwise it is decoded once, at the smallest size
the signals need (JPEG in the DCT domain), and each signal is computed from that working image.
The catalog commits the record; the fingerprint index and the stages follow it.

A search runs the same steps on the query, asks the index for candidates in every orientation
that can matter, and fuses one ranked list: exact copies (same bytes, or same decoded pixels),
then near-duplicates by fingerprint distance.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import _imaging
from ._catalog import Catalog
from ._errors import ImageError, NotFound, PicoriginError
from ._features import fingerprint
from ._index.base import BinaryIndex
from ._index.faiss_binary import FaissBinaryIndex
from ._models import COPY_KINDS, KINDS, IndexReport, Match, SearchResult
from ._provenance import origin
from ._settings import resolve_settings

__all__ = ["Engine", "default_data_folder"]

logger = logging.getLogger("picorigin")

# The fingerprint needs little: a JPEG is decoded at 1/8 scale when that still leaves this much.
FINGERPRINT_SIDE = 128
_INDEX_FILE = "fingerprints.faissbin"
_INDEX_STATE = "fingerprints.json"
_ORIENTATION_CODES = {g: i for i, g in enumerate(fingerprint.ORIENTATIONS)}


def default_data_folder() -> Path:
    """``$PICORIGIN_DB`` if set, else ``./picorigin-data``."""
    return Path(os.environ.get("PICORIGIN_DB") or "picorigin-data")


@dataclass
class _Known:
    """A source whose bytes are already catalogued: it only adds a location."""

    uri: str
    sha256: str
    image_id: int
    location: dict[str, Any]


@dataclass
class _Analysed:
    """Everything computed for a new image, ready for the catalog and the index."""

    uri: str
    record: dict[str, Any]
    location: dict[str, Any]
    thumbnail: bytes | None


@dataclass
class _Failed:
    source: str
    reason: str


# -- analysis: runs in worker processes, so it takes and returns plain picklable data ---------

_worker_catalog: Catalog | None = None


def _init_worker(catalog_path: str) -> None:
    global _worker_catalog
    _worker_catalog = Catalog(Path(catalog_path))


def _analyse_in_worker(source: str, settings: dict[str, Any]) -> _Known | _Analysed | _Failed:
    known = _worker_catalog.find_by_sha256 if _worker_catalog else None
    return analyse_safely(source, settings, known=known)


def _file_stat(source: Any) -> tuple[int, float] | None:
    if isinstance(source, (str, Path)) and not str(source).startswith(("http://", "https://")):
        try:
            stat = os.stat(source)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime
    return None


def analyse(
    source: Any,
    settings: dict[str, Any],
    *,
    known: Callable[[str], int | None] | None = None,
    uri: str | None = None,
) -> _Known | _Analysed:
    """Read, hash, decode and fingerprint one source.

    Raises
    ------
    ImageError, FetchError
    """
    stat = _file_stat(source)
    read_uri, data = _imaging.read_source(source, settings)
    uri = uri or read_uri
    location = {"uri": uri}
    if stat is not None:
        location.update(file_size=stat[0], file_mtime=stat[1])
    sha256 = hashlib.sha256(data).hexdigest()
    image_id = known(sha256) if known else None
    if image_id is not None:
        return _Known(uri, sha256, image_id, location)
    decoded = _decode(data, uri, settings)
    code = fingerprint.compute(decoded.image)
    record = {
        "sha256": sha256,
        "pixel_sha256": decoded.pixel_sha256,
        "width": decoded.width,
        "height": decoded.height,
        "format": decoded.format,
        "byte_size": len(data),
        "fingerprint": code.code.tobytes(),
        "orientation": _ORIENTATION_CODES[code.orientation],
        "metadata": decoded.metadata,
        "signals": _detail_signals(data, uri, settings) if settings["measure_detail"] else {},
    }
    return _Analysed(uri, record, location, _thumbnail(decoded.image, settings["thumbnail_side"]))


def _detail_signals(data: bytes, uri: str, settings: dict[str, Any]) -> dict[str, Any]:
    """How much real detail the image holds, and how hard it was compressed: the evidence that
    tells a genuine larger version from an upscale, and an original from a recompressed copy."""
    full = _imaging.decode(
        data,
        source=uri,
        working_side=origin.DETAIL_SIDE,
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
    )
    signals: dict[str, Any] = {"detail": round(origin.compute_detail(full.image), 4)}
    quality = origin.jpeg_quality(data)
    if quality is not None:
        signals["jpeg_quality"] = quality
    return signals


def analyse_safely(source: Any, settings: dict[str, Any], **kwargs: Any) -> _Known | _Analysed | _Failed:
    """``analyse`` for batches: a bad source becomes a ``_Failed`` with its reason."""
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        return analyse(source, settings, **kwargs)
    except PicoriginError as error:
        return _Failed(label, str(error))
    except (OSError, ValueError, MemoryError) as error:  # unreadable file, odd decoder failure
        return _Failed(label, f"{type(error).__name__}: {error}")


def _decode(data: bytes, uri: str, settings: dict[str, Any]) -> "_imaging.Decoded":
    return _imaging.decode(
        data,
        source=uri,
        working_side=FINGERPRINT_SIDE,
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
    )


def _thumbnail(image, side: int) -> bytes | None:
    if side <= 0:
        return None
    thumb = image.copy()
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=80, optimize=True)
    return buffer.getvalue()


# -- the engine ---------------------------------------------------------------------------------


class Engine:
    """A picorigin collection in one data folder.

    Parameters
    ----------
    path : str or Path, optional
        The data folder (created if missing). Default: ``$PICORIGIN_DB`` or ``./picorigin-data``.
    settings : dict, optional
        Overrides of the settings table (see ``picorigin settings``).
    index : BinaryIndex, optional
        The fingerprint index backend; default FAISS, kept in the data folder.

    Notes
    -----
    Thread-safe: searches run concurrently; writes are serialised. One process should write to a
    data folder at a time.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: dict[str, Any] | None = None,
        index: BinaryIndex | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_data_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings = resolve_settings(settings)
        self._catalog = Catalog(self.path / "catalog.sqlite")
        self._lock = threading.RLock()
        self._persistent = index is None
        self._index = index if index is not None else self._open_index()
        if index is not None and len(index) == 0:
            self._rebuild_index()
        self._last_checkpoint = time.monotonic()
        self._saved_epoch = self._catalog.epoch if self._persistent else -1

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Checkpoint the index and close the catalog."""
        with self._lock:
            if self._index is None:
                return
            self.checkpoint()
            self._catalog.close()
            self._index = None

    def _open_index(self) -> BinaryIndex:
        state_path = self.path / _INDEX_STATE
        index_path = self.path / _INDEX_FILE
        try:
            state = json.loads(state_path.read_text())
            if state.get("epoch") == self._catalog.epoch and state.get("bits") == fingerprint.BITS:
                return FaissBinaryIndex.load(index_path, fingerprint.BITS)
            logger.info("index checkpoint is older than the catalog: rebuilding it")
        except (OSError, ValueError, RuntimeError):
            logger.info("no usable index checkpoint: rebuilding it from the catalog")
        self._index = FaissBinaryIndex(fingerprint.BITS)
        self._rebuild_index()
        return self._index

    def _rebuild_index(self) -> None:
        for ids, codes in self._catalog.fingerprints():
            self._index.add(
                np.asarray(ids, np.int64),
                np.frombuffer(b"".join(codes), np.uint8).reshape(len(ids), -1),
            )

    def checkpoint(self) -> None:
        """Save the index files if the catalog changed since the last save."""
        with self._lock:
            if not self._persistent:
                return
            epoch = self._catalog.epoch
            if epoch == self._saved_epoch:
                return
            self._index.save(self.path / _INDEX_FILE)
            state = {"epoch": epoch, "bits": fingerprint.BITS, "count": len(self._index)}
            tmp = self.path / (_INDEX_STATE + ".tmp")
            tmp.write_text(json.dumps(state))
            tmp.replace(self.path / _INDEX_STATE)
            self._saved_epoch = epoch
            self._last_checkpoint = time.monotonic()

    def _maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint >= self.settings["checkpoint_seconds"]:
            self.checkpoint()

    # -- writing -----------------------------------------------------------------------------

    def _commit(self, result: _Known | _Analysed) -> tuple[int, bool]:
        """Write one analysed source to the catalog and the index; return (id, created)."""
        with self._lock:
            if isinstance(result, _Known):
                self._catalog.add_location(result.image_id, result.location)
                return result.image_id, False
            image_id, created = self._catalog.insert_image(
                result.record, result.location, result.thumbnail
            )
            if created:
                code = np.frombuffer(result.record["fingerprint"], np.uint8)[None, :]
                self._index.add(np.array([image_id], np.int64), code)
            return image_id, created

    def add(
        self,
        source: str | Path | bytes,
        *,
        uri: str | None = None,
        sighting: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """Add one image; return its id (the existing id if its bytes are already indexed).

        Parameters
        ----------
        source : path, http(s) URL, or bytes
        uri : str, optional
            Where the image lives, recorded as its location (default: the path or URL;
            ``"<bytes>"`` for bytes with no uri).
        sighting : dict, optional
            Where it was seen: any of page_url, page_title, alt, caption, author, license,
            published.
        metadata : dict, optional
            Facts supplied by the caller (creator, title, ...); they fill gaps in what the
            file's own EXIF/IPTC/XMP says.

        Raises
        ------
        ImageError, FetchError
            When the source cannot be read or decoded.
        """
        result = analyse(source, self.settings, known=self._catalog.find_by_sha256, uri=uri)
        if sighting:
            result.location.update({k: v for k, v in sighting.items() if v is not None})
        if metadata and isinstance(result, _Analysed):
            # What the file states wins; what the caller supplies fills the gaps, marked so.
            supplied = {k: v for k, v in metadata.items() if v and k not in result.record["metadata"]}
            for key in ("creator", "copyright", "credit"):
                if key in supplied:
                    supplied[f"{key}_source"] = "supplied"
            result.record["metadata"] = {**result.record["metadata"], **supplied}
        image_id, _ = self._commit(result)
        self._maybe_checkpoint()
        return image_id

    def index(
        self,
        sources: Iterable[str | Path],
        *,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Index files, folders (recursively), URLs and list files; resume where it stopped.

        A source whose path, size and modification time are already recorded is skipped without
        being read. A bad source is reported in ``IndexReport.failed`` and the rest go on.
        """
        started = time.perf_counter()
        report = IndexReport()
        todo: list[str] = []
        for source in _imaging.expand_sources([str(s) for s in sources]):
            stat = _file_stat(source)
            if stat is not None:
                uri = str(Path(source).resolve())
                if self._catalog.unchanged_file(uri, *stat) is not None:
                    self._catalog.touch_location(uri)
                    report.skipped += 1
                    continue
            todo.append(source)
        total = len(todo) + report.skipped
        done = report.skipped
        if progress:
            progress(done, total)
        workers = workers or self.settings["workers"] or os.cpu_count() or 1
        for result in self._analyse_all(todo, workers):
            if isinstance(result, _Failed):
                report.failed.append((result.source, result.reason))
                logger.warning("could not index %s: %s", result.source, result.reason)
            else:
                _, created = self._commit(result)
                if created:
                    report.indexed += 1
                else:
                    report.skipped += 1
                self._maybe_checkpoint()
            done += 1
            if progress:
                progress(done, total)
        self.checkpoint()
        report.seconds = time.perf_counter() - started
        return report

    def _analyse_all(
        self, sources: list[str], workers: int
    ) -> Iterator[_Known | _Analysed | _Failed]:
        if workers <= 1 or len(sources) < 4:
            for source in sources:
                yield analyse_safely(source, self.settings, known=self._catalog.find_by_sha256)
            return
        yield from self._analyse_in_pool(sources, workers)

    def _analyse_in_pool(
        self, sources: list[str], workers: int
    ) -> Iterator[_Known | _Analysed | _Failed]:
        # A bounded window of futures: memory stays flat for any collection size, and a worker
        # that dies (a decoder crash) loses only the files in flight, which are retried alone.
        pending = list(reversed(sources))
        retry_alone: list[str] = []
        while pending or retry_alone:
            window = 1 if retry_alone and not pending else workers * 4
            queue = retry_alone if retry_alone and not pending else pending
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("forkserver"),
                initializer=_init_worker,
                initargs=(str(self._catalog.path),),
            ) as pool:
                running: dict[Future, str] = {}
                try:
                    while queue or running:
                        while queue and len(running) < window:
                            source = queue.pop()
                            running[pool.submit(_analyse_in_worker, source, self.settings)] = source
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            source = running.pop(future)
                            yield future.result()
                except BrokenProcessPool:
                    crashed = list(running.values())
                    if window == 1:
                        for source in crashed:
                            yield _Failed(source, "the decoder crashed on this file")
                    else:
                        retry_alone.extend(crashed)
                    continue

    def remove(self, image_id: int) -> None:
        """Remove an image, its locations and its signals. Raises NotFound."""
        with self._lock:
            if not self._catalog.remove_image(int(image_id)):
                raise NotFound(f"no indexed image has id {image_id}")
            self._index.remove(np.array([int(image_id)], np.int64))
            self._maybe_checkpoint()

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        """Record that an image is no longer at ``uri`` (on ``page_url``)."""
        return self._catalog.mark_removed(uri, page_url)

    # -- reading -----------------------------------------------------------------------------

    def search(
        self,
        source: str | Path | bytes,
        *,
        k: int = 10,
        kinds: Iterable[str] | None = None,
    ) -> SearchResult:
        """Find copies of an image.

        Parameters
        ----------
        source : path, http(s) URL, or bytes
        k : int
            Most matches returned.
        kinds : iterable of str, optional
            Only these kinds (``exact``, ``near_duplicate``, ``partial``, ``similar``).

        Raises
        ------
        ImageError, FetchError
            When the query cannot be read or decoded.
        """
        started = time.perf_counter()
        label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        uri, data = _imaging.read_source(source, self.settings)
        decoded = _decode(data, uri, self.settings)
        sha256 = hashlib.sha256(data).hexdigest()
        wanted = set(kinds) if kinds else set(KINDS)
        unknown = wanted - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind(s) {sorted(unknown)}; kinds are {list(KINDS)}")

        found: dict[int, tuple[str, float, int, fingerprint.Dihedral]] = {}
        identity = (False, False, False)
        exact_ids = set(self._catalog.find_by_pixel_sha256(decoded.pixel_sha256))
        by_bytes = self._catalog.find_by_sha256(sha256)
        if by_bytes is not None:
            exact_ids.add(by_bytes)
        for image_id in exact_ids:
            found[image_id] = ("exact", 1.0, 0, identity)

        radius = int(self.settings["near_duplicate_distance"])
        variants = fingerprint.query_coefficients(decoded.image)
        first = [fingerprint.probes(coeffs) for coeffs in variants]
        probes = [probe for probes_of_variant in first for probe in probes_of_variant]
        hits = self._search_index(probes, radius)
        if not hits:
            # The canonical orientation can be misjudged on a heavily edited copy (0.5 % of the
            # benchmark's): before answering "no copy", try every other orientation.
            probes = [
                (g, code)
                for coeffs, tried in zip(variants, first)
                for g, code in fingerprint.probes(coeffs, exhaustive=True)
                if g not in {element for element, _ in tried}
            ]
            hits = self._search_index(probes, radius)
        for row, image_id, distance in hits:
            previous = found.get(image_id)
            if previous is not None and (previous[0] == "exact" or previous[2] <= distance):
                continue
            found[image_id] = ("near_duplicate", _distance_score(distance), distance, probes[row][0])

        records = self._catalog.images(found)
        matches = []
        for image_id, (kind, score, distance, probe) in found.items():
            record = records.get(image_id)
            if record is None or kind not in wanted:
                continue  # removed between the index search and the catalog read
            if kind == "exact":
                orientation = "identity"
            else:
                # The probe took the query, and the stored orientation took the indexed image, to
                # the same canonical form: query = probe^-1(stored(indexed)).
                element = fingerprint.compose(
                    fingerprint.ORIENTATIONS[record["orientation"]], fingerprint.inverse(probe)
                )
                orientation = fingerprint.orientation_name(element)
            matches.append(
                _match(record, kind, score, distance, orientation, decoded.width * decoded.height)
            )
        matches.sort(key=lambda m: (KINDS.index(m.kind), -m.score, m.id))
        matches = matches[:k]
        likely_original = self._add_provenance(matches, records, decoded, data, uri)
        return SearchResult(
            query=label,
            matches=matches,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            width=decoded.width,
            height=decoded.height,
            stages=["exact", "fingerprint"],
            extra={"likely_original": likely_original} if likely_original else {},
        )

    def _add_provenance(
        self,
        matches: list[Match],
        records: dict[int, dict[str, Any]],
        decoded: "_imaging.Decoded",
        data: bytes,
        uri: str,
    ) -> dict[str, Any] | None:
        """Attach pages, creator, larger/upscaled to each match; return the likely original."""
        if not matches:
            return None
        query: dict[str, Any] = {"width": decoded.width, "height": decoded.height}
        query_pixels = decoded.width * decoded.height
        larger = any(m.kind in COPY_KINDS and m.width * m.height > query_pixels for m in matches)
        if larger and self.settings["measure_detail"]:
            # Only then does it matter whether the query itself is an upscale.
            query["detail"] = _detail_signals(data, uri, self.settings)["detail"]
        found = origin.annotate(query, [m.to_dict() for m in matches], records)
        for match in matches:
            facts = found["matches"].get(match.id)
            if facts is None:
                continue
            match.larger_than_query = facts["larger_than_query"]
            match.creator = facts["creator"]
            match.extra.update(pages=facts["pages"], upscaled=facts["upscaled"])
        return found["likely_original"]

    def _search_index(self, probes, radius: int) -> list[tuple[int, int, int]]:
        if not probes:
            return []
        with self._lock:
            return self._index.search(np.stack([code for _, code in probes]), radius)

    def info(self, image_id: int) -> dict[str, Any]:
        """The full record of an image: size, format, metadata, every location. Raises NotFound."""
        record = self._catalog.images([int(image_id)]).get(int(image_id))
        if record is None:
            raise NotFound(f"no indexed image has id {image_id}")
        del record["orientation"]  # the canonicalising element: internal, not a fact of the image
        record["uris"] = [loc["uri"] for loc in record["locations"]]
        record["creator"] = origin.creator([record])
        return record

    def sightings(self, image_id: int) -> list[dict[str, Any]]:
        """Every place an image was seen. Raises NotFound."""
        return self.info(image_id)["locations"]

    def thumbnail(self, image_id: int) -> bytes:
        """The image's JPEG thumbnail. Raises NotFound."""
        jpeg = self._catalog.thumbnail(int(image_id))
        if jpeg is None:
            raise NotFound(f"no thumbnail for image id {image_id}")
        return jpeg

    def list_images(self, offset: int = 0, limit: int = 50, q: str | None = None) -> dict[str, Any]:
        """A page of images, newest first; ``q`` filters by a substring of a location or creator."""
        total, ids = self._catalog.list_ids(max(0, offset), max(1, min(limit, 500)), q)
        records = self._catalog.images(ids)
        return {"total": total, "offset": offset, "images": [self.info(i) for i in ids if i in records]}

    def stats(self) -> dict[str, Any]:
        """Counts, index size and the data folder's size on disk."""
        counts = self._catalog.counts()
        disk = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
        return {
            "data_folder": str(self.path.resolve()),
            "images": counts["images"],
            "locations": counts["locations"],
            "bytes_indexed": counts["bytes"],
            "disk_bytes": disk,
            "index": {
                "backend": type(self._index).__name__,
                "fingerprints": len(self._index),
                "memory_bytes": self._index.memory_bytes(),
            },
        }


def _distance_score(distance: int) -> float:
    # 0 bits apart scores 1; 128 bits, what two unrelated images average, scores 0.
    return max(0.0, 1.0 - distance / (fingerprint.BITS / 2))


def _match(
    record: dict[str, Any], kind: str, score: float, distance: int, orientation: str, query_area: int
) -> Match:
    live = [loc for loc in record["locations"] if not loc["removed_at"]]
    uris = list(dict.fromkeys(loc["uri"] for loc in (live or record["locations"])))
    return Match(
        id=record["id"],
        kind=kind,
        score=score,
        uri=uris[0] if uris else None,
        uris=uris,
        width=record["width"],
        height=record["height"],
        format=record["format"],
        larger_than_query=record["width"] * record["height"] > query_area,
        orientation=orientation,
        distance=distance,
        creator=origin.creator([record]),
        metadata=record["metadata"],
    )

