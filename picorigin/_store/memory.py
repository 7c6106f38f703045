"""A catalog in memory: the reference implementation the others are held to.

Everything :class:`~picorigin._store.catalog.Catalog` promises, with dicts and one lock, for
tests and for throw-away collections. Nothing survives the process.
"""

from __future__ import annotations

import copy
import itertools
import threading
from typing import Any, Iterable, Iterator

from .catalog import (
    SIGHTING_FIELDS,
    Catalog,
    Checkpoint,
    ImageRecord,
    NewImage,
    now,
    stronger_alert,
)

__all__ = ["MemoryCatalog"]


class MemoryCatalog(Catalog):
    """The catalog as Python objects (one process, any number of threads)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._images: dict[int, ImageRecord] = {}
        self._locations: dict[tuple[str, str], dict[str, Any]] = {}
        self._thumbnails: dict[int, bytes] = {}
        self._signals: dict[str, dict[int, bytes]] = {}
        self._terms: dict[str, dict[int, list[tuple[int, float]]]] = {}
        self._changes: list[tuple[int, int, str]] = []
        self._seq = 0
        self._checkpoints: dict[str, Checkpoint] = {}
        self._meta: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._location_ids = itertools.count(1)
        self._watch_tables()

    # -- images --------------------------------------------------------------------------

    def add_image(self, image: NewImage) -> tuple[int, bool]:
        with self._lock:
            existing = self.find_by_sha256(image.record["sha256"])
            if existing is not None:
                self.add_location(existing, image.location)
                return existing, False
            image_id = next(self._ids)
            record = {key: copy.deepcopy(image.record.get(key)) for key in (
                "sha256", "pixel_sha256", "width", "height", "format", "byte_size",
                "orientation", "metadata", "signals")}
            record["metadata"] = record["metadata"] or {}
            record["signals"] = record["signals"] or {}
            self._images[image_id] = {"id": image_id, **record, "added_at": now()}
            if image.thumbnail:
                self._thumbnails[image_id] = image.thumbnail
            for name, data in image.data.items():
                self._put(name, [(image_id, data)], {image_id: image.terms.get(name, [])})
            self.add_location(image_id, image.location)
            return image_id, True

    def add_location(self, image_id: int, location: dict[str, Any]) -> None:
        with self._lock:
            key = (location["uri"], location.get("page_url") or "")
            seen = location.get("seen") or now()
            fields = {name: location.get(name) for name in SIGHTING_FIELDS}
            fields["page_url"] = key[1]
            fields["rights"] = copy.deepcopy(location.get("rights")) or None
            old = self._locations.get(key)
            if old is None:
                self._locations[key] = {
                    "id": next(self._location_ids), "image_id": image_id, "uri": key[0], **fields,
                    "file_size": location.get("file_size"),
                    "file_mtime": location.get("file_mtime"),
                    "first_seen": seen, "last_seen": seen, "removed_at": None}
                return
            old.update(image_id=image_id, last_seen=seen, removed_at=None,
                       file_size=location.get("file_size"),
                       file_mtime=location.get("file_mtime"))
            for name, value in fields.items():
                if value is not None:
                    old[name] = value

    def touch_location(self, uri: str) -> None:
        with self._lock:
            location = self._locations.get((uri, ""))
            if location is not None:
                location.update(last_seen=now(), removed_at=None)

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        with self._lock:
            location = self._locations.get((uri, page_url or ""))
            if location is None or location["removed_at"]:
                return False
            location["removed_at"] = now()
            return True

    def remove_image(self, image_id: int) -> bool:
        with self._lock:
            if self._images.pop(image_id, None) is None:
                return False
            self._thumbnails.pop(image_id, None)
            self._locations = {k: v for k, v in self._locations.items()
                               if v["image_id"] != image_id}
            for name, rows in self._signals.items():
                if rows.pop(image_id, None) is not None:
                    self._terms[name].pop(image_id, None)
                    self._log(image_id, name)
            return True

    def update_facts(self, image_id: int, facts: dict[str, Any]) -> None:
        with self._lock:
            if image_id in self._images:
                self._images[image_id]["signals"].update(copy.deepcopy(facts))

    def find_by_sha256(self, sha256: str) -> int | None:
        with self._lock:
            return next((i for i, r in self._images.items() if r["sha256"] == sha256), None)

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[int]:
        with self._lock:
            return [i for i, r in self._images.items() if r["pixel_sha256"] == pixel_sha256]

    def unchanged_file(self, uri: str, file_size: int, file_mtime: float) -> int | None:
        with self._lock:
            location = self._locations.get((uri, ""))
            if (location is not None and location["file_size"] == file_size
                    and location["file_mtime"] == file_mtime):
                return location["image_id"]
            return None

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        with self._lock:
            out = {}
            for image_id in sorted({int(i) for i in ids}):
                if image_id in self._images:
                    record = copy.deepcopy(self._images[image_id])
                    record["locations"] = [
                        {k: v for k, v in loc.items()
                         if k not in ("id", "image_id", "file_size", "file_mtime")}
                        for loc in sorted(self._locations.values(),
                                          key=lambda loc: (loc["first_seen"], loc["id"]))
                        if loc["image_id"] == image_id]
                    out[image_id] = record
            return out

    def list_ids(self, offset: int = 0, limit: int = 50,
                 q: str | None = None) -> tuple[int, list[int]]:
        with self._lock:
            ids = sorted(self._images, reverse=True)
            if q:
                needle = q.lower()

                def matches(image_id: int) -> bool:
                    if needle in str(self._images[image_id]["metadata"]).lower():
                        return True
                    return any(needle in str(loc.get(f) or "").lower()
                               for loc in self._locations.values()
                               if loc["image_id"] == image_id
                               for f in ("uri", "page_url", "page_title"))

                ids = [i for i in ids if matches(i)]
            return len(ids), ids[offset:offset + limit]

    def orientations(self, ids: Iterable[int]) -> dict[int, int]:
        with self._lock:
            return {int(i): self._images[int(i)]["orientation"] for i in ids
                    if int(i) in self._images}

    def all_ids(self) -> set[int]:
        with self._lock:
            return set(self._images)

    def thumbnail(self, image_id: int) -> bytes | None:
        return self._thumbnails.get(image_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"images": len(self._images), "locations": len(self._locations),
                    "bytes": sum(r["byte_size"] for r in self._images.values())}

    # -- signals and the change log ---------------------------------------------------------

    def _log(self, image_id: int, name: str) -> None:
        self._seq += 1
        self._changes.append((self._seq, image_id, name))

    def put_signals(self, name: str, rows: list[tuple[int, bytes]],
                    terms: dict[int, list[tuple[int, float]]] | None = None) -> None:
        with self._lock:
            self._put(name, rows, terms or {})

    def _put(self, name: str, rows: list[tuple[int, bytes]],
             terms: dict[int, list[tuple[int, float]]]) -> None:
        stored = self._signals.setdefault(name, {})
        stored_terms = self._terms.setdefault(name, {})
        for image_id, data in rows:
            if int(image_id) in self._images:
                stored[int(image_id)] = bytes(data)
                stored_terms[int(image_id)] = list(terms.get(int(image_id), []))
                self._log(int(image_id), name)

    def signals(self, name: str, ids: Iterable[int]) -> dict[int, bytes]:
        with self._lock:
            stored = self._signals.get(name, {})
            return {int(i): stored[int(i)] for i in ids if int(i) in stored}

    def scan_signals(self, name: str, batch: int = 10_000) -> Iterator[list[tuple[int, bytes]]]:
        with self._lock:
            rows = sorted(self._signals.get(name, {}).items())
        for start in range(0, len(rows), batch):
            yield rows[start:start + batch]

    def signal_ids(self, name: str) -> set[int]:
        with self._lock:
            return set(self._signals.get(name, {}))

    def count_signals(self, name: str) -> int:
        with self._lock:
            return len(self._signals.get(name, {}))

    def ids_with_terms(self, name: str, terms: Iterable[int], min_weight: float) -> list[int]:
        wanted = {int(t) for t in terms}
        with self._lock:
            return sorted(i for i, pairs in self._terms.get(name, {}).items()
                          if wanted and sum(w for t, w in pairs if t in wanted) >= min_weight)

    def position(self) -> int:
        return self._seq

    def changed_since(self, name: str, seq: int, upto: int) -> list[int] | None:
        with self._lock:
            if not self._changes or self._changes[0][0] > seq + 1:
                return None
            return list(dict.fromkeys(i for s, i, n in self._changes
                                      if seq < s <= upto and n == name))

    def changes_after(self, seq: int, name: str, limit: int = 1000) -> list[tuple[int, int]]:
        with self._lock:
            return [(s, i) for s, i, n in self._changes if s > seq and n == name][:limit]

    def checkpoint(self, name: str) -> Checkpoint | None:
        return self._checkpoints.get(name)

    def record_checkpoint(self, name: str, checkpoint: Checkpoint, *,
                          replace: bool = False) -> str | None:
        with self._lock:
            old = self._checkpoints.get(name)
            if old is not None and old.seq > checkpoint.seq - (0 if replace else 1):
                return checkpoint.file
            self._checkpoints[name] = checkpoint
            lowest = min(c.seq for c in self._checkpoints.values())
            self._changes = [c for c in self._changes if c[0] > lowest]
            return None if old is None else old.file

    # -- watches, alerts and the webhook outbox (picorigin._watch) ----------------------------


    def _watch_tables(self) -> None:
        self._watches: dict[int, dict[str, Any]] = {}
        self._pictures: dict[int, dict[str, Any]] = {}
        self._alerts: dict[int, dict[str, Any]] = {}
        self._deliveries: dict[int, dict[str, Any]] = {}
        self._watch_version = 0
        self._watch_ids = itertools.count(1)
        self._picture_ids = itertools.count(1)
        self._alert_ids = itertools.count(1)
        self._delivery_ids = itertools.count(1)

    def add_watch(self, watch: dict[str, Any], pictures: list[dict[str, Any]]) -> int:
        with self._lock:
            watch_id = next(self._watch_ids)
            self._watches[watch_id] = {
                "id": watch_id, "label": watch.get("label"), "webhook": watch.get("webhook"),
                "secret": watch["secret"], "kinds": list(watch["kinds"]),
                "allow_private": bool(watch.get("allow_private")), "created_at": now()}
            for picture in pictures:
                picture_id = next(self._picture_ids)
                self._pictures[picture_id] = {
                    "id": picture_id, "watch_id": watch_id,
                    **{k: picture.get(k) for k in ("uri", "sha256", "pixel_sha256", "width",
                                                   "height", "fingerprint", "local",
                                                   "thumbnail")}}
            self._watch_version += 1
            return watch_id

    def watches(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**copy.deepcopy(w), "pictures": [
                {k: p[k] for k in ("id", "uri", "sha256", "width", "height")}
                for p in self._pictures.values() if p["watch_id"] == w["id"]]}
                for w in self._watches.values()]

    def watch_pictures(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: v for k, v in p.items() if k != "thumbnail"}
                    for p in self._pictures.values()]

    def watch_thumbnail(self, picture_id: int) -> bytes | None:
        with self._lock:
            picture = self._pictures.get(picture_id)
            return None if picture is None else picture["thumbnail"]

    def remove_watch(self, watch_id: int) -> bool:
        with self._lock:
            if self._watches.pop(watch_id, None) is None:
                return False
            self._pictures = {k: p for k, p in self._pictures.items()
                              if p["watch_id"] != watch_id}
            self._alerts = {k: a for k, a in self._alerts.items() if a["watch_id"] != watch_id}
            self._deliveries = {k: d for k, d in self._deliveries.items()
                                if d["alert_id"] in self._alerts}
            self._watch_version += 1
            return True

    def watch_version(self) -> int:
        return self._watch_version

    def add_alert(self, alert: dict[str, Any],
                  delivery: dict[str, Any] | None = None) -> tuple[int, bool]:
        stamp = now()
        with self._lock:
            for old in self._alerts.values():
                if (old["picture_id"], old["image_sha256"]) == (alert["picture_id"],
                                                                alert["image_sha256"]):
                    old.update(image_id=alert["image_id"], updated_at=stamp)
                    if stronger_alert(alert, old["kind"], old["score"]):
                        old.update(kind=alert["kind"], score=float(alert["score"]),
                                   details=copy.deepcopy(alert.get("details") or {}))
                    return old["id"], False
            alert_id = next(self._alert_ids)
            self._alerts[alert_id] = {
                "id": alert_id, **{k: alert[k] for k in ("watch_id", "picture_id", "image_id",
                                                         "image_sha256", "kind")},
                "score": float(alert["score"]),
                "details": copy.deepcopy(alert.get("details") or {}),
                "status": "new", "reason": None, "created_at": stamp, "updated_at": stamp}
            if delivery is not None:
                delivery_id = next(self._delivery_ids)
                self._deliveries[delivery_id] = {
                    "id": delivery_id, "alert_id": alert_id, "key": delivery["key"],
                    "payload": {**copy.deepcopy(delivery["payload"]), "alert_id": alert_id},
                    "status": "pending", "attempts": 0, "next_at": float(delivery["next_at"]),
                    "created_at": stamp, "history": []}
            return alert_id, True

    def alerts(self, *, since: str | None = None, watch_id: int | None = None,
               status: str | None = None, limit: int = 1000,
               offset: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            found = [copy.deepcopy(a) for _, a in sorted(self._alerts.items(), reverse=True)
                     if (since is None or a["created_at"] >= since)
                     and (watch_id is None or a["watch_id"] == watch_id)
                     and (status is None or a["status"] == status)]
            return found[offset:offset + limit]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._lock:
            return copy.deepcopy(self._alerts.get(alert_id))

    def set_alert_status(self, alert_id: int, status: str, reason: str | None = None) -> bool:
        with self._lock:
            alert = self._alerts.get(alert_id)
            if alert is None:
                return False
            alert.update(status=status, reason=reason, updated_at=now())
            return True

    def claim_deliveries(self, now: float, lease: float, limit: int = 50) -> list[dict[str, Any]]:
        with self._lock:
            due = sorted((d for d in self._deliveries.values()
                          if d["status"] == "pending" and d["next_at"] <= now),
                         key=lambda d: (d["next_at"], d["id"]))[:limit]
            out = []
            for delivery in due:
                delivery["next_at"] = now + lease
                alert = self._alerts[delivery["alert_id"]]
                watch = self._watches[alert["watch_id"]]
                out.append({**{k: copy.deepcopy(delivery[k])
                               for k in ("id", "alert_id", "key", "payload", "attempts")},
                            "watch_id": watch["id"], "webhook": watch["webhook"],
                            "secret": watch["secret"], "allow_private": watch["allow_private"]})
            return out

    def record_attempt(self, delivery_id: int, attempt: dict[str, Any], *, status: str,
                       next_at: float | None = None) -> None:
        with self._lock:
            delivery = self._deliveries.get(delivery_id)
            if delivery is None:
                return
            delivery["history"].append({"at": attempt.get("at") or now(),
                                        "status_code": attempt.get("status_code"),
                                        "error": attempt.get("error"), "ms": attempt.get("ms")})
            delivery["attempts"] += 1
            delivery["status"] = status
            if next_at is not None:
                delivery["next_at"] = next_at

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [{k: copy.deepcopy(v) for k, v in d.items() if k != "payload"}
                    for _, d in sorted(self._deliveries.items())
                    if alert_id is None or d["alert_id"] == alert_id]

    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._meta[key] = value

    def close(self) -> None:
        pass
