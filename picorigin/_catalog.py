"""The SQLite catalog: one row per distinct image content, every place it was seen, its metadata.

The catalog is the source of truth: index files are checkpoints derived from it. One connection
writes (guarded by a lock); each thread reads through its own connection, which WAL mode lets
run beside the writer. Every write bumps ``meta.epoch`` in the same transaction, so an index file
saved with an older epoch is known to be stale and is rebuilt from the codes stored here.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

__all__ = ["Catalog", "ImageRecord", "now"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    pixel_sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
    fingerprint BLOB NOT NULL,
    orientation INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    signals TEXT NOT NULL DEFAULT '{}',
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_pixel_sha256 ON images (pixel_sha256);
CREATE TABLE IF NOT EXISTS locations (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    uri TEXT NOT NULL,
    page_url TEXT NOT NULL DEFAULT '',
    page_title TEXT,
    alt TEXT,
    caption TEXT,
    author TEXT,
    author_source TEXT,
    license TEXT,
    published TEXT,
    file_size INTEGER,
    file_mtime REAL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    removed_at TEXT,
    UNIQUE (uri, page_url)
);
CREATE INDEX IF NOT EXISTS locations_image_id ON locations (image_id);
CREATE TABLE IF NOT EXISTS thumbnails (
    image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    jpeg BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', '0'), ('schema', '1');
"""

SIGHTING_FIELDS = (
    "page_url", "page_title", "alt", "caption", "author", "author_source", "license", "published",
)


def now() -> str:
    """The current UTC time as ISO 8601, second precision."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


ImageRecord = dict[str, Any]


class Catalog:
    """The catalog in ``folder/catalog.sqlite``.

    Parameters
    ----------
    path : Path
        The SQLite file; created with its schema when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._writer = self._connect()
        with self._write_lock, self._writer:
            self._writer.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode: a commit survives a process crash; only an OS crash or power
        # loss can roll back the last transactions, never corrupt the file.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        return connection

    @property
    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            self._readers = getattr(self, "_readers", [])
            self._readers.append(connection)
        return connection

    def close(self) -> None:
        for connection in getattr(self, "_readers", []):
            connection.close()
        self._readers = []
        self._local = threading.local()
        self._writer.close()

    # -- writes ----------------------------------------------------------------------------

    def _bump_epoch(self, connection: sqlite3.Connection) -> None:
        connection.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'epoch'"
        )

    def insert_image(
        self, record: ImageRecord, location: dict[str, Any], thumbnail: bytes | None
    ) -> tuple[int, bool]:
        """Insert an image (or find it by SHA-256) and record a location.

        Returns
        -------
        (id, created) : (int, bool)
        """
        with self._write_lock, self._writer as connection:
            row = connection.execute(
                "SELECT id FROM images WHERE sha256 = ?", (record["sha256"],)
            ).fetchone()
            created = row is None
            if created:
                cursor = connection.execute(
                    "INSERT INTO images (sha256, pixel_sha256, width, height, format, byte_size,"
                    " fingerprint, orientation, metadata, signals, added_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record["sha256"],
                        record["pixel_sha256"],
                        record["width"],
                        record["height"],
                        record["format"],
                        record["byte_size"],
                        record["fingerprint"],
                        record["orientation"],
                        json.dumps(record.get("metadata") or {}, sort_keys=True),
                        json.dumps(record.get("signals") or {}, sort_keys=True),
                        now(),
                    ),
                )
                image_id = int(cursor.lastrowid)
                if thumbnail:
                    connection.execute(
                        "INSERT INTO thumbnails (image_id, jpeg) VALUES (?, ?)",
                        (image_id, thumbnail),
                    )
                self._bump_epoch(connection)
            else:
                image_id = int(row["id"])
            self._upsert_location(connection, image_id, location)
        return image_id, created

    def add_location(self, image_id: int, location: dict[str, Any]) -> None:
        """Record that an already catalogued image was seen at ``location``."""
        with self._write_lock, self._writer as connection:
            self._upsert_location(connection, image_id, location)

    def _upsert_location(
        self, connection: sqlite3.Connection, image_id: int, location: dict[str, Any]
    ) -> None:
        seen = location.get("seen") or now()
        fields = {name: location.get(name) for name in SIGHTING_FIELDS}
        fields["page_url"] = fields["page_url"] or ""
        connection.execute(
            "INSERT INTO locations (image_id, uri, page_url, page_title, alt, caption, author,"
            " author_source, license, published, file_size, file_mtime, first_seen, last_seen)"
            " VALUES (:image_id, :uri, :page_url, :page_title, :alt, :caption, :author,"
            " :author_source, :license, :published, :file_size, :file_mtime, :seen, :seen)"
            " ON CONFLICT (uri, page_url) DO UPDATE SET"
            " image_id = excluded.image_id, last_seen = excluded.last_seen, removed_at = NULL,"
            " file_size = excluded.file_size, file_mtime = excluded.file_mtime,"
            " page_title = coalesce(excluded.page_title, page_title),"
            " alt = coalesce(excluded.alt, alt), caption = coalesce(excluded.caption, caption),"
            " author = coalesce(excluded.author, author),"
            " author_source = coalesce(excluded.author_source, author_source),"
            " license = coalesce(excluded.license, license),"
            " published = coalesce(excluded.published, published)",
            {
                **fields,
                "image_id": image_id,
                "uri": location["uri"],
                "file_size": location.get("file_size"),
                "file_mtime": location.get("file_mtime"),
                "seen": seen,
            },
        )

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        """Note that an image is no longer at ``uri`` on ``page_url``; keep the history."""
        with self._write_lock, self._writer as connection:
            cursor = connection.execute(
                "UPDATE locations SET removed_at = ? WHERE uri = ? AND page_url = ?"
                " AND removed_at IS NULL",
                (now(), uri, page_url or ""),
            )
        return cursor.rowcount > 0

    def remove_image(self, image_id: int) -> bool:
        with self._write_lock, self._writer as connection:
            cursor = connection.execute("DELETE FROM images WHERE id = ?", (image_id,))
            if cursor.rowcount:
                self._bump_epoch(connection)
        return cursor.rowcount > 0

    def update_signals(self, image_id: int, signals: dict[str, Any]) -> None:
        """Merge per-image facts computed by optional stages (labels, palette, detail, ...)."""
        with self._write_lock, self._writer as connection:
            row = connection.execute(
                "SELECT signals FROM images WHERE id = ?", (image_id,)
            ).fetchone()
            if row is not None:
                merged = {**json.loads(row["signals"]), **signals}
                connection.execute(
                    "UPDATE images SET signals = ? WHERE id = ?",
                    (json.dumps(merged, sort_keys=True), image_id),
                )

    # -- reads -----------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        row = self._reader.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return int(row["value"])

    def find_by_sha256(self, sha256: str) -> int | None:
        row = self._reader.execute("SELECT id FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else int(row["id"])

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[int]:
        rows = self._reader.execute(
            "SELECT id FROM images WHERE pixel_sha256 = ?", (pixel_sha256,)
        ).fetchall()
        return [int(row["id"]) for row in rows]

    def unchanged_file(self, uri: str, file_size: int, file_mtime: float) -> int | None:
        """The image id recorded at path ``uri`` if the file's size and mtime are unchanged."""
        row = self._reader.execute(
            "SELECT image_id FROM locations WHERE uri = ? AND page_url = ''"
            " AND file_size = ? AND file_mtime = ?",
            (uri, file_size, file_mtime),
        ).fetchone()
        return None if row is None else int(row["image_id"])

    def touch_location(self, uri: str) -> None:
        with self._write_lock, self._writer as connection:
            connection.execute(
                "UPDATE locations SET last_seen = ?, removed_at = NULL"
                " WHERE uri = ? AND page_url = ''",
                (now(), uri),
            )

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        """Records of these images (missing ids are left out), with their locations."""
        ids = sorted({int(i) for i in ids})
        if not ids:
            return {}
        out: dict[int, ImageRecord] = {}
        connection = self._reader
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in connection.execute(
                "SELECT id, sha256, pixel_sha256, width, height, format, byte_size, orientation,"
                f" metadata, signals, added_at FROM images WHERE id IN ({marks})",
                chunk,
            ):
                record = dict(row)
                record["metadata"] = json.loads(record["metadata"])
                record["signals"] = json.loads(record["signals"])
                record["locations"] = []
                out[record["id"]] = record
            for row in connection.execute(
                "SELECT image_id, uri, page_url, page_title, alt, caption, author, author_source,"
                f" license, published, first_seen, last_seen, removed_at FROM locations"
                f" WHERE image_id IN ({marks}) ORDER BY first_seen, id",
                chunk,
            ):
                location = dict(row)
                out[location.pop("image_id")]["locations"].append(location)
        return out

    def list_ids(self, offset: int = 0, limit: int = 50, q: str | None = None) -> tuple[int, list[int]]:
        """(total, ids) of images, newest first, optionally filtered by a substring of a
        location or the creator."""
        where, args = "", []
        if q:
            where = (
                "WHERE images.metadata LIKE ? OR EXISTS (SELECT 1 FROM locations"
                " WHERE locations.image_id = images.id AND (uri LIKE ? OR page_url LIKE ?"
                " OR page_title LIKE ?))"
            )
            args = [f"%{q}%"] * 4
        total = self._reader.execute(f"SELECT count(*) FROM images {where}", args).fetchone()[0]
        rows = self._reader.execute(
            f"SELECT id FROM images {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ).fetchall()
        return int(total), [int(row["id"]) for row in rows]

    def orientations(self, ids: Iterable[int]) -> dict[int, int]:
        """The stored canonicalising orientation (an index into ORIENTATIONS) of each image."""
        ids = [int(i) for i in ids]
        out: dict[int, int] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._reader.execute(
                f"SELECT id, orientation FROM images WHERE id IN ({marks})", chunk
            ):
                out[int(row["id"])] = int(row["orientation"])
        return out

    def all_ids(self) -> set[int]:
        return {int(row[0]) for row in self._reader.execute("SELECT id FROM images")}

    def thumbnail(self, image_id: int) -> bytes | None:
        row = self._reader.execute(
            "SELECT jpeg FROM thumbnails WHERE image_id = ?", (image_id,)
        ).fetchone()
        return None if row is None else bytes(row["jpeg"])

    def fingerprints(self, batch: int = 100_000) -> Iterator[tuple[list[int], list[bytes]]]:
        """Every (id, fingerprint) pair, in batches, for rebuilding an index."""
        last = 0
        while True:
            rows = self._reader.execute(
                "SELECT id, fingerprint FROM images WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [int(r["id"]) for r in rows], [bytes(r["fingerprint"]) for r in rows]
            last = int(rows[-1]["id"])

    def counts(self) -> dict[str, int]:
        connection = self._reader
        return {
            "images": connection.execute("SELECT count(*) FROM images").fetchone()[0],
            "locations": connection.execute("SELECT count(*) FROM locations").fetchone()[0],
            "bytes": connection.execute(
                "SELECT coalesce(sum(byte_size), 0) FROM images"
            ).fetchone()[0],
        }
