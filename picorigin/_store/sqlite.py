"""The embedded catalog: one SQLite file in WAL mode, shared by every process on the folder.

Each process holds one writing connection and one reading connection per thread. Writes run in
``BEGIN IMMEDIATE`` transactions, so two processes never both hold a read snapshot they then try
to upgrade (which SQLite refuses at once, busy timeout or not); they queue on the busy timeout
instead. SQLite serialises writers, so the change log's ``seq`` (AUTOINCREMENT) grows in commit
order: a reader that has seen position P has seen every entry up to P.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
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

__all__ = ["SQLiteCatalog"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    pixel_sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    byte_size INTEGER NOT NULL,
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
    rights TEXT,
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
CREATE TABLE IF NOT EXISTS signal_data (
    name TEXT NOT NULL,
    id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    data BLOB NOT NULL,
    PRIMARY KEY (name, id)
);
CREATE INDEX IF NOT EXISTS signal_data_id ON signal_data (id);
CREATE TABLE IF NOT EXISTS signal_terms (
    name TEXT NOT NULL,
    term INTEGER NOT NULL,
    id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    weight REAL NOT NULL,
    PRIMARY KEY (name, term, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS signal_terms_id ON signal_terms (id);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, seq INTEGER NOT NULL, file TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Watches, alerts and the webhook outbox (picorigin._watch). An alert is one per watched
# picture and copy content (its SHA-256), so a re-added image finds its old alert and dismissal.
_WATCH_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    id INTEGER PRIMARY KEY, label TEXT, webhook TEXT, secret TEXT NOT NULL,
    kinds TEXT NOT NULL, allow_private INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS watch_pictures (
    id INTEGER PRIMARY KEY,
    watch_id INTEGER NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
    uri TEXT NOT NULL, sha256 TEXT NOT NULL, pixel_sha256 TEXT NOT NULL,
    width INTEGER NOT NULL, height INTEGER NOT NULL,
    fingerprint BLOB NOT NULL, local BLOB, thumbnail BLOB);
CREATE INDEX IF NOT EXISTS watch_pictures_watch ON watch_pictures (watch_id);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    watch_id INTEGER NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
    picture_id INTEGER NOT NULL REFERENCES watch_pictures (id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL, image_sha256 TEXT NOT NULL, kind TEXT NOT NULL,
    score REAL NOT NULL, details TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'new', reason TEXT,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    UNIQUE (picture_id, image_sha256));
CREATE INDEX IF NOT EXISTS alerts_created ON alerts (created_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
CREATE TABLE IF NOT EXISTS delivery_attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at TEXT NOT NULL, status_code INTEGER, error TEXT, ms REAL);
"""

_IMAGE_COLUMNS = ("sha256", "pixel_sha256", "width", "height", "format", "byte_size",
                  "orientation")


class SQLiteCatalog(Catalog):
    """The catalog in one SQLite file (``catalog.sqlite`` in the data folder).

    Parameters
    ----------
    path : Path
        The SQLite file; created with its schema when missing, upgraded from schema 1.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._writer = self._connect()
        with self._write_lock:
            # Statement by statement in autocommit (executescript commits anything pending);
            # IF NOT EXISTS makes a second process opening the folder at once harmless.
            self._writer.executescript(_SCHEMA)
            self._writer.executescript(_WATCH_SCHEMA)
        with self._transaction() as db:
            if "fingerprint" in _columns(db, "images"):
                from .migrate import upgrade_schema_1

                upgrade_schema_1(db)
            if "rights" not in _columns(db, "locations"):
                db.execute("ALTER TABLE locations ADD COLUMN rights TEXT")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    def _connect(self) -> sqlite3.Connection:
        # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) in _transaction.
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=60,
                             isolation_level=None)
        db.row_factory = sqlite3.Row
        _wal(db)
        # NORMAL in WAL mode: a commit survives a process crash; only an OS crash or power
        # loss can roll back the last transactions, never corrupt the file.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = self._writer
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            if db.in_transaction:
                db.execute("COMMIT")

    @property
    def _reader(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._readers_lock:
                self._readers.append(connection)
        return connection

    def close(self) -> None:
        with self._readers_lock:
            for connection in self._readers:
                connection.close()
            self._readers = []
        self._local = threading.local()
        with self._write_lock:
            self._writer.close()

    # -- images --------------------------------------------------------------------------

    def add_image(self, image: NewImage) -> tuple[int, bool]:
        record = image.record
        with self._transaction() as db:
            row = db.execute("SELECT id FROM images WHERE sha256 = ?",
                             (record["sha256"],)).fetchone()
            created = row is None
            if created:
                cursor = db.execute(
                    f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}, metadata, signals,"
                    " added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*(record[c] for c in _IMAGE_COLUMNS),
                     json.dumps(record.get("metadata") or {}, sort_keys=True),
                     json.dumps(record.get("signals") or {}, sort_keys=True), now()),
                )
                image_id = int(cursor.lastrowid)
                if image.thumbnail:
                    db.execute("INSERT INTO thumbnails (image_id, jpeg) VALUES (?, ?)",
                               (image_id, image.thumbnail))
                for name, data in image.data.items():
                    self._put(db, name, [(image_id, data)],
                              {image_id: image.terms.get(name, [])})
            else:
                image_id = int(row["id"])
            _upsert_location(db, image_id, image.location)
        return image_id, created

    def add_location(self, image_id: int, location: dict[str, Any]) -> None:
        with self._transaction() as db:
            _upsert_location(db, image_id, location)

    def touch_location(self, uri: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE locations SET last_seen = ?, removed_at = NULL"
                       " WHERE uri = ? AND page_url = ''", (now(), uri))

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE locations SET removed_at = ? WHERE uri = ? AND page_url = ?"
                " AND removed_at IS NULL", (now(), uri, page_url or ""))
        return cursor.rowcount > 0

    def remove_image(self, image_id: int) -> bool:
        with self._transaction() as db:
            db.execute("INSERT INTO changes (id, name) SELECT id, name FROM signal_data"
                       " WHERE id = ?", (image_id,))
            cursor = db.execute("DELETE FROM images WHERE id = ?", (image_id,))
        return cursor.rowcount > 0

    def update_facts(self, image_id: int, facts: dict[str, Any]) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT signals FROM images WHERE id = ?", (image_id,)).fetchone()
            if row is not None:
                merged = {**json.loads(row["signals"]), **facts}
                db.execute("UPDATE images SET signals = ? WHERE id = ?",
                           (json.dumps(merged, sort_keys=True), image_id))

    def find_by_sha256(self, sha256: str) -> int | None:
        row = self._reader.execute("SELECT id FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        return None if row is None else int(row["id"])

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[int]:
        rows = self._reader.execute("SELECT id FROM images WHERE pixel_sha256 = ?",
                                    (pixel_sha256,)).fetchall()
        return [int(row["id"]) for row in rows]

    def unchanged_file(self, uri: str, file_size: int, file_mtime: float) -> int | None:
        row = self._reader.execute(
            "SELECT image_id FROM locations WHERE uri = ? AND page_url = ''"
            " AND file_size = ? AND file_mtime = ?", (uri, file_size, file_mtime)).fetchone()
        return None if row is None else int(row["image_id"])

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        out: dict[int, ImageRecord] = {}
        for chunk, marks in _chunks(ids):
            for row in self._reader.execute(
                    f"SELECT id, {', '.join(_IMAGE_COLUMNS)}, metadata, signals, added_at"
                    f" FROM images WHERE id IN ({marks})", chunk):
                record = dict(row)
                record["metadata"] = json.loads(record["metadata"])
                record["signals"] = json.loads(record["signals"])
                record["locations"] = []
                out[record["id"]] = record
            for row in self._reader.execute(
                    "SELECT image_id, uri, page_url, page_title, alt, caption, author,"
                    " author_source, license, published, rights, first_seen, last_seen,"
                    f" removed_at FROM locations WHERE image_id IN ({marks})"
                    " ORDER BY first_seen, id", chunk):
                location = dict(row)
                location["rights"] = json.loads(location["rights"]) if location["rights"] else None
                image = out.get(location.pop("image_id"))
                if image is not None:  # a location committed between the two reads
                    image["locations"].append(location)
        return out

    def list_ids(self, offset: int = 0, limit: int = 50,
                 q: str | None = None) -> tuple[int, list[int]]:
        where, args = "", []
        if q:
            where = ("WHERE images.metadata LIKE ? OR EXISTS (SELECT 1 FROM locations"
                     " WHERE locations.image_id = images.id AND (uri LIKE ? OR page_url LIKE ?"
                     " OR page_title LIKE ?))")
            args = [f"%{q}%"] * 4
        total = self._reader.execute(f"SELECT count(*) FROM images {where}", args).fetchone()[0]
        rows = self._reader.execute(
            f"SELECT id FROM images {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset]).fetchall()
        return int(total), [int(row["id"]) for row in rows]

    def orientations(self, ids: Iterable[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for chunk, marks in _chunks(ids):
            for row in self._reader.execute(
                    f"SELECT id, orientation FROM images WHERE id IN ({marks})", chunk):
                out[int(row["id"])] = int(row["orientation"])
        return out

    def all_ids(self) -> set[int]:
        return {int(row[0]) for row in self._reader.execute("SELECT id FROM images")}

    def thumbnail(self, image_id: int) -> bytes | None:
        row = self._reader.execute("SELECT jpeg FROM thumbnails WHERE image_id = ?",
                                   (image_id,)).fetchone()
        return None if row is None else bytes(row["jpeg"])

    def counts(self) -> dict[str, int]:
        db = self._reader
        return {
            "images": db.execute("SELECT count(*) FROM images").fetchone()[0],
            "locations": db.execute("SELECT count(*) FROM locations").fetchone()[0],
            "bytes": db.execute("SELECT coalesce(sum(byte_size), 0) FROM images").fetchone()[0],
        }

    # -- signals and the change log ---------------------------------------------------------

    def put_signals(self, name: str, rows: list[tuple[int, bytes]],
                    terms: dict[int, list[tuple[int, float]]] | None = None) -> None:
        with self._transaction() as db:
            self._put(db, name, rows, terms or {})

    @staticmethod
    def _put(db: sqlite3.Connection, name: str, rows: list[tuple[int, bytes]],
             terms: dict[int, list[tuple[int, float]]]) -> None:
        present = {int(r[0]) for chunk, marks in _chunks(i for i, _ in rows)
                   for r in db.execute(f"SELECT id FROM images WHERE id IN ({marks})", chunk)}
        rows = [(name, int(i), bytes(data)) for i, data in rows if int(i) in present]
        db.executemany("INSERT OR REPLACE INTO signal_data (name, id, data) VALUES (?, ?, ?)",
                       rows)
        db.executemany("DELETE FROM signal_terms WHERE name = ? AND id = ?",
                       [(name, i) for _, i, _ in rows])
        db.executemany("INSERT OR REPLACE INTO signal_terms VALUES (?, ?, ?, ?)",
                       [(name, int(t), i, float(w)) for _, i, _ in rows
                        for t, w in terms.get(i, [])])
        db.executemany("INSERT INTO changes (id, name) VALUES (?, ?)",
                       [(i, name) for _, i, _ in rows])

    def signals(self, name: str, ids: Iterable[int]) -> dict[int, bytes]:
        out = {}
        for chunk, marks in _chunks(ids):
            for key, data in self._reader.execute(
                    f"SELECT id, data FROM signal_data WHERE name = ? AND id IN ({marks})",
                    [name, *chunk]):
                out[int(key)] = bytes(data)
        return out

    def scan_signals(self, name: str, batch: int = 10_000) -> Iterator[list[tuple[int, bytes]]]:
        last = -1
        while True:
            rows = self._reader.execute(
                "SELECT id, data FROM signal_data WHERE name = ? AND id > ? ORDER BY id LIMIT ?",
                (name, last, batch)).fetchall()
            if not rows:
                return
            yield [(int(key), bytes(data)) for key, data in rows]
            last = int(rows[-1][0])

    def signal_ids(self, name: str) -> set[int]:
        return {int(r[0]) for r in self._reader.execute(
            "SELECT id FROM signal_data WHERE name = ?", (name,))}

    def count_signals(self, name: str) -> int:
        return int(self._reader.execute("SELECT count(*) FROM signal_data WHERE name = ?",
                                        (name,)).fetchone()[0])

    def ids_with_terms(self, name: str, terms: Iterable[int], min_weight: float) -> list[int]:
        terms = sorted({int(t) for t in terms})
        if not terms:
            return []
        marks = ",".join("?" * len(terms))
        rows = self._reader.execute(
            f"SELECT id FROM signal_terms WHERE name = ? AND term IN ({marks})"
            " GROUP BY id HAVING SUM(weight) >= ?", [name, *terms, min_weight])
        return sorted(int(r[0]) for r in rows)

    def position(self) -> int:
        row = self._reader.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return int(row[0]) if row else 0

    def changed_since(self, name: str, seq: int, upto: int) -> list[int] | None:
        db = self._reader
        # One read snapshot for both statements: a prune committed between them is not seen.
        db.execute("BEGIN")
        try:
            lowest = db.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
            if lowest is None or lowest > seq + 1:
                return None
            return [int(r[0]) for r in db.execute(
                "SELECT DISTINCT id FROM changes WHERE seq > ? AND seq <= ? AND name = ?",
                (seq, upto, name))]
        finally:
            db.execute("COMMIT")

    def changes_after(self, seq: int, name: str, limit: int = 1000) -> list[tuple[int, int]]:
        return [(int(s), int(i)) for s, i in self._reader.execute(
            "SELECT seq, id FROM changes WHERE seq > ? AND name = ? ORDER BY seq LIMIT ?",
            (seq, name, limit))]

    def checkpoint(self, name: str) -> Checkpoint | None:
        row = self._reader.execute("SELECT seq, file, meta FROM checkpoints WHERE name = ?",
                                   (name,)).fetchone()
        return None if row is None else Checkpoint(int(row[0]), row[1], json.loads(row[2]))

    def record_checkpoint(self, name: str, checkpoint: Checkpoint, *,
                          replace: bool = False) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT seq, file FROM checkpoints WHERE name = ?",
                             (name,)).fetchone()
            if row is not None and int(row[0]) > checkpoint.seq - (0 if replace else 1):
                return checkpoint.file
            db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                       (name, checkpoint.seq, checkpoint.file,
                        json.dumps(checkpoint.meta, sort_keys=True)))
            # Keep every entry some signal's checkpoint does not yet cover.
            lowest = db.execute("SELECT MIN(seq) FROM checkpoints").fetchone()[0]
            db.execute("DELETE FROM changes WHERE seq <= ?", (lowest,))
        return None if row is None else row[1]

    def integrity(self) -> list[str]:
        return _integrity(self._reader)

    def backup(self, path: Path) -> None:
        # SQLite's online backup: a consistent snapshot while other processes keep writing.
        # Checkpoint records are dropped from the copy: the index files are not in it, and
        # derived indexes rebuild from the rows.
        target = sqlite3.connect(path)
        try:
            self._reader.backup(target)
            with target:
                target.execute("DELETE FROM checkpoints")
        finally:
            target.close()

    # -- watches, alerts and the webhook outbox (picorigin._watch) ----------------------------

    def add_watch(self, watch: dict[str, Any], pictures: list[dict[str, Any]]) -> int:
        with self._transaction() as db:
            watch_id = int(db.execute(
                "INSERT INTO watches (label, webhook, secret, kinds, allow_private, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (watch.get("label"), watch.get("webhook"), watch["secret"],
                 ",".join(watch["kinds"]), int(bool(watch.get("allow_private"))), now()),
            ).lastrowid)
            db.executemany(
                "INSERT INTO watch_pictures (watch_id, uri, sha256, pixel_sha256, width, height,"
                " fingerprint, local, thumbnail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(watch_id, p["uri"], p["sha256"], p["pixel_sha256"], p["width"], p["height"],
                  p["fingerprint"], p.get("local"), p.get("thumbnail")) for p in pictures])
            self._bump_watch_version(db)
        return watch_id

    @staticmethod
    def _bump_watch_version(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta VALUES ('watch.version', '1') ON CONFLICT (key) DO UPDATE"
                   " SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)")

    def watches(self) -> list[dict[str, Any]]:
        db = self._reader
        out = []
        for row in db.execute("SELECT * FROM watches ORDER BY id").fetchall():
            watch = dict(row)
            watch["kinds"] = [k for k in watch["kinds"].split(",") if k]
            watch["allow_private"] = bool(watch["allow_private"])
            watch["pictures"] = [dict(r) for r in db.execute(
                "SELECT id, uri, sha256, width, height FROM watch_pictures WHERE watch_id = ?"
                " ORDER BY id", (watch["id"],))]
            out.append(watch)
        return out

    def watch_pictures(self) -> list[dict[str, Any]]:
        rows = self._reader.execute(
            "SELECT id, watch_id, uri, sha256, pixel_sha256, width, height, fingerprint, local"
            " FROM watch_pictures ORDER BY id").fetchall()
        return [{**dict(r), "fingerprint": bytes(r["fingerprint"]),
                 "local": None if r["local"] is None else bytes(r["local"])} for r in rows]

    def watch_thumbnail(self, picture_id: int) -> bytes | None:
        row = self._reader.execute("SELECT thumbnail FROM watch_pictures WHERE id = ?",
                                   (picture_id,)).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def remove_watch(self, watch_id: int) -> bool:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM watches WHERE id = ?", (watch_id,))
            if cursor.rowcount:
                self._bump_watch_version(db)
        return cursor.rowcount > 0

    def watch_version(self) -> int:
        row = self._reader.execute(
            "SELECT value FROM meta WHERE key = 'watch.version'").fetchone()
        return int(row[0]) if row else 0

    def add_alert(self, alert: dict[str, Any],
                  delivery: dict[str, Any] | None = None) -> tuple[int, bool]:
        stamp = now()
        with self._transaction() as db:
            row = db.execute("SELECT id, kind, score FROM alerts WHERE picture_id = ?"
                             " AND image_sha256 = ?",
                             (alert["picture_id"], alert["image_sha256"])).fetchone()
            if row is not None:
                stronger = stronger_alert(alert, row["kind"], row["score"])
                db.execute("UPDATE alerts SET image_id = ?, updated_at = ? WHERE id = ?",
                           (alert["image_id"], stamp, row["id"]))
                if stronger:
                    db.execute("UPDATE alerts SET kind = ?, score = ?, details = ? WHERE id = ?",
                               (alert["kind"], float(alert["score"]),
                                json.dumps(alert.get("details") or {}, sort_keys=True),
                                row["id"]))
                return int(row["id"]), False
            alert_id = int(db.execute(
                "INSERT INTO alerts (watch_id, picture_id, image_id, image_sha256, kind, score,"
                " details, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (alert["watch_id"], alert["picture_id"], alert["image_id"],
                 alert["image_sha256"], alert["kind"], float(alert["score"]),
                 json.dumps(alert.get("details") or {}, sort_keys=True), stamp, stamp),
            ).lastrowid)
            if delivery is not None:
                payload = {**delivery["payload"], "alert_id": alert_id}
                db.execute("INSERT INTO deliveries (alert_id, key, payload, next_at, created_at)"
                           " VALUES (?, ?, ?, ?, ?)",
                           (alert_id, delivery["key"], json.dumps(payload, sort_keys=True),
                            float(delivery["next_at"]), stamp))
        return alert_id, True

    def alerts(self, *, since: str | None = None, watch_id: int | None = None,
               status: str | None = None, limit: int = 1000,
               offset: int = 0) -> list[dict[str, Any]]:
        where, args = [], []
        for clause, value in (("created_at >= ?", since), ("watch_id = ?", watch_id),
                              ("status = ?", status)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM alerts" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self._reader.execute(f"{sql} ORDER BY id DESC LIMIT ? OFFSET ?",
                                    [*args, limit, offset]).fetchall()
        return [_alert(row) for row in rows]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        row = self._reader.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else _alert(row)

    def set_alert_status(self, alert_id: int, status: str, reason: str | None = None) -> bool:
        with self._transaction() as db:
            cursor = db.execute("UPDATE alerts SET status = ?, reason = ?, updated_at = ?"
                                " WHERE id = ?", (status, reason, now(), alert_id))
        return cursor.rowcount > 0

    def claim_deliveries(self, now: float, lease: float, limit: int = 50) -> list[dict[str, Any]]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT d.id, d.alert_id, a.watch_id, d.key, d.payload, d.attempts, w.webhook,"
                " w.secret, w.allow_private FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
                " JOIN watches w ON w.id = a.watch_id WHERE d.status = 'pending'"
                " AND d.next_at <= ? ORDER BY d.next_at, d.id LIMIT ?", (now, limit)).fetchall()
            db.executemany("UPDATE deliveries SET next_at = ? WHERE id = ?",
                           [(now + lease, row["id"]) for row in rows])
        return [{**dict(row), "payload": json.loads(row["payload"]),
                 "allow_private": bool(row["allow_private"])} for row in rows]

    def record_attempt(self, delivery_id: int, attempt: dict[str, Any], *, status: str,
                       next_at: float | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO delivery_attempts (delivery_id, at, status_code, error, ms)"
                       " VALUES (?, ?, ?, ?, ?)",
                       (delivery_id, attempt.get("at") or now(), attempt.get("status_code"),
                        attempt.get("error"), attempt.get("ms")))
            db.execute("UPDATE deliveries SET attempts = attempts + 1, status = ?,"
                       " next_at = coalesce(?, next_at) WHERE id = ?",
                       (status, next_at, delivery_id))

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        db = self._reader
        sql = "SELECT id, alert_id, key, status, attempts, next_at, created_at FROM deliveries"
        rows = db.execute(sql + (" WHERE alert_id = ?" if alert_id is not None else "")
                          + " ORDER BY id", () if alert_id is None else (alert_id,)).fetchall()
        out = []
        for row in rows:
            history = [dict(r) for r in db.execute(
                "SELECT at, status_code, error, ms FROM delivery_attempts WHERE delivery_id = ?"
                " ORDER BY id", (row["id"],))]
            out.append({**dict(row), "history": history})
        return out

    def get_meta(self, key: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _integrity(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]

def _alert(row: sqlite3.Row) -> dict[str, Any]:
    alert = dict(row)
    alert["details"] = json.loads(alert["details"])
    return alert


def _columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


def _chunks(ids: Iterable[int], size: int = 500) -> Iterator[tuple[list[int], str]]:
    ids = sorted({int(i) for i in ids})
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        yield chunk, ",".join("?" * len(chunk))


def _upsert_location(db: sqlite3.Connection, image_id: int, location: dict[str, Any]) -> None:
    seen = location.get("seen") or now()
    fields = {name: location.get(name) for name in SIGHTING_FIELDS}
    fields["page_url"] = fields["page_url"] or ""
    db.execute(
        "INSERT INTO locations (image_id, uri, page_url, page_title, alt, caption, author,"
        " author_source, license, published, rights, file_size, file_mtime, first_seen,"
        " last_seen) VALUES (:image_id, :uri, :page_url, :page_title, :alt, :caption, :author,"
        " :author_source, :license, :published, :rights, :file_size, :file_mtime, :seen, :seen)"
        " ON CONFLICT (uri, page_url) DO UPDATE SET"
        " image_id = excluded.image_id, last_seen = excluded.last_seen, removed_at = NULL,"
        " file_size = excluded.file_size, file_mtime = excluded.file_mtime,"
        " page_title = coalesce(excluded.page_title, page_title),"
        " alt = coalesce(excluded.alt, alt), caption = coalesce(excluded.caption, caption),"
        " author = coalesce(excluded.author, author),"
        " author_source = coalesce(excluded.author_source, author_source),"
        " license = coalesce(excluded.license, license),"
        " published = coalesce(excluded.published, published),"
        " rights = coalesce(excluded.rights, rights)",
        {**fields, "image_id": image_id, "uri": location["uri"],
         "rights": json.dumps(location["rights"], sort_keys=True) if location.get("rights")
         else None,
         "file_size": location.get("file_size"), "file_mtime": location.get("file_mtime"),
         "seen": seen},
    )


def _wal(db: sqlite3.Connection, *, seconds: float = 60.0) -> None:
    """Switch ``db`` to WAL, waiting for other processes. The switch needs the file to itself,
    and SQLite answers "database is locked" at once, without its busy timeout, while another
    process opens the same new file (two ``index`` runs started together on a new folder)."""
    deadline = time.monotonic() + seconds
    pause = 0.01
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
