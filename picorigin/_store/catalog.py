"""The catalog interface: what the engine asks of the database that holds the truth.

One row per distinct image content, every place it was seen, its metadata, a thumbnail, and
every signal computed from it (fingerprint, local features, deep descriptor, ...) as opaque
bytes. Every change to a signal appends ``(seq, id, name)`` to one change log in the same
transaction, with ``seq`` increasing in commit order, so any process can bring a derived index
up to date by reading the entries after its own position (``picorigin._store.signal_store``).
Derived indexes are checkpointed to files; the catalog records which file covers which
position, and prunes the log only below every checkpoint.

Implementations: :class:`~picorigin._store.sqlite.SQLiteCatalog` (the embedded default, one
file in the data folder) and :class:`~picorigin._store.memory.MemoryCatalog` (the reference the
tests hold the others to). Each must pass ``tests/store/test_catalog.py``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from .._errors import PicoriginError

__all__ = ["SIGHTING_FIELDS", "Catalog", "Checkpoint", "ImageRecord", "NewImage", "now",
           "stronger_alert"]

ImageRecord = dict[str, Any]

SIGHTING_FIELDS = (
    "page_url", "page_title", "alt", "caption", "author", "author_source", "license", "published",
)


def now() -> str:
    """The current UTC time as ISO 8601, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def stronger_alert(new: dict[str, Any], old_kind: str, old_score: float) -> bool:
    """Whether an alert's new evidence (``kind``, ``score``) beats what the alert holds: a
    stronger kind, or the same kind scoring higher. Every implementation keeps the stronger."""
    rank = {"exact": 0, "near_duplicate": 1, "partial": 2}.get
    return (rank(new["kind"], 9), -float(new["score"])) < (rank(old_kind, 9), -float(old_score))


@dataclass
class NewImage:
    """Everything committed for a new image, in one transaction.

    Attributes
    ----------
    record : dict
        ``sha256, pixel_sha256, width, height, format, byte_size, orientation, metadata,
        signals`` (``signals``: per-image facts such as ``detail``, ``jpeg_quality``).
    location : dict
        ``uri`` and any sighting fields (``SIGHTING_FIELDS``), ``rights`` (a dict of what the
        page says of credit and licence, kept as given), ``file_size``, ``file_mtime``,
        ``seen``.
    thumbnail : bytes or None
    data : dict of str to bytes
        Each signal's encoded form, by signal name.
    terms : dict of str to list of (int, float)
        Each signal's searchable terms (e.g. label classes with probabilities).
    """

    record: ImageRecord
    location: dict[str, Any]
    thumbnail: bytes | None
    data: dict[str, bytes]
    terms: dict[str, list[tuple[int, float]]]


@dataclass(frozen=True)
class Checkpoint:
    """A derived index saved to ``file`` (a name in the data folder), covering the change log up
    to ``seq``; ``meta`` says what it was built with (e.g. a vocabulary's digest)."""

    seq: int
    file: str
    meta: dict[str, Any]


class Catalog(abc.ABC):
    """The database behind a data folder. Thread-safe; many processes may open the same one."""

    # -- images --------------------------------------------------------------------------

    @abc.abstractmethod
    def add_image(self, image: NewImage) -> tuple[int, bool]:
        """Insert an image with its signals, or find it by SHA-256; record the location.

        Returns ``(id, created)``. When the content exists, only the location is recorded.
        """

    @abc.abstractmethod
    def add_location(self, image_id: int, location: dict[str, Any]) -> None:
        """Record that a catalogued image was seen at ``location`` (first/last seen kept)."""

    @abc.abstractmethod
    def touch_location(self, uri: str) -> None:
        """Refresh the last-seen date of a file location (``page_url`` empty)."""

    @abc.abstractmethod
    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        """Note that an image is no longer at ``uri`` on ``page_url``; keep the history."""

    @abc.abstractmethod
    def remove_image(self, image_id: int) -> bool:
        """Delete an image, its locations, thumbnail and signals (logged as changes)."""

    @abc.abstractmethod
    def update_facts(self, image_id: int, facts: dict[str, Any]) -> None:
        """Merge per-image facts (``detail``, ``jpeg_quality``, ...) into ``signals``."""

    @abc.abstractmethod
    def find_by_sha256(self, sha256: str) -> int | None: ...

    @abc.abstractmethod
    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[int]: ...

    @abc.abstractmethod
    def unchanged_file(self, uri: str, file_size: int, file_mtime: float) -> int | None:
        """The image id at path ``uri`` if the file's size and mtime are as recorded."""

    @abc.abstractmethod
    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        """Records (with ``locations``, oldest first) of these ids; missing ids left out."""

    @abc.abstractmethod
    def list_ids(self, offset: int = 0, limit: int = 50,
                 q: str | None = None) -> tuple[int, list[int]]:
        """``(total, ids)`` newest first, optionally filtered by a substring of a location,
        a page or the metadata."""

    @abc.abstractmethod
    def orientations(self, ids: Iterable[int]) -> dict[int, int]:
        """The canonicalising orientation (index into ``fingerprint.ORIENTATIONS``) of each."""

    @abc.abstractmethod
    def all_ids(self) -> set[int]: ...

    @abc.abstractmethod
    def thumbnail(self, image_id: int) -> bytes | None: ...

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """``images``, ``locations``, ``bytes``."""

    # -- signals and the change log ---------------------------------------------------------

    @abc.abstractmethod
    def put_signals(self, name: str, rows: list[tuple[int, bytes]],
                    terms: dict[int, list[tuple[int, float]]] | None = None) -> None:
        """Store (replace) one signal for images already catalogued; logged as changes.
        Rows of ids no longer catalogued are dropped."""

    @abc.abstractmethod
    def signals(self, name: str, ids: Iterable[int]) -> dict[int, bytes]:
        """The stored bytes of one signal for these ids (missing ones left out)."""

    @abc.abstractmethod
    def scan_signals(self, name: str, batch: int = 10_000) -> Iterator[list[tuple[int, bytes]]]:
        """Every ``(id, bytes)`` of one signal in id order, in batches (to rebuild an index)."""

    @abc.abstractmethod
    def signal_ids(self, name: str) -> set[int]: ...

    @abc.abstractmethod
    def count_signals(self, name: str) -> int: ...

    @abc.abstractmethod
    def ids_with_terms(self, name: str, terms: Iterable[int], min_weight: float) -> list[int]:
        """Ids whose terms of signal ``name`` among ``terms`` weigh at least ``min_weight``."""

    @abc.abstractmethod
    def position(self) -> int:
        """The change log's last sequence number (0 when nothing was logged)."""

    @abc.abstractmethod
    def changed_since(self, name: str, seq: int, upto: int) -> list[int] | None:
        """Ids whose signal ``name`` changed after ``seq`` up to ``upto``; None when the log no
        longer reaches back to ``seq`` (pruned below a newer checkpoint): reload one."""

    @abc.abstractmethod
    def changes_after(self, seq: int, name: str, limit: int = 1000) -> list[tuple[int, int]]:
        """``(seq, id)`` of the change-log entries of signal ``name`` after ``seq``, oldest
        first, at most ``limit``: for a consumer that follows the log (alerts on new images)
        and holds its position with :meth:`record_checkpoint`."""

    @abc.abstractmethod
    def checkpoint(self, name: str) -> Checkpoint | None:
        """The newest checkpoint recorded for signal ``name``."""

    @abc.abstractmethod
    def record_checkpoint(self, name: str, checkpoint: Checkpoint, *,
                          replace: bool = False) -> str | None:
        """Record a checkpoint if it is newer than the one recorded (or as new, with
        ``replace``: a rebuild replacing a damaged one); prune the change log below every
        signal's checkpoint. Returns the file it replaced (to delete), ``checkpoint.file``
        itself when it was not recorded, or None."""

    # -- watches, alerts and the webhook outbox (picorigin._watch) ----------------------------

    @abc.abstractmethod
    def add_watch(self, watch: dict[str, Any], pictures: list[dict[str, Any]]) -> int:
        """Store a watch and its pictures in one transaction; return the watch's id.

        ``watch``: ``label``, ``webhook`` (URL or None), ``secret``, ``kinds`` (list of str),
        ``allow_private`` (bool). Each picture: ``uri``, ``sha256``, ``pixel_sha256``,
        ``width``, ``height``, ``fingerprint`` and ``local`` (bytes; ``local`` may be None),
        ``thumbnail`` (bytes or None). Changes :meth:`watch_version`.
        """

    @abc.abstractmethod
    def watches(self) -> list[dict[str, Any]]:
        """Every watch, oldest first, with ``pictures`` (``id, uri, sha256, width, height``,
        no signals) and ``created_at``."""

    @abc.abstractmethod
    def watch_pictures(self) -> list[dict[str, Any]]:
        """Every watched picture with its signals: ``id, watch_id, uri, sha256, pixel_sha256,
        width, height, fingerprint, local`` (to build the watch index)."""

    @abc.abstractmethod
    def watch_thumbnail(self, picture_id: int) -> bytes | None: ...

    @abc.abstractmethod
    def remove_watch(self, watch_id: int) -> bool:
        """Delete a watch with its pictures, alerts and deliveries. Changes
        :meth:`watch_version`."""

    @abc.abstractmethod
    def watch_version(self) -> int:
        """A number that changes whenever a watch is added or removed (by any process)."""

    @abc.abstractmethod
    def add_alert(self, alert: dict[str, Any],
                  delivery: dict[str, Any] | None = None) -> tuple[int, bool]:
        """Record that a watched picture has a copy; return ``(alert id, created)``.

        ``alert``: ``watch_id, picture_id, image_id, image_sha256, kind, score, details``
        (a dict). One alert per ``(picture_id, image_sha256)``: when it exists, only its
        ``image_id`` and ``updated_at`` change (and its kind and score, when stronger; never
        its status), and nothing is queued. A new alert with ``delivery`` (``key``,
        ``payload`` dict, ``next_at`` epoch seconds) queues it in the outbox in the same
        transaction, the payload's ``alert_id`` set to the new id.
        """

    @abc.abstractmethod
    def alerts(self, *, since: str | None = None, watch_id: int | None = None,
               status: str | None = None, limit: int = 1000,
               offset: int = 0) -> list[dict[str, Any]]:
        """Alerts newest first (``created_at >= since`` when given): ``id, watch_id,
        picture_id, image_id, image_sha256, kind, score, details, status, reason,
        created_at, updated_at``."""

    @abc.abstractmethod
    def alert(self, alert_id: int) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def set_alert_status(self, alert_id: int, status: str, reason: str | None = None) -> bool:
        """Set an alert's status (``new``, ``acknowledged``, ``dismissed``) and reason."""

    @abc.abstractmethod
    def claim_deliveries(self, now: float, lease: float, limit: int = 50) -> list[dict[str, Any]]:
        """Pending deliveries due at ``now``, each leased for ``lease`` seconds (its
        ``next_at`` moved on, so another process does not send it meanwhile): ``id, alert_id,
        watch_id, key, payload, attempts, webhook, secret, allow_private``."""

    @abc.abstractmethod
    def record_attempt(self, delivery_id: int, attempt: dict[str, Any], *, status: str,
                       next_at: float | None = None) -> None:
        """Append an attempt (``at, status_code, error, ms``) to a delivery and set its
        ``status`` (``pending``, ``delivered``, ``failed``) and, when pending, ``next_at``."""

    @abc.abstractmethod
    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        """Deliveries (of one alert, or all), oldest first: ``id, alert_id, key, status,
        attempts, next_at, created_at, history`` (the attempts, oldest first)."""

    # -- small settings kept with the data ------------------------------------------------

    @abc.abstractmethod
    def get_meta(self, key: str) -> str | None: ...

    @abc.abstractmethod
    def set_meta(self, key: str, value: str) -> None: ...

    @abc.abstractmethod
    def close(self) -> None: ...

    # -- maintenance (optional: a backend without them says so) ------------------------------

    def integrity(self) -> list[str]:
        """Problems the database itself reports (empty when sound)."""
        return []

    def backup(self, path: Path) -> None:
        """Write a consistent copy of the whole catalog to ``path`` while others keep using it."""
        raise PicoriginError(f"{type(self).__name__} cannot be backed up by picorigin; use "
                             "the database's own tools")
