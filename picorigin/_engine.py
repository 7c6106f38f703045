"""The engine: the one facade every surface (library, CLI, HTTP) uses.

It wires three rooms together and holds no logic of its own beyond that:

- ingest (``picorigin._ingest``): a source becomes an image record and every stage's signal,
  in this process or a pool of workers;
- the store (``picorigin._store``): the catalog commits the record, its location and all its
  signals in one transaction with change-log entries; every stage's index catches up from that
  log, so any number of processes can read and write one data folder;
- the search (``picorigin._search``): a ``Query`` run through a list of steps whose hits are
  fused into one ranked list, then annotated with provenance (``picorigin._provenance``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import _imaging, _results, _search
from ._errors import NotFound, PicoriginError, StageUnavailable
from ._ingest.analyse import Analysed, Failed, Known, analyse, decode, file_stat, working_side
from ._ingest.pool import analyse_all
from ._models import COPY_KINDS, KINDS, IndexReport, Match, SearchResult
from ._provenance import enlarged, origin
from ._query import Query
from ._settings import resolve_settings
from ._stages import Stage, open_stages
from ._store import Catalog, NewImage, catalog_locator, open_catalog

__all__ = ["Engine", "default_data_folder"]

logger = logging.getLogger("picorigin")

# compare() aligns images decoded this large: finer changed regions than the 640 px stages see.
_COMPARE_SIDE = 1024
# A sorted or filtered search ranks this many matches, at least, before keeping k.
_WIDE_K = 100


def default_data_folder() -> Path:
    """``$PICORIGIN_DB`` if set, else ``./picorigin-data``."""
    return Path(os.environ.get("PICORIGIN_DB") or "picorigin-data")


class Engine:
    """A picorigin collection in one data folder.

    Parameters
    ----------
    path : str or Path, optional
        The data folder (created if missing). Default: ``$PICORIGIN_DB`` or ``./picorigin-data``.
    settings : mapping, optional
        Overrides of the settings table (see ``picorigin settings``).
    catalog : Catalog, optional
        The catalog; default the one the setting ``catalog`` names (empty: the SQLite file
        ``catalog.sqlite`` in the data folder; ``postgresql://...``: PostgreSQL).

    Notes
    -----
    Thread-safe, and safe for many processes on one data folder: a server, an indexer and a
    crawler see each other's commits before each search, and nothing committed is lost
    whichever of them crashes.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else default_data_folder()
        self.path.mkdir(parents=True, exist_ok=True)
        self.settings = resolve_settings(settings)
        self._catalog = catalog if catalog is not None else open_catalog(self.settings,
                                                                         self.path)
        self._lock = threading.RLock()
        self._closed = False
        self._stages, self.stages_off = open_stages(self._catalog, self.path, self.settings)
        self._steps = _search.steps_for(self._stages, self._catalog)

    @property
    def stages(self) -> list[str]:
        """The stages running beside the fingerprint (``local``, ``deep``)."""
        return [name for name in self._stages if name != "fingerprint"]

    def stage(self, name: str) -> Stage:
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
        """Checkpoint every index and close the catalog."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for stage in self._stages.values():
                stage.close()
            self._catalog.close()

    def checkpoint(self, *, force: bool = True) -> None:
        """Save every index's checkpoint (a shortcut for the next process that opens the
        folder; the catalog already holds everything)."""
        for stage in self._stages.values():
            stage.save(force=force)

    # -- writing -----------------------------------------------------------------------------

    def _commit(self, result: Known | Analysed) -> tuple[int, bool]:
        """Write one analysed source to the catalog; return (id, created)."""
        if isinstance(result, Known):
            self._catalog.add_location(result.image_id, result.location)
            return result.image_id, False
        stages = {name: self._stages[name] for name in result.signals}
        return self._catalog.add_image(NewImage(
            record=result.record, location=result.location, thumbnail=result.thumbnail,
            data={name: stage.encode(result.signals[name]) for name, stage in stages.items()},
            terms={name: stage.terms(result.signals[name]) for name, stage in stages.items()},
        ))

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
            Where it was seen: any of page_url, page_title, alt, caption, author,
            author_source, license, published, and rights (``{"claims": [{"field", "value",
            "source"}, ...]}``: what the page's structured data says of this image).
        metadata : dict, optional
            Facts supplied by the caller (creator, title, ...); they fill gaps in what the
            file's own EXIF/IPTC/XMP says.

        Raises
        ------
        ImageError, FetchError
            When the source cannot be read or decoded.
        """
        result = analyse(source, self.settings, known=self._catalog.find_by_sha256, uri=uri,
                         stages=tuple(self.stages))
        if sighting:
            result.location.update({k: v for k, v in sighting.items() if v is not None})
        if metadata and isinstance(result, Analysed):
            # What the file states wins; what the caller supplies fills the gaps, marked so.
            supplied = {k: v for k, v in metadata.items()
                        if v and k not in result.record["metadata"]}
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
        ingest: str | None = None,
    ) -> IndexReport:
        """Index files, folders (recursively), URLs and list files; resume where it stopped.

        A source whose path, size and modification time are already recorded is skipped without
        being read. A bad source is reported in ``IndexReport.failed`` and the rest go on.
        ``ingest`` (default: the setting) names a Dask scheduler (``tcp://host:8786``) whose
        workers analyse the sources; this process commits each result.
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
        ingest = self.settings.ingest if ingest is None else ingest
        if ingest:
            from ._ingest.dask import analyse_on_dask

            results = analyse_on_dask(todo, self.settings, tuple(self.stages), address=ingest,
                                      catalog=catalog_locator(self._catalog))
        else:
            results = analyse_all(todo, self.settings, tuple(self.stages),
                                  known=self._catalog.find_by_sha256,
                                  catalog=catalog_locator(self._catalog),
                                  workers=workers or self.settings.workers or os.cpu_count() or 1)
        for result in results:
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
        self.checkpoint(force=False)
        report.seconds = time.perf_counter() - started
        return report

    def _maybe_checkpoint(self) -> None:
        for stage in self._stages.values():
            stage.save()

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
        todo: dict[int, list[str]] = {}
        for name, ids in self.missing_signals().items():
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
                    size = (decoded.width, decoded.height)
                    for name in names:
                        stage = self._stages[name]
                        stage.add([image_id], [stage.compute(decoded.image, size)])
                    report.indexed += 1
                    break
                except PicoriginError as error:
                    reason = str(error)
            else:
                report.failed.append((f"image {image_id}", reason))
            if progress:
                progress(done, len(todo))
        self.checkpoint(force=False)
        report.seconds = time.perf_counter() - started
        return report

    def remove(self, image_id: int) -> None:
        """Remove an image, its locations and its signals. Raises NotFound."""
        if not self._catalog.remove_image(int(image_id)):
            raise NotFound(f"no indexed image has id {image_id}")

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
        sort: str = "best",
        domain: str | None = None,
        larger_only: bool = False,
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
        sort : str
            ``best``, ``changed``, ``biggest``, ``oldest`` or ``newest`` (see
            ``picorigin._results``); copies always come before similar images.
        domain : str, optional
            Only matches with a location on this host (``example.org``, its subdomains too)
            or in this folder (``example.org/news``, ``/srv/photos``).
        larger_only : bool
            Only copies genuinely larger than the query (an upscale is not).

        Raises
        ------
        ImageError, FetchError
            When the query cannot be read or decoded.
        StageUnavailable
            When ``label`` or ``colour`` is asked for without the deep stage.
        ValueError
            An unknown kind or sort, or an unreadable domain.
        """
        started = time.perf_counter()
        wanted = frozenset(kinds) if kinds else frozenset(KINDS)
        unknown = wanted - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind(s) {sorted(unknown)}; kinds are {list(KINDS)}")
        _results.arrange([], sort=sort, domain=domain)  # refuse a bad sort or domain up front
        # Reordered or filtered, the k shown come from a wider net than the k best.
        reach = k if (sort == "best" and not domain and not larger_only) else max(k, _WIDE_K)
        stages = [] if fast else self.stages
        if (label or colour) and "deep" not in stages:
            reason = self.stages_off.get("deep", "it is not enabled (setting stages)")
            raise StageUnavailable(
                f"--label and --colour need the deep stage, which is off: {reason}")
        # One position for every index: the search sees one consistent state of the catalog.
        ask = _search.Ask(k=reach, kinds=wanted, label=label, colour=colour, fast=fast,
                          position=self._catalog.position(), settings=self.settings)
        query = Query(source, self.settings, working_side(stages))
        found = _search.run(self._steps, query, ask)

        extra: dict[str, Any] = {}
        if "deep" in stages:
            extra.update(self._stages["deep"].describe(query.signal(self._stages["deep"])))
        records = self._catalog.images(found)
        matches = [_match(records[hit.id], hit, query.width * query.height)
                   for hit in found.hits()
                   if hit.id in records and hit.kind in wanted]  # records: not removed meanwhile
        matches.sort(key=lambda m: (KINDS.index(m.kind), -m.score, m.id))
        matches = matches[:reach]
        provenance = self._add_provenance(matches, records, query)
        matches = _results.arrange(matches, sort=sort, domain=domain,
                                   larger_only=larger_only)[:k]
        if provenance.get("likely_original"):
            extra["likely_original"] = provenance["likely_original"]
            extra["query_upscaled"] = provenance["query_upscaled"]
        if self.stages_off and not fast:
            extra["stages_off"] = dict(self.stages_off)
        return SearchResult(
            query=query.label,
            matches=matches,
            elapsed_ms=(time.perf_counter() - started) * 1000,
            width=query.width,
            height=query.height,
            stages=["exact", "fingerprint", *stages],
            extra=extra,
        )

    def _add_provenance(self, matches: list[Match], records: dict[int, dict[str, Any]],
                        query: Query) -> dict[str, Any]:
        """Attach pages, creator, larger/upscaled to each match; return the likely original and
        whether the query is an upscale of a copy (``origin.annotate``'s last two keys)."""
        if not matches:
            return {}
        facts: dict[str, Any] = {"width": query.width, "height": query.height}
        side = max(query.width, query.height)
        smaller = any(m.kind in COPY_KINDS and max(m.width, m.height) * 1.15 < side
                      for m in matches)
        if smaller and self.settings.measure_detail and side <= enlarged.MAX_SIDE:
            # Only then can the query be an upscale of a copy: its own traces, at full size.
            full = query.decoded(None)
            facts.update(enlarged.measure(full.image), format=full.format)
        found = origin.annotate(facts, [m.to_dict() for m in matches], records)
        for match in matches:
            annotated = found["matches"].get(match.id)
            if annotated is None:
                continue
            match.larger_than_query = annotated.pop("larger_than_query")
            match.creator = annotated.pop("creator")
            match.extra.update(annotated)  # pages, upscaled, and whatever provenance adds
        return found

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

        queries = [Query(source, self.settings, _COMPARE_SIDE) for source in (a, b)]
        decoded = [q.decoded(_COMPARE_SIDE) for q in queries]
        result = _compare.compare(decoded[0].image, decoded[1].image,
                                  size_a=queries[0].size, size_b=queries[1].size,
                                  diff_path=diff_path)
        return {"a": queries[0].label, "b": queries[1].label, **result}

    def compare_indexed(
        self,
        a: str | Path | bytes,
        image_id: int,
        *,
        diff_path: str | Path | None = None,
    ) -> dict[str, Any]:
        """`compare` an image with an indexed one, read by its id.

        The indexed image is read from the first of its locations that still holds the same
        bytes (a file, or a URL fetched under the usual rules); when none does, from its
        thumbnail, with every box still in the image's full-size pixels.

        Returns
        -------
        dict
            What `compare` returns, with ``b_id``, ``a_width`` / ``a_height`` and ``b_width`` /
            ``b_height`` (each image's full size) and ``b_from``: ``"location"`` (``b_uri`` names it) or
            ``"thumbnail"`` (``b_uri`` None).

        Raises
        ------
        NotFound
            No indexed image has that id, or none of its locations nor a thumbnail can be read.
        """
        from . import _compare

        record = self._catalog.images([int(image_id)]).get(int(image_id))
        if record is None:
            raise NotFound(f"no indexed image has id {image_id}")
        data, where = self._indexed_bytes(record)
        size_b = (int(record["width"]), int(record["height"]))
        query_a = Query(a, self.settings, _COMPARE_SIDE)
        if data is None:
            jpeg = self._catalog.thumbnail(int(image_id))
            if jpeg is None:
                raise NotFound(f"image {image_id} can no longer be read from any of its "
                               f"locations, and no thumbnail of it is kept")
            query_b, source_b = Query(jpeg, self.settings, _COMPARE_SIDE), "thumbnail"
        else:
            query_b, source_b = Query(data, self.settings, _COMPARE_SIDE), "location"
        result = _compare.compare(query_a.decoded(_COMPARE_SIDE).image,
                                  query_b.decoded(_COMPARE_SIDE).image,
                                  size_a=query_a.size, size_b=size_b, diff_path=diff_path)
        return {"a": query_a.label, "b": f"image {int(image_id)}", "b_uri": where, "b_id": int(image_id), "b_from": source_b,
                "b_width": size_b[0], "b_height": size_b[1], "a_width": query_a.size[0],
                "a_height": query_a.size[1], **result}

    def _indexed_bytes(self, record: dict[str, Any]) -> tuple[bytes | None, str | None]:
        """The bytes of an indexed image from its first readable location, and that location."""
        for location in record["locations"]:
            uri = location["uri"]
            if location.get("removed_at") or not (
                    _imaging._URL.match(uri) or Path(uri).is_absolute()):
                continue  # gone, or a label ("upload:...", "<bytes>"), not a place to read
            try:
                _, data = _imaging.read_source(uri, self.settings)
            except PicoriginError:
                continue
            if hashlib.sha256(data).hexdigest() == record["sha256"]:
                return data, uri
        return None, None

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

    def check(self) -> dict[str, Any]:
        """Whether every index agrees with the catalog (``picorigin._maintenance.check``)."""
        from . import _maintenance

        return _maintenance.check(self)

    def repair(self) -> dict[str, Any]:
        """Rebuild what disagrees and compute missing signals (``_maintenance.repair``)."""
        from . import _maintenance

        return _maintenance.repair(self)

    def backup(self, destination: str | Path) -> Path:
        """A consistent, restorable copy of the data folder, taken while it is in use."""
        from . import _maintenance

        return _maintenance.backup(self, destination)

    def stats(self) -> dict[str, Any]:
        """Counts, index sizes and the data folder's size on disk."""
        counts = self._catalog.counts()
        disk = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        fingerprints = self._stages["fingerprint"].stats()
        return {
            "data_folder": str(self.path.resolve()),
            "images": counts["images"],
            "locations": counts["locations"],
            "bytes_indexed": counts["bytes"],
            "disk_bytes": disk,
            "index": {"backend": fingerprints["backend"], "fingerprints": fingerprints["entries"],
                      "memory_bytes": fingerprints["memory_bytes"]},
            "stages": {name: _with_missing(stage.stats(), counts["images"])
                       for name, stage in self._stages.items() if name != "fingerprint"},
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
    record["rights"] = origin.rights([record])
    return record


def _match(record: dict[str, Any], hit: _search.Hit, query_area: int) -> Match:
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
        extra={**hit.extra, "first_seen": _results.first_seen(record["locations"])},
    )
