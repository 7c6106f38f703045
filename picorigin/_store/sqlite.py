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
from pathlib import Path
from typing import Any, Iterable, Iterator

from .catalog import SIGHTING_FIELDS, Catalog, Checkpoint, ImageRecord, NewImage, now

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
        db.execute("PRAGMA journal_mode=WAL")
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

    def get_meta(self, key: str) -> str | None:
        row = self._reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _integrity(db: sqlite3.Connection) -> list[str]:
    return [row[0] for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"]


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
