"""Watches and alerts: know when a new copy of a watched picture turns up.

A watch is a set of pictures (with a label, the kinds it cares about, and optionally a webhook
with its own secret). The watcher follows the catalog's change log (the ``fingerprint``
entries, one per new image whoever wrote it: ``index``, ``crawl``, the API, another process)
from a position it holds as a file-less checkpoint named ``watch``, so the log is never pruned
past an image it has not checked, and alerts survive restarts. Each new image is matched
against the watch index (``picorigin._watch._index``); each hit becomes at most one alert per
(watched picture, copy content), written with its webhook delivery in one transaction.

A new watch is checked at once against everything already indexed, by the engine's own search
with each watched picture as the query.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .. import _imaging
from .._errors import FetchError, NotFound, PicoriginError, SettingError
from .._features import fingerprint
from .._ingest.analyse import _thumbnail
from .._models import COPY_KINDS
from .._provenance import origin
from .._query import Query
from .._store import Checkpoint, now
from . import _deliver
from ._index import WatchHit, WatchIndex, pack_fingerprints, pack_local

__all__ = ["STATUSES", "Watcher", "watcher"]

logger = logging.getLogger("picorigin")

POSITION = "watch"  # the checkpoint name that holds the watcher's place in the change log
STATUSES = ("new", "acknowledged", "dismissed")
_BATCH = 500  # log entries read per step
_MAX_LABEL = 200
_RETRO_K = 1000  # matches a retroactive search may return per watched picture
_LOCAL_SIDE = 800
_THUMBNAIL = 256  # a watched picture's thumbnail side (the page shows it beside each copy)


def watcher(engine: Any) -> "Watcher":
    """The engine's watcher (one per engine, shared by the CLI, the API and ``serve``)."""
    with engine._lock:
        found = getattr(engine, "_watcher", None)
        if found is None:
            found = engine._watcher = Watcher(engine)
        return found


class Watcher:
    """Watches, alerts and webhook delivery over one engine's catalog.

    Parameters
    ----------
    engine : Engine
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.catalog = engine._catalog
        self.settings = engine.settings
        self._lock = threading.RLock()
        self._index: WatchIndex | None = None
        self._version = -1
        self._watches: dict[int, dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- watches -------------------------------------------------------------------------------

    def add(self, sources: Iterable[str | Path | bytes], *, label: str | None = None,
            webhook: str | None = None, kinds: Iterable[str] | None = None,
            allow_private: bool = True) -> dict[str, Any]:
        """Watch pictures; report the copies already indexed as alerts at once.

        Parameters
        ----------
        sources : iterable
            Files, folders, http(s) URLs, list files (as ``index`` takes), bytes, or
            ``(uri, bytes)`` pairs (the uri names the picture).
        label : str, optional
        webhook : str, optional
            An http(s) URL that receives each new alert as a signed JSON POST.
        kinds : iterable of str, optional
            Which kinds of copy alert (default every copy kind: exact, near_duplicate,
            partial).
        allow_private : bool
            The webhook may be on a private or loopback address. True for the operator's own
            command line and library calls; the HTTP API passes ``allow_private_urls``.

        Returns
        -------
        dict
            ``{"watch": id, "pictures": n, "alerts": new alerts, "secret": the webhook secret}``

        Raises
        ------
        SettingError
            An unknown kind, a webhook that is not an http(s) URL, a label too long, no
            pictures.
        ImageError, FetchError
            A picture that cannot be read (nothing is stored then).
        """
        kinds = _kinds(kinds)
        if label is not None and len(label) > _MAX_LABEL:
            raise SettingError(f"a label has at most {_MAX_LABEL} characters")
        if webhook:
            try:
                _deliver._fetch._check_url(webhook)
            except FetchError as error:
                raise SettingError(f"webhook: {error}") from None
        sources = list(sources)
        given = (bytes, bytearray, tuple)
        items: list[Any] = [s if isinstance(s, tuple) else ("<bytes>", s)
                            for s in sources if isinstance(s, given)]
        items += [(None, s) for s in _imaging.expand_sources(
            [str(s) for s in sources if not isinstance(s, given)])]
        if not items:
            raise SettingError("no pictures to watch")
        queries, pictures = [], []
        local = self.engine._stages.get("local")
        for uri, source in items:
            query = Query(source, self.settings, fingerprint.SIDE * 2)
            coeffs = fingerprint.coefficients(query.decoded(self.engine._stages[
                "fingerprint"].query_side).image)
            picture = {"uri": uri or query.uri, "sha256": query.sha256,
                       "pixel_sha256": query.pixel_sha256, "width": query.width,
                       "height": query.height, "fingerprint": pack_fingerprints(coeffs),
                       "local": None,
                       "thumbnail": _thumbnail(query.decoded(_THUMBNAIL).image, _THUMBNAIL)}
            if local is not None:
                features = local.compute(query.decoded(_LOCAL_SIDE).image, query.size,
                                         query=True)
                mirror = features.mirrored.descriptors if features.mirrored else np.zeros(
                    (0, 32), np.uint8)
                picture["local"] = pack_local(features, local._words(features.descriptors),
                                              local._words(mirror), local.vocabulary.digest())
            queries.append(query)
            pictures.append(picture)
        with self._lock:
            if not self.catalog.watches():
                # Nothing was watched: the log before now is what the searches below cover.
                self.catalog.record_checkpoint(POSITION, Checkpoint(self.catalog.position(),
                                                                    "", {}))
            watch_id = self.catalog.add_watch(
                {"label": label, "webhook": webhook or None, "secret": secrets.token_hex(32),
                 "kinds": kinds, "allow_private": bool(allow_private)}, pictures)
            self._refresh()
            stored = [p for p in self.catalog.watch_pictures() if p["watch_id"] == watch_id]
            created = 0
            for query, picture in zip(queries, stored):
                created += self._retroactive(query, picture)
        secret = next(w["secret"] for w in self.catalog.watches() if w["id"] == watch_id)
        return {"watch": watch_id, "pictures": len(stored), "alerts": created,
                "secret": secret if webhook else None}

    def _retroactive(self, query: Query, picture: dict[str, Any]) -> int:
        result = self.engine.search(query.data, k=_RETRO_K, kinds=COPY_KINDS)
        records = self.catalog.images(m.id for m in result.matches)
        created = 0
        for match in result.matches:
            record = records.get(match.id)
            if record is None:
                continue
            extra = match.extra
            details = {key: extra[key] for key in ("inliers", "rotation", "scale", "mirror",
                                                   "query_box", "match_box", "query_overlap",
                                                   "match_overlap") if key in extra}
            details.update(distance=match.distance, orientation=match.orientation)
            hit = WatchHit(int(picture["id"]), int(picture["watch_id"]), match.kind,
                           float(match.score), details)
            created += self._alert(hit, record)
        return created

    def watches(self) -> list[dict[str, Any]]:
        """Every watch with its pictures, each with its alert counts by status."""
        counts: dict[int, dict[str, int]] = {}
        for alert in self.catalog.alerts(limit=1_000_000):
            by_status = counts.setdefault(alert["picture_id"], dict.fromkeys(STATUSES, 0))
            by_status[alert["status"]] = by_status.get(alert["status"], 0) + 1
        out = []
        for watch in self.catalog.watches():
            watch = {k: v for k, v in watch.items() if k != "secret"}
            for picture in watch["pictures"]:
                picture["alerts"] = counts.get(picture["id"], dict.fromkeys(STATUSES, 0))
            out.append(watch)
        return out

    def remove(self, watch_id: int) -> None:
        """Stop watching (its alerts and pending deliveries go too). Raises NotFound."""
        with self._lock:
            if not self.catalog.remove_watch(int(watch_id)):
                raise NotFound(f"no watch has id {watch_id}")
            if not self.catalog.watches():
                # Nothing left to check: let go of the log.
                self.catalog.record_checkpoint(POSITION, Checkpoint(self.catalog.position(),
                                                                    "", {}))

    def thumbnail(self, picture_id: int) -> bytes:
        """A watched picture's JPEG thumbnail. Raises NotFound."""
        jpeg = self.catalog.watch_thumbnail(int(picture_id))
        if jpeg is None:
            raise NotFound(f"no watched picture has id {picture_id}")
        return jpeg

    # -- alerts --------------------------------------------------------------------------------

    def alerts(self, *, since: str | None = None, status: str | None = None,
               watch_id: int | None = None, limit: int = 1000, offset: int = 0,
               catch_up: bool = True) -> list[dict[str, Any]]:
        """Alerts newest first, each with the copy's pages, creator and first sighting.

        ``since`` is an ISO date or time (``2026-12-01``); with ``catch_up`` the change log is
        processed first, so images any process committed are already checked.
        """
        if status is not None and status not in STATUSES:
            raise SettingError(f"unknown status {status!r}; statuses are {list(STATUSES)}")
        if since is not None:
            since = _iso(since)
        if catch_up:
            self.process()
        alerts = self.catalog.alerts(since=since, status=status, watch_id=watch_id,
                                     limit=limit, offset=offset)
        return self._described(alerts)

    def alert(self, alert_id: int) -> dict[str, Any]:
        """One alert, described, with its delivery history. Raises NotFound."""
        found = self.catalog.alert(int(alert_id))
        if found is None:
            raise NotFound(f"no alert has id {alert_id}")
        (described,) = self._described([found])
        described["deliveries"] = self.catalog.deliveries(int(alert_id))
        return described

    def dismiss(self, alert_id: int, reason: str | None = None) -> dict[str, Any]:
        """Dismiss an alert: the pair never alerts again. Raises NotFound."""
        return self._set(alert_id, "dismissed", reason)

    def acknowledge(self, alert_id: int) -> dict[str, Any]:
        """Mark an alert as seen. Raises NotFound."""
        return self._set(alert_id, "acknowledged", None)

    def _set(self, alert_id: int, status: str, reason: str | None) -> dict[str, Any]:
        if reason is not None and len(reason) > 1000:
            raise SettingError("a reason has at most 1000 characters")
        if not self.catalog.set_alert_status(int(alert_id), status, reason):
            raise NotFound(f"no alert has id {alert_id}")
        return self.alert(alert_id)

    def _described(self, alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        watches = {w["id"]: w for w in self.catalog.watches()}
        pictures = {p["id"]: p for w in watches.values() for p in w["pictures"]}
        records = self.catalog.images(a["image_id"] for a in alerts)
        out = []
        for alert in alerts:
            details = dict(alert.pop("details"))
            record = records.get(alert["image_id"])
            watch = watches.get(alert["watch_id"], {})
            picture = pictures.get(alert["picture_id"], {})
            out.append({
                **alert, "label": watch.get("label"), "picture": picture.get("uri"),
                **_boxes(details), **details,
                "image": _image(record) if record else None,
                "pages": origin.pages([record]) if record else [],
                "creator": origin.creator([record]) if record else None,
                "first_seen": min((loc["first_seen"] for loc in record["locations"]),
                                  default=None) if record else None,
            })
        return out

    # -- following the change log ---------------------------------------------------------------

    def _refresh(self) -> WatchIndex:
        with self._lock:
            version = self.catalog.watch_version()
            if self._index is None or version != self._version:
                self._watches = {w["id"]: w for w in self.catalog.watches()}
                self._index = WatchIndex(self.catalog.watch_pictures(),
                                         self.engine._stages.get("local"))
                self._version = version
            return self._index

    def process(self) -> int:
        """Check every image committed since the last call against the watches; return the
        number of new alerts."""
        with self._lock:
            index = self._refresh()
            recorded = self.catalog.checkpoint(POSITION)
            if not len(index):
                return 0
            position = recorded.seq if recorded is not None else self.catalog.position()
            if recorded is None:
                self.catalog.record_checkpoint(POSITION, Checkpoint(position, "", {}))
            created = 0
            radius = int(self.settings.near_duplicate_distance)
            fingerprints = self.engine._stages["fingerprint"]
            local = self.engine._stages.get("local")
            while entries := self.catalog.changes_after(position, "fingerprint", _BATCH):
                ids = list(dict.fromkeys(i for _, i in entries))
                records = self.catalog.images(ids)
                codes = fingerprints.stored(list(records))
                features = local.stored(list(records)) if local is not None else {}
                for image_id, record in records.items():
                    for hit in index.match(record, codes.get(image_id),
                                           features.get(image_id), radius):
                        created += self._alert(hit, record)
                position = entries[-1][0]
                self.catalog.record_checkpoint(POSITION, Checkpoint(position, "", {}))
            return created

    def _alert(self, hit: WatchHit, record: dict[str, Any]) -> int:
        """Record one hit as an alert (with its delivery); 1 when it is new."""
        watch = self._watches.get(hit.watch_id)
        if watch is None or hit.kind not in watch["kinds"]:
            return 0
        if record["sha256"] in self._index.sha256 and not _seen_online(record):
            return 0  # the watched picture itself (a file of the same bytes), not a copy
        alert = {"watch_id": hit.watch_id, "picture_id": hit.picture_id,
                 "image_id": record["id"], "image_sha256": record["sha256"], "kind": hit.kind,
                 "score": round(float(hit.score), 4), "details": _jsonable(hit.details)}
        delivery = None
        if watch.get("webhook"):
            delivery = {"key": f"picorigin-{secrets.token_hex(16)}",
                        "payload": self._payload(watch, hit, alert, record),
                        "next_at": time.time()}
        _, created = self.catalog.add_alert(alert, delivery)
        return int(created)

    def _payload(self, watch: dict[str, Any], hit: WatchHit, alert: dict[str, Any],
                 record: dict[str, Any]) -> dict[str, Any]:
        picture = next((p for p in watch["pictures"] if p["id"] == hit.picture_id), {})
        others = {a["image_id"] for a in self.catalog.alerts(watch_id=watch["id"], limit=200)
                  if a["picture_id"] == hit.picture_id}
        copies = list(self.catalog.images(others - {record["id"]}).values())
        return {
            "event": "picorigin.alert",
            "watch": {"id": watch["id"], "label": watch.get("label"),
                      "picture_id": hit.picture_id, "picture": picture.get("uri")},
            "kind": alert["kind"], "score": alert["score"],
            **_boxes(dict(alert["details"])), "details": alert["details"],
            "image": _image(record), "pages": origin.pages([record]),
            "creator": origin.creator([record]),
            "likely_original": origin.likely_original([record, *copies]),
            "detected_at": now(),
        }

    # -- delivery -------------------------------------------------------------------------------

    def deliver(self) -> dict[str, int]:
        """Send every due webhook once; return ``{"delivered", "retrying", "failed"}``."""
        counts = {"delivered": 0, "retrying": 0, "failed": 0}
        timeout = float(self.settings.webhook_timeout)
        while claimed := self.catalog.claim_deliveries(time.time(), lease=2 * timeout + 5):
            for delivery in claimed:
                counts[self._send(delivery, timeout)] += 1
            if len(claimed) < 50:
                break
        return counts

    def _send(self, delivery: dict[str, Any], timeout: float) -> str:
        attempt = int(delivery["attempts"]) + 1
        started = time.perf_counter()
        status_code, error = None, None
        try:
            status_code = _deliver.post(
                delivery["webhook"], delivery["payload"], secret=delivery["secret"],
                key=delivery["key"], attempt=attempt, timeout=timeout,
                allow_private=bool(delivery["allow_private"] or self.settings.allow_private_urls))
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}"
        except PicoriginError as failure:
            error = _deliver.describe_failure(failure)
        record = {"at": now(), "status_code": status_code, "error": error,
                  "ms": round(1000 * (time.perf_counter() - started), 1)}
        if error is None:
            self.catalog.record_attempt(delivery["id"], record, status="delivered")
            return "delivered"
        if attempt >= int(self.settings.webhook_max_attempts):
            logger.warning("webhook %s failed for good after %d attempts: %s",
                           delivery["key"], attempt, error)
            self.catalog.record_attempt(delivery["id"], record, status="failed")
            return "failed"
        wait = _deliver.backoff(attempt, float(self.settings.webhook_retry_seconds))
        self.catalog.record_attempt(delivery["id"], record, status="pending",
                                    next_at=time.time() + wait)
        return "retrying"

    def run(self) -> dict[str, int]:
        """One round: check new images, then send due webhooks."""
        alerts = self.process()
        return {"alerts": alerts, **self.deliver()}

    # -- in the background (serve) -----------------------------------------------------------------

    def start(self, interval: float | None = None) -> None:
        """Run a round every ``interval`` seconds (``watch_seconds``) on a daemon thread."""
        interval = float(self.settings.watch_seconds if interval is None else interval)
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, args=(interval,),
                                            name="picorigin-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread (after its current round)."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.run()
            except Exception:  # a round that fails must not end the server's watching
                logger.exception("watch round failed")
            self._stop.wait(interval)


def _kinds(kinds: Iterable[str] | None) -> list[str]:
    chosen = [k.strip() for k in (kinds or COPY_KINDS) if k.strip()]
    unknown = sorted(set(chosen) - set(COPY_KINDS))
    if unknown or not chosen:
        raise SettingError(f"unknown kind(s) {unknown}; a watch takes {list(COPY_KINDS)}")
    return list(dict.fromkeys(chosen))


def _iso(value: str) -> str:
    from datetime import datetime, timezone

    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SettingError(f"--since: not an ISO date or time: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _seen_online(record: dict[str, Any]) -> bool:
    return any(loc.get("page_url") or str(loc.get("uri", "")).startswith(("http://", "https://"))
               for loc in record.get("locations", []))


def _image(record: dict[str, Any]) -> dict[str, Any]:
    uris = [loc["uri"] for loc in record["locations"]]
    return {"id": record["id"], "sha256": record["sha256"], "uri": uris[0] if uris else None,
            "uris": uris, "width": record["width"], "height": record["height"],
            "format": record["format"]}


def _boxes(details: dict[str, Any]) -> dict[str, Any]:
    """The match box in each image: ``query_box`` of a verification is the watched picture's."""
    boxes = {}
    if "query_box" in details:
        boxes["watched"] = details.pop("query_box")
    if "match_box" in details:
        boxes["copy"] = details.pop("match_box")
    return {"boxes": boxes}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
