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
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from . import _crop, _framed, _imaging, _stages
from ._analysis import (
    BATCH,
    Analysed,
    Failed,
    Known,
    analyse,
    analyse_batch,
    analyse_batch_in_worker,
    decode,
    detail_signals,
    file_stat,
    init_worker,
    stage_signal,
    working_side,
)
from ._catalog import Catalog
from ._errors import NotFound, PicoriginError, StageUnavailable
from ._features import fingerprint
from ._index.base import BinaryIndex
from ._index.faiss_binary import FaissBinaryIndex
from ._models import COPY_KINDS, KINDS, IndexReport, Match, SearchResult
from ._provenance import origin
from ._settings import resolve_settings

__all__ = ["Engine", "default_data_folder"]

logger = logging.getLogger("picorigin")

# compare() aligns images decoded this large: finer changed regions than the 640 px stages see.
_COMPARE_SIDE = 1024
# A similar match this likely (calibrated score), among the best few, is re-verified by
# keypoints with a lower bar (see Engine._confirm_similar).
_CONFIRM_SCORE = 0.9
_CONFIRM_TOP = 3
_CONFIRM_INLIERS = 8
_INDEX_FILE = "fingerprints.faissbin"
_INDEX_STATE = "fingerprints.json"


def default_data_folder() -> Path:
    """``$PICORIGIN_DB`` if set, else ``./picorigin-data``."""
    return Path(os.environ.get("PICORIGIN_DB") or "picorigin-data")


@dataclass
class _Found:
    """One image a search found, before it is joined with its catalog record."""

    kind: str
    score: float
    distance: int | None = None
    orientation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


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
        self._stages, self.stages_off = _stages.open_stages(self.path, self.settings)

    @property
    def stages(self) -> list[str]:
        """The stages running beside the fingerprint (``local``, ``deep``)."""
        return list(self._stages)

    def stage(self, name: str) -> Any:
        """A running stage, for its own maintenance (``vocab train``). Raises StageUnavailable."""
        if name not in self._stages:
            reason = self.stages_off.get(name, "it is not enabled (setting stages)")
            raise StageUnavailable(f"the {name} stage is off: {reason}")
        return self._stages[name]

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
            for stage in self._stages.values():
                stage.close()
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
            for stage in self._stages.values():
                stage.save()
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

    def _commit(self, result: Known | Analysed) -> tuple[int, bool]:
        """Write one analysed source to the catalog and the index; return (id, created)."""
        with self._lock:
            if isinstance(result, Known):
                self._catalog.add_location(result.image_id, result.location)
                return result.image_id, False
            image_id, created = self._catalog.insert_image(
                result.record, result.location, result.thumbnail
            )
            if created:
                code = np.frombuffer(result.record["fingerprint"], np.uint8)[None, :]
                self._index.add(np.array([image_id], np.int64), code)
                for name, signal in result.signals.items():
                    self._stages[name].add([image_id], [signal])
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
        result = analyse(
            source,
            self.settings,
            known=self._catalog.find_by_sha256,
            uri=uri,
            stages=tuple(self._stages),
        )
        if sighting:
            result.location.update({k: v for k, v in sighting.items() if v is not None})
        if metadata and isinstance(result, Analysed):
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
            stat = file_stat(source)
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
            if isinstance(result, Failed):
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
    ) -> Iterator[Known | Analysed | Failed]:
        if workers <= 1 or len(sources) < 4:
            for start in range(0, len(sources), BATCH):
                yield from analyse_batch(
                    sources[start : start + BATCH],
                    self.settings,
                    known=self._catalog.find_by_sha256,
                    stages=tuple(self._stages),
                )
            return
        yield from self._analyse_in_pool(sources, workers)

    def _analyse_in_pool(
        self, sources: list[str], workers: int
    ) -> Iterator[Known | Analysed | Failed]:
        # A bounded window of batches: memory stays flat for any collection size, and a worker
        # that dies (a decoder crash) loses only the files in flight, which are retried alone.
        pending = [sources[i : i + BATCH] for i in range(0, len(sources), BATCH)][::-1]
        retry_alone: list[list[str]] = []
        while pending or retry_alone:
            alone = bool(retry_alone) and not pending
            window = 1 if alone else workers * 2
            queue = retry_alone if alone else pending
            with ProcessPoolExecutor(
                max_workers=workers,
                mp_context=get_context("forkserver"),
                initializer=init_worker,
                initargs=(str(self._catalog.path),),
            ) as pool:
                running: dict[Future, list[str]] = {}
                try:
                    while queue or running:
                        while queue and len(running) < window:
                            batch = queue.pop()
                            future = pool.submit(
                                analyse_batch_in_worker, batch, self.settings, tuple(self._stages)
                            )
                            running[future] = batch
                        finished, _ = wait(running, return_when=FIRST_COMPLETED)
                        for future in finished:
                            running.pop(future)
                            yield from future.result()
                except BrokenProcessPool:
                    crashed = [source for batch in running.values() for source in batch]
                    if alone:
                        for source in crashed:
                            yield Failed(source, "the decoder crashed on this file")
                    else:
                        retry_alone.extend([source] for source in crashed)
                    continue

    def missing_signals(self) -> dict[str, list[int]]:
        """Per stage, the catalogued images it holds no signal for."""
        catalogued = self._catalog.all_ids()
        missing = {name: sorted(catalogued - stage.ids()) for name, stage in self._stages.items()}
        return {name: ids for name, ids in missing.items() if ids}

    def reindex(self, *, progress: Callable[[int, int], None] | None = None) -> IndexReport:
        """Compute the stage signals that catalogued images lack, re-reading each image from
        the first of its locations that can still be read (a file, or a URL)."""
        started = time.perf_counter()
        report = IndexReport()
        missing = self.missing_signals()
        todo: dict[int, list[str]] = {}
        for name, ids in missing.items():
            for image_id in ids:
                todo.setdefault(image_id, []).append(name)
        records = self._catalog.images(todo)
        for done, (image_id, names) in enumerate(sorted(todo.items()), 1):
            reason = "no location of it can be read any more"
            for location in records.get(image_id, {}).get("locations", []):
                try:
                    uri, data = _imaging.read_source(location["uri"], self.settings)
                    if hashlib.sha256(data).hexdigest() != records[image_id]["sha256"]:
                        reason = f"{uri} now holds other content"
                        continue
                    decoded = decode(data, uri, self.settings, working_side(names))
                    with self._lock:
                        for name in names:
                            self._stages[name].add([image_id], [stage_signal(name, decoded)])
                    report.indexed += 1
                    break
                except PicoriginError as error:
                    reason = str(error)
            else:
                report.failed.append((f"image {image_id}", reason))
            if progress:
                progress(done, len(todo))
        self.checkpoint()
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, image_id: int) -> None:
        """Remove an image, its locations and its signals. Raises NotFound."""
        with self._lock:
            if not self._catalog.remove_image(int(image_id)):
                raise NotFound(f"no indexed image has id {image_id}")
            self._index.remove(np.array([int(image_id)], np.int64))
            for stage in self._stages.values():
                stage.remove([int(image_id)])
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
        label: str | None = None,
        colour: str | None = None,
        fast: bool = False,
    ) -> SearchResult:
        """Find copies of an image, and images that look like it.

        Parameters
        ----------
        source : path, http(s) URL, or bytes
        k : int
            Most matches returned: copies first (exact, near-duplicate, partial), then similar.
        kinds : iterable of str, optional
            Only these kinds (``exact``, ``near_duplicate``, ``partial``, ``similar``).
        label : str, optional
            Only images whose best-guess labels include this (``dog``, ``fox squirrel``, ...);
            needs the deep stage.
        colour : str, optional
            Only images with at least 10 % of this colour (a name or ``#rrggbb``); needs the
            deep stage.
        fast : bool
            The fingerprint only: exact and near-duplicate copies, no stages.

        Raises
        ------
        ImageError, FetchError
            When the query cannot be read or decoded.
        StageUnavailable
            When ``label`` or ``colour`` is asked for without the deep stage.
        """
        started = time.perf_counter()
        query_label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        wanted = set(kinds) if kinds else set(KINDS)
        unknown = wanted - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind(s) {sorted(unknown)}; kinds are {list(KINDS)}")
        stages = {} if fast else self._stages
        if (label or colour) and "deep" not in stages:
            reason = self.stages_off.get("deep", "it is not enabled (setting stages)")
            raise StageUnavailable(f"--label and --colour need the deep stage, which is off: {reason}")
        uri, data = _imaging.read_source(source, self.settings)
        decoded = decode(data, uri, self.settings, working_side(stages))
        found: dict[int, _Found] = {}
        self._find_exact(data, decoded, found)
        self._find_near_duplicates(decoded, found)
        extra: dict[str, Any] = {}
        local = None
        if "local" in stages and wanted & {"partial", "near_duplicate"}:
            local = stage_signal("local", decoded, query=True)
            self._find_partial(local, found, k)
        if not fast and wanted & {"partial", "near_duplicate"}:
            self._find_framed(decoded, found, local)
        if "deep" in stages:
            self._find_similar(decoded, found, k, wanted, label, colour, extra)
            if local is not None:
                self._confirm_similar(data, uri, found)

        records = self._catalog.images(found)
        query_area = decoded.width * decoded.height
        matches = [
            _match(records[image_id], hit, query_area)
            for image_id, hit in found.items()
            if image_id in records and hit.kind in wanted  # records: not removed meanwhile
        ]
        matches.sort(key=lambda m: (KINDS.index(m.kind), -m.score, m.id))
        matches = matches[:k]
        likely_original = self._add_provenance(matches, records, decoded, data, uri)
        if likely_original:
            extra["likely_original"] = likely_original
        if self.stages_off and not fast:
            extra["stages_off"] = dict(self.stages_off)
        return SearchResult(
            query=query_label,
            matches=matches,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            width=decoded.width,
            height=decoded.height,
            stages=["exact", "fingerprint", *stages],
            extra=extra,
        )

    def _find_exact(self, data: bytes, decoded: "_imaging.Decoded", found: dict) -> None:
        """Same bytes, or same decoded pixels."""
        ids = set(self._catalog.find_by_pixel_sha256(decoded.pixel_sha256))
        by_bytes = self._catalog.find_by_sha256(hashlib.sha256(data).hexdigest())
        if by_bytes is not None:
            ids.add(by_bytes)
        for image_id in ids:
            found[image_id] = _Found("exact", 1.0, distance=0, orientation="identity")

    def _find_near_duplicates(self, decoded: "_imaging.Decoded", found: dict) -> None:
        """Fingerprints within ``near_duplicate_distance``, in every orientation that matters."""
        radius = int(self.settings["near_duplicate_distance"])
        variants = fingerprint.query_coefficients(decoded.image)
        first = [fingerprint.probes(coeffs) for coeffs in variants]
        probes = [probe for probes_of_variant in first for probe in probes_of_variant]
        best = self._fingerprint_hits(probes, radius)
        if not best:
            # The canonical orientation can be misjudged on a heavily edited copy (0.5 % of the
            # benchmark's): before answering "no copy", try every other orientation.
            probes = [
                (g, code)
                for coeffs, tried in zip(variants, first)
                for g, code in fingerprint.probes(coeffs, exhaustive=True)
                if g not in {element for element, _ in tried}
            ]
            best = self._fingerprint_hits(probes, radius)
        for image_id, (distance, orientation, _) in best.items():
            if image_id not in found:
                found[image_id] = _Found("near_duplicate", fingerprint.similarity(distance),
                                         distance=distance, orientation=orientation)

    def _find_framed(self, decoded: "_imaging.Decoded", found: dict, local: Any) -> None:
        """Pictures framed inside the query (pasted in, screenshotted): window fingerprints.

        A hit the local stage can also verify (a bar of 8 inliers: the fingerprint already
        vouches for it) takes that stage's finer geometry; otherwise the window is the box.
        """
        boxes, probes = _framed.window_probes(decoded.image)
        radius = int(self.settings["near_duplicate_distance"])
        best = self._fingerprint_hits([(g, code) for _, g, code in probes], radius)
        best = {i: hit for i, hit in best.items() if i not in found}
        if not best:
            return
        verified = {}
        if local is not None:
            for hit in self._stages["local"].confirm(local, list(best),
                                                     min_inliers=_CONFIRM_INLIERS):
                image_id, result = _verified(hit)
                verified[image_id] = result
        sizes = self._catalog.images(best)
        query_size = (decoded.width, decoded.height)
        for image_id, (distance, orientation, row) in best.items():
            if image_id not in sizes:
                continue
            hit = verified.get(image_id)
            if hit is None:
                x0, y0, x1, y1 = boxes[probes[row][0]]
                box = [x0 * decoded.width, y0 * decoded.height,
                       x1 * decoded.width, y1 * decoded.height]
                record = sizes[image_id]
                _, hit = _verified({"id": image_id, **_framed.describe(
                    box, query_size, (record["width"], record["height"]), orientation, distance)})
                hit.orientation = orientation
            hit.distance = distance
            found[image_id] = hit

    def _find_partial(self, signal: Any, found: dict, k: int) -> None:
        """Local features: crops, pasted-in and screenshotted copies, with where they match."""
        for hit in self._stages["local"].search(signal, max(k, 10)):
            image_id, verified = _verified(hit)
            if image_id in found:
                found[image_id].extra.update(verified.extra)  # boxes explain a fingerprint match
            else:
                found[image_id] = verified

    def _confirm_similar(self, data: bytes, uri: str, found: dict) -> None:
        """A near-certain ``similar`` match that keypoints also confirm is a copy.

        Small pasted-in or screenshotted copies, and tight crops, keep too few of the query's
        keypoints at its one scale to pass the local stage's bar (12 inliers), yet the deep stage
        ranks their original first with a score near 1. For those few candidates, keypoints are
        extracted again at two more scales (3,000 at 1,280 px, 1,000 at 400 px) and matched
        exhaustively with a bar of 8: wrong candidates scoring that high reached at most 5-6
        inliers on the benchmark, true ones 12-104. A candidate that still fails may be too
        plain for keypoints: the query is then looked for, pixel by pixel, as a crop of its
        thumbnail (``picorigin._crop``: 0 of 4,040 wrong pairs passed, 98 % of true crops).

        Only for a query with no copy found yet: once one is, pictures that merely look like it
        are what ``similar`` means, and re-checking them cost half of a search at scale.
        """
        if any(hit.kind in COPY_KINDS for hit in found.values()):
            return
        suspects = sorted(
            (hit.score, image_id)
            for image_id, hit in found.items()
            if hit.kind == "similar" and hit.score >= _CONFIRM_SCORE
        )[-_CONFIRM_TOP:]
        if not suspects:
            return
        from ._features import local as local_features

        dense = decode(data, uri, self.settings, local_features.DENSE_SIDE)
        signal = local_features.compute_dense(dense.image, (dense.width, dense.height))
        hits = self._stages["local"].confirm(
            signal, [image_id for _, image_id in suspects], min_inliers=_CONFIRM_INLIERS
        )
        confirmed = {}
        for hit in hits:
            image_id, verified = _verified(hit)
            confirmed[image_id] = verified
        for _, image_id in suspects:
            if image_id in confirmed:
                continue
            # Too plain for keypoints (mist, a defocused background, a night sky): a crop is
            # still the same pixels as a rectangle of the original's thumbnail.
            thumbnail = self._catalog.thumbnail(image_id)
            if thumbnail is None:
                continue
            with Image.open(io.BytesIO(thumbnail)) as opened:
                picture = opened.convert("RGB")
            located = _crop.locate(dense.image, picture)
            if located is not None:
                size = self._catalog.images([image_id]).get(image_id)
                if size is not None:
                    described = _crop.describe(located, (dense.width, dense.height),
                                               (size["width"], size["height"]))
                    confirmed[image_id] = _verified({"id": image_id, **described})[1]
        for image_id, verified in confirmed.items():
            labels = {k: v for k, v in found[image_id].extra.items() if k in ("labels", "palette")}
            verified.extra.update(labels)
            found[image_id] = verified

    def _find_similar(
        self,
        decoded: "_imaging.Decoded",
        found: dict,
        k: int,
        wanted: set[str],
        label: str | None,
        colour: str | None,
        extra: dict[str, Any],
    ) -> None:
        """Deep features: images that look alike; labels and palette for the query and copies."""
        stage = self._stages["deep"]
        signal = stage_signal("deep", decoded)
        extra.update(type(stage).describe(signal))  # the query's labels and palette
        copies = list(found)
        if copies and (label or colour):
            kept = {h["id"] for h in stage.search(signal, len(copies), candidates=copies,
                                                  label=label, colour=colour)}
            for image_id in copies:
                if image_id not in kept:
                    del found[image_id]
        for image_id, facts in stage.details(list(found)).items():
            found[image_id].extra.update(facts)
        if "similar" not in wanted:
            return
        # A label or colour filter is itself the criterion: rank what passes it by likeness.
        minimum = 0.0 if (label or colour) else float(self.settings["similar_min_score"])
        for hit in stage.search(signal, k + len(found), label=label, colour=colour,
                                min_score=minimum):
            image_id = hit.pop("id")
            if image_id not in found:
                kind, score = hit.pop("kind"), hit.pop("score")
                found[image_id] = _Found(kind, score, extra=hit)

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
            query["detail"] = detail_signals(data, uri, self.settings)["detail"]
        found = origin.annotate(query, [m.to_dict() for m in matches], records)
        for match in matches:
            facts = found["matches"].get(match.id)
            if facts is None:
                continue
            match.larger_than_query = facts["larger_than_query"]
            match.creator = facts["creator"]
            match.extra.update(pages=facts["pages"], upscaled=facts["upscaled"])
        return found["likely_original"]

    def _fingerprint_hits(self, probes, radius: int) -> dict[int, tuple[int, str, int]]:
        """Indexed images within ``radius`` bits of a probe ``(element, code)``.

        Returns ``{id: (distance, orientation, probe)}``: the closest probe's distance, how the
        query shows the indexed image (``"identity"``, ``"rot90"``, ...) and the probe's index.
        """
        best: dict[int, tuple[int, int]] = {}
        for row, image_id, distance in self._search_index(probes, radius):
            if image_id not in best or distance < best[image_id][0]:
                best[image_id] = (distance, row)
        stored = self._catalog.orientations(best) if best else {}
        out = {}
        for image_id, (distance, row) in best.items():
            if image_id in stored:
                # The probe took the query, and the stored orientation took the indexed image,
                # to the same canonical form: query = probe^-1(stored(indexed)).
                element = fingerprint.compose(
                    fingerprint.ORIENTATIONS[stored[image_id]], fingerprint.inverse(probes[row][0])
                )
                out[image_id] = (distance, fingerprint.orientation_name(element), row)
        return out

    def _search_index(self, probes, radius: int) -> list[tuple[int, int, int]]:
        if not probes:
            return []
        with self._lock:
            return self._index.search(np.stack([code for _, code in probes]), radius)

    def compare(
        self,
        a: str | Path | bytes,
        b: str | Path | bytes,
        *,
        diff_path: str | Path | None = None,
    ) -> dict[str, Any]:
        """What changed between two images of the same picture.

        Aligns them with the transform their keypoints agree on and reports the region they
        share (``a_box`` in A's pixels: the crop box when B is a crop of A; ``b_box`` in B's),
        rotation, scale, mirror, colour shift, and the regions whose content differs after
        alignment (a caption or a logo added, an object removed), as boxes in both images.

        Parameters
        ----------
        a, b : path, http(s) URL, or bytes
        diff_path : str or Path, optional
            Also write a PNG that shows A, B aligned onto A, and the changed regions boxed.

        Returns
        -------
        dict
            ``matched`` false when the two share no geometry; else see ``picorigin._compare``.
        """
        from . import _compare

        decoded = []
        for source in (a, b):
            uri, data = _imaging.read_source(source, self.settings)
            decoded.append(decode(data, uri, self.settings, _COMPARE_SIDE))
        result = _compare.compare(
            decoded[0].image,
            decoded[1].image,
            size_a=(decoded[0].width, decoded[0].height),
            size_b=(decoded[1].width, decoded[1].height),
            diff_path=diff_path,
        )
        labels = ["<bytes>" if isinstance(s, (bytes, bytearray)) else str(s) for s in (a, b)]
        return {"a": labels[0], "b": labels[1], **result}

    def info(self, image_id: int) -> dict[str, Any]:
        """The full record of an image: size, format, metadata, every location. Raises NotFound."""
        record = self._catalog.images([int(image_id)]).get(int(image_id))
        if record is None:
            raise NotFound(f"no indexed image has id {image_id}")
        return _described(record)

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
        images = [_described(records[i]) for i in ids if i in records]
        return {"total": total, "offset": offset, "images": images}

    def stats(self) -> dict[str, Any]:
        """Counts, index size and the data folder's size on disk."""
        counts = self._catalog.counts()
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
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
            "stages": {name: _with_missing(stage.stats(), counts["images"])
                       for name, stage in self._stages.items()},
            "stages_off": dict(self.stages_off),
        }


def _with_missing(facts: dict[str, Any], images: int) -> dict[str, Any]:
    # From counts: stats() serves every page view, and comparing id sets reads every id
    # (``missing_signals`` does, for reindex).
    return {**facts, "missing": max(0, images - int(facts.get("images", 0)))}


def _described(record: dict[str, Any]) -> dict[str, Any]:
    """A catalog record as ``info`` shows it: with its uris and creator, without internals."""
    del record["orientation"]  # the canonicalising element: internal, not a fact of the image
    record["uris"] = [loc["uri"] for loc in record["locations"]]
    record["creator"] = origin.creator([record])
    return record


def _match(record: dict[str, Any], hit: _Found, query_area: int) -> Match:
    live = [loc for loc in record["locations"] if not loc["removed_at"]]
    uris = list(dict.fromkeys(loc["uri"] for loc in (live or record["locations"])))
    return Match(
        id=record["id"],
        kind=hit.kind,
        score=hit.score,
        uri=uris[0] if uris else None,
        uris=uris,
        width=record["width"],
        height=record["height"],
        format=record["format"],
        larger_than_query=record["width"] * record["height"] > query_area,
        orientation=hit.orientation,
        distance=hit.distance,
        creator=origin.creator([record]),
        metadata=record["metadata"],
        extra=dict(hit.extra),
    )


def _verified(hit: dict[str, Any]) -> tuple[int, _Found]:
    """A local-stage hit (id, kind, score, boxes, transform, ...) as an image id and a _Found."""
    extra = dict(hit)
    image_id, kind, score = extra.pop("id"), extra.pop("kind"), extra.pop("score")
    return image_id, _Found(kind, score, orientation=_orientation_of(extra), extra=extra)


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

