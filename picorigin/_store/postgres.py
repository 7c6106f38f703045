"""The catalog in PostgreSQL: one database shared by every process on every machine.

Selected with the setting ``catalog=postgresql://user@host/db`` (``pip install
'picorigin[postgres]'``: psycopg 3 and its connection pool). It keeps what
:class:`~picorigin._store.sqlite.SQLiteCatalog` keeps, with the same behaviour (both pass
``tests/store/test_catalog.py``); the derived indexes' checkpoint files stay in each process's
data folder (a process that cannot read a recorded checkpoint rebuilds from the rows).

Every write is one transaction, so a crash (of the client or the server) never leaves half a
record. The schema is created, and upgraded, under an advisory lock by the first process that
opens the database; ``meta`` holds its version.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any, Iterable, Iterator

from .._errors import SettingError
from .catalog import (
    SIGHTING_FIELDS,
    Catalog,
    Checkpoint,
    ImageRecord,
    NewImage,
    now,
    stronger_alert,
)

__all__ = ["PostgresCatalog", "redacted"]

SCHEMA_VERSION = 2

# Keys of pg_advisory_xact_lock: any two fixed numbers of our own.
_SCHEMA_LOCK = 0x70696330  # "pic0"
_LOG_LOCK = 0x70696331  # "pic1"

_IMAGE_COLUMNS = ("sha256", "pixel_sha256", "width", "height", "format", "byte_size",
                  "orientation")
_LOCATION_COLUMNS = ("uri", "page_url", "page_title", "alt", "caption", "author",
                     "author_source", "license", "published", "rights", "first_seen",
                     "last_seen", "removed_at")

# Each entry upgrades the schema from its index to the next version, in one transaction.
_MIGRATIONS: tuple[tuple[str, ...], ...] = ((
    """CREATE TABLE images (
        id BIGSERIAL PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        pixel_sha256 TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        format TEXT NOT NULL,
        byte_size BIGINT NOT NULL,
        orientation INTEGER NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        signals TEXT NOT NULL DEFAULT '{}',
        added_at TEXT NOT NULL)""",
    "CREATE INDEX images_pixel_sha256 ON images (pixel_sha256)",
    """CREATE TABLE locations (
        id BIGSERIAL PRIMARY KEY,
        image_id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        uri TEXT NOT NULL,
        page_url TEXT NOT NULL DEFAULT '',
        page_title TEXT, alt TEXT, caption TEXT, author TEXT, author_source TEXT,
        license TEXT, published TEXT, rights TEXT,
        file_size BIGINT, file_mtime DOUBLE PRECISION,
        first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, removed_at TEXT,
        UNIQUE (uri, page_url))""",
    "CREATE INDEX locations_image_id ON locations (image_id)",
    """CREATE TABLE thumbnails (
        image_id BIGINT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        jpeg BYTEA NOT NULL)""",
    """CREATE TABLE signal_data (
        name TEXT NOT NULL,
        id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        data BYTEA NOT NULL,
        PRIMARY KEY (name, id))""",
    "CREATE INDEX signal_data_id ON signal_data (id)",
    """CREATE TABLE signal_terms (
        name TEXT NOT NULL, term INTEGER NOT NULL,
        id BIGINT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        weight DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (name, term, id))""",
    "CREATE INDEX signal_terms_id ON signal_terms (id)",
    # seq is assigned by hand from log_head (see _log), not by a sequence: the head is
    # transactional, so position() never shows a number whose entry is not committed.
    "CREATE TABLE changes (seq BIGINT PRIMARY KEY, id BIGINT NOT NULL, name TEXT NOT NULL)",
    "CREATE INDEX changes_name_seq ON changes (name, seq)",
    "CREATE TABLE log_head (one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one), seq BIGINT NOT NULL)",
    "INSERT INTO log_head VALUES (true, 0)",
    """CREATE TABLE checkpoints (
        name TEXT PRIMARY KEY, seq BIGINT NOT NULL, file TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}')""",
), (
    # 1 -> 2: watches, alerts and the webhook outbox (picorigin._watch).
    """CREATE TABLE watches (
        id BIGSERIAL PRIMARY KEY, label TEXT, webhook TEXT, secret TEXT NOT NULL,
        kinds TEXT NOT NULL, allow_private BOOLEAN NOT NULL DEFAULT false,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE watch_pictures (
        id BIGSERIAL PRIMARY KEY,
        watch_id BIGINT NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
        uri TEXT NOT NULL, sha256 TEXT NOT NULL, pixel_sha256 TEXT NOT NULL,
        width INTEGER NOT NULL, height INTEGER NOT NULL,
        fingerprint BYTEA NOT NULL, local BYTEA, thumbnail BYTEA)""",
    "CREATE INDEX watch_pictures_watch ON watch_pictures (watch_id)",
    """CREATE TABLE alerts (
        id BIGSERIAL PRIMARY KEY,
        watch_id BIGINT NOT NULL REFERENCES watches (id) ON DELETE CASCADE,
        picture_id BIGINT NOT NULL REFERENCES watch_pictures (id) ON DELETE CASCADE,
        image_id BIGINT NOT NULL, image_sha256 TEXT NOT NULL, kind TEXT NOT NULL,
        score DOUBLE PRECISION NOT NULL, details TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'new', reason TEXT,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        UNIQUE (picture_id, image_sha256))""",
    "CREATE INDEX alerts_created ON alerts (created_at)",
    """CREATE TABLE deliveries (
        id BIGSERIAL PRIMARY KEY,
        alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0, next_at DOUBLE PRECISION NOT NULL,
        created_at TEXT NOT NULL)""",
    "CREATE INDEX deliveries_due ON deliveries (status, next_at)",
    """CREATE TABLE delivery_attempts (
        id BIGSERIAL PRIMARY KEY,
        delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        at TEXT NOT NULL, status_code INTEGER, error TEXT, ms DOUBLE PRECISION)""",
),)
assert len(_MIGRATIONS) == SCHEMA_VERSION


def redacted(dsn: str) -> str:
    """The DSN without its password, for messages."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a DSN psycopg cannot parse: show only its scheme
        return dsn.split("://", 1)[0] + "://..."
    if "password" not in parts:
        return dsn
    parts["password"] = "***"
    return make_conninfo(**parts)


class PostgresCatalog(Catalog):
    """The catalog in a PostgreSQL database.

    Parameters
    ----------
    dsn : str
        ``postgresql://user[:password]@host[:port]/database`` (any libpq connection string).
    max_connections : int
        Size of the connection pool (searches read from several threads at once).
    timeout : float
        Seconds to wait for a connection before giving up with a clear error.

    Raises
    ------
    SettingError
        When the server cannot be reached, or the database holds a newer schema.
    """

    def __init__(self, dsn: str, *, max_connections: int = 8, timeout: float = 10.0) -> None:
        psycopg, psycopg_pool = _import()
        self.dsn = dsn
        self._psycopg = psycopg
        self._pool = psycopg_pool.ConnectionPool(
            dsn, min_size=1, max_size=max(1, max_connections), timeout=timeout, open=False,
            kwargs={"autocommit": True}, name="picorigin-catalog")
        try:
            # One direct connection first: it fails at once, with libpq's reason, where the
            # pool would retry until its timeout and then say only that it timed out.
            psycopg.connect(dsn, connect_timeout=max(1, round(timeout))).close()
            self._pool.open(wait=True, timeout=timeout)
        except (psycopg_pool.PoolTimeout, psycopg.Error) as error:
            self._pool.close()
            reason = str(error).strip() or type(error).__name__
            raise SettingError(
                f"setting 'catalog': cannot connect to PostgreSQL at {redacted(dsn)}: {reason}"
            ) from None
        self._closed = threading.Event()
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # -- connections ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, log: bool = False) -> Iterator[Any]:
        """A write transaction; with ``log``, one that may append to the change log."""
        with self._pool.connection() as db, db.transaction():
            if log:
                # PostgreSQL hands out numbers in the order transactions ask, but they commit
                # in any order: a reader could see entry 11 committed before entry 10, move
                # its position to 11 and never read 10. Every transaction that appends to
                # the log therefore holds this lock until it commits (taken first, before any
                # row lock, so it cannot deadlock), and numbers grow in commit order: a
                # reader that has seen position P has seen every entry up to P.
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_LOG_LOCK,))
            yield db

    def _read(self, query: str, args: Any = ()) -> list[tuple]:
        with self._pool.connection() as db:
            return db.execute(query, args).fetchall()

    def _migrate(self) -> None:
        with self._transaction() as db:
            # Two processes opening a fresh database at once: one creates, the other waits.
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise SettingError(
                    f"setting 'catalog': {redacted(self.dsn)} holds catalog schema {version},"
                    f" newer than this picorigin's {SCHEMA_VERSION}: upgrade picorigin")
            for statements in _MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('schema', %s) ON CONFLICT (key)"
                       " DO UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._pool.close()

    # -- images --------------------------------------------------------------------------

    def add_image(self, image: NewImage) -> tuple[int, bool]:
        record = image.record
        # The log lock also serialises the find-or-insert by SHA-256 across processes.
        with self._transaction(log=True) as db:
            row = db.execute("SELECT id FROM images WHERE sha256 = %s",
                             (record["sha256"],)).fetchone()
            created = row is None
            if created:
                image_id = int(db.execute(
                    f"INSERT INTO images ({', '.join(_IMAGE_COLUMNS)}, metadata, signals,"
                    " added_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (*(record[c] for c in _IMAGE_COLUMNS),
                     _dumps(record.get("metadata") or {}), _dumps(record.get("signals") or {}),
                     now()),
                ).fetchone()[0])
                if image.thumbnail:
                    db.execute("INSERT INTO thumbnails (image_id, jpeg) VALUES (%s, %s)",
                               (image_id, image.thumbnail))
                for name, data in image.data.items():
                    self._put(db, name, [(image_id, data)],
                              {image_id: image.terms.get(name, [])})
            else:
                image_id = int(row[0])
            self._upsert_location(db, image_id, image.location)
        return image_id, created

    def add_location(self, image_id: int, location: dict[str, Any]) -> None:
        with self._transaction() as db:
            self._upsert_location(db, image_id, location)

    def touch_location(self, uri: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE locations SET last_seen = %s, removed_at = NULL"
                       " WHERE uri = %s AND page_url = ''", (now(), uri))

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE locations SET removed_at = %s WHERE uri = %s AND page_url = %s"
                " AND removed_at IS NULL", (now(), uri, page_url or ""))
            return cursor.rowcount > 0

    def remove_image(self, image_id: int) -> bool:
        with self._transaction(log=True) as db:
            names = [r[0] for r in db.execute(
                "SELECT name FROM signal_data WHERE id = %s ORDER BY name", (image_id,))]
            self._log(db, [(image_id, name) for name in names])
            cursor = db.execute("DELETE FROM images WHERE id = %s", (image_id,))
            return cursor.rowcount > 0

    def update_facts(self, image_id: int, facts: dict[str, Any]) -> None:
        with self._transaction() as db:
            row = db.execute("SELECT signals FROM images WHERE id = %s FOR UPDATE",
                             (image_id,)).fetchone()
            if row is not None:
                db.execute("UPDATE images SET signals = %s WHERE id = %s",
                           (_dumps({**json.loads(row[0]), **facts}), image_id))

    def find_by_sha256(self, sha256: str) -> int | None:
        rows = self._read("SELECT id FROM images WHERE sha256 = %s", (sha256,))
        return int(rows[0][0]) if rows else None

    def find_by_pixel_sha256(self, pixel_sha256: str) -> list[int]:
        return [int(r[0]) for r in self._read(
            "SELECT id FROM images WHERE pixel_sha256 = %s ORDER BY id", (pixel_sha256,))]

    def unchanged_file(self, uri: str, file_size: int, file_mtime: float) -> int | None:
        rows = self._read(
            "SELECT image_id FROM locations WHERE uri = %s AND page_url = ''"
            " AND file_size = %s AND file_mtime = %s", (uri, file_size, file_mtime))
        return int(rows[0][0]) if rows else None

    def images(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        ids = sorted({int(i) for i in ids})
        if not ids:
            return {}
        out: dict[int, ImageRecord] = {}
        columns = ("id", *_IMAGE_COLUMNS, "metadata", "signals", "added_at")
        with self._pool.connection() as db:
            for row in db.execute(f"SELECT {', '.join(columns)} FROM images"
                                  " WHERE id = ANY(%s)", (ids,)):
                record = dict(zip(columns, row))
                record["metadata"] = json.loads(record["metadata"])
                record["signals"] = json.loads(record["signals"])
                record["locations"] = []
                out[record["id"]] = record
            for row in db.execute(
                    f"SELECT image_id, {', '.join(_LOCATION_COLUMNS)} FROM locations"
                    " WHERE image_id = ANY(%s) ORDER BY first_seen, id", (ids,)):
                location = dict(zip(_LOCATION_COLUMNS, row[1:]))
                location["rights"] = json.loads(location["rights"]) if location["rights"] else None
                image = out.get(row[0])
                if image is not None:  # an image committed between the two reads
                    image["locations"].append(location)
        return out

    def list_ids(self, offset: int = 0, limit: int = 50,
                 q: str | None = None) -> tuple[int, list[int]]:
        where, args = "", []
        if q:
            where = ("WHERE images.metadata ILIKE %s OR EXISTS (SELECT 1 FROM locations"
                     " WHERE locations.image_id = images.id AND (uri ILIKE %s"
                     " OR page_url ILIKE %s OR page_title ILIKE %s))")
            args = [f"%{q}%"] * 4
        with self._pool.connection() as db:
            total = db.execute(f"SELECT count(*) FROM images {where}", args).fetchone()[0]
            rows = db.execute(f"SELECT id FROM images {where} ORDER BY id DESC"
                              " LIMIT %s OFFSET %s", [*args, limit, offset]).fetchall()
        return int(total), [int(r[0]) for r in rows]

    def orientations(self, ids: Iterable[int]) -> dict[int, int]:
        ids = sorted({int(i) for i in ids})
        if not ids:
            return {}
        return {int(i): int(o) for i, o in self._read(
            "SELECT id, orientation FROM images WHERE id = ANY(%s)", (ids,))}

    def all_ids(self) -> set[int]:
        return {int(r[0]) for r in self._read("SELECT id FROM images")}

    def thumbnail(self, image_id: int) -> bytes | None:
        rows = self._read("SELECT jpeg FROM thumbnails WHERE image_id = %s", (image_id,))
        return bytes(rows[0][0]) if rows else None

    def counts(self) -> dict[str, int]:
        (row,) = self._read("SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM"
                            " locations), (SELECT coalesce(sum(byte_size), 0) FROM images)")
        return {"images": int(row[0]), "locations": int(row[1]), "bytes": int(row[2])}

    # -- signals and the change log ---------------------------------------------------------

    @staticmethod
    def _log(db: Any, entries: list[tuple[int, str]]) -> None:
        """Append ``(id, name)`` entries; the caller holds the log lock (``log=True``)."""
        if not entries:
            return
        head = int(db.execute("UPDATE log_head SET seq = seq + %s RETURNING seq",
                              (len(entries),)).fetchone()[0])
        first = head - len(entries) + 1
        with db.cursor() as cursor:
            cursor.executemany("INSERT INTO changes (seq, id, name) VALUES (%s, %s, %s)",
                               [(first + n, i, name) for n, (i, name) in enumerate(entries)])

    def put_signals(self, name: str, rows: list[tuple[int, bytes]],
                    terms: dict[int, list[tuple[int, float]]] | None = None) -> None:
        with self._transaction(log=True) as db:
            self._put(db, name, rows, terms or {})

    def _put(self, db: Any, name: str, rows: list[tuple[int, bytes]],
             terms: dict[int, list[tuple[int, float]]]) -> None:
        wanted = sorted({int(i) for i, _ in rows})
        # FOR KEY SHARE: an image being removed meanwhile waits for us, or we skip it.
        present = {int(r[0]) for r in db.execute(
            "SELECT id FROM images WHERE id = ANY(%s) FOR KEY SHARE", (wanted,))}
        kept = {int(i): bytes(data) for i, data in rows if int(i) in present}
        if not kept:
            return
        with db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO signal_data (name, id, data) VALUES (%s, %s, %s)"
                " ON CONFLICT (name, id) DO UPDATE SET data = excluded.data",
                [(name, i, data) for i, data in kept.items()])
            cursor.execute("DELETE FROM signal_terms WHERE name = %s AND id = ANY(%s)",
                           (name, list(kept)))
            cursor.executemany(
                "INSERT INTO signal_terms VALUES (%s, %s, %s, %s) ON CONFLICT (name, term, id)"
                " DO UPDATE SET weight = excluded.weight",
                [(name, int(t), i, float(w)) for i in kept for t, w in terms.get(i, [])])
        self._log(db, [(i, name) for i in kept])

    def signals(self, name: str, ids: Iterable[int]) -> dict[int, bytes]:
        ids = sorted({int(i) for i in ids})
        if not ids:
            return {}
        return {int(i): bytes(d) for i, d in self._read(
            "SELECT id, data FROM signal_data WHERE name = %s AND id = ANY(%s)", (name, ids))}

    def scan_signals(self, name: str, batch: int = 10_000) -> Iterator[list[tuple[int, bytes]]]:
        last = -1
        while True:
            rows = self._read("SELECT id, data FROM signal_data WHERE name = %s AND id > %s"
                              " ORDER BY id LIMIT %s", (name, last, batch))
            if not rows:
                return
            yield [(int(i), bytes(d)) for i, d in rows]
            last = int(rows[-1][0])

    def signal_ids(self, name: str) -> set[int]:
        return {int(r[0]) for r in self._read("SELECT id FROM signal_data WHERE name = %s",
                                              (name,))}

    def count_signals(self, name: str) -> int:
        return int(self._read("SELECT count(*) FROM signal_data WHERE name = %s",
                              (name,))[0][0])

    def ids_with_terms(self, name: str, terms: Iterable[int], min_weight: float) -> list[int]:
        terms = sorted({int(t) for t in terms})
        if not terms:
            return []
        return sorted(int(r[0]) for r in self._read(
            "SELECT id FROM signal_terms WHERE name = %s AND term = ANY(%s)"
            " GROUP BY id HAVING SUM(weight) >= %s", (name, terms, min_weight)))

    def position(self) -> int:
        return int(self._read("SELECT seq FROM log_head")[0][0])

    def changed_since(self, name: str, seq: int, upto: int) -> list[int] | None:
        # One statement, one snapshot: a prune committed meanwhile is seen by both or neither.
        ((lowest, ids),) = self._read(
            "SELECT (SELECT min(seq) FROM changes), ARRAY(SELECT id FROM changes"
            " WHERE name = %s AND seq > %s AND seq <= %s GROUP BY id ORDER BY min(seq))",
            (name, seq, upto))
        if lowest is None or lowest > seq + 1:
            return None
        return [int(i) for i in ids]

    def changes_after(self, seq: int, name: str, limit: int = 1000) -> list[tuple[int, int]]:
        return [(int(s), int(i)) for s, i in self._read(
            "SELECT seq, id FROM changes WHERE name = %s AND seq > %s ORDER BY seq LIMIT %s",
            (name, seq, limit))]

    def checkpoint(self, name: str) -> Checkpoint | None:
        rows = self._read("SELECT seq, file, meta FROM checkpoints WHERE name = %s", (name,))
        return Checkpoint(int(rows[0][0]), rows[0][1], json.loads(rows[0][2])) if rows else None

    def record_checkpoint(self, name: str, checkpoint: Checkpoint, *,
                          replace: bool = False) -> str | None:
        # The log lock: a prune must not interleave with appends it would half see.
        with self._transaction(log=True) as db:
            row = db.execute("SELECT seq, file FROM checkpoints WHERE name = %s FOR UPDATE",
                             (name,)).fetchone()
            if row is not None and int(row[0]) > checkpoint.seq - (0 if replace else 1):
                return checkpoint.file
            db.execute(
                "INSERT INTO checkpoints VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO UPDATE"
                " SET seq = excluded.seq, file = excluded.file, meta = excluded.meta",
                (name, checkpoint.seq, checkpoint.file, _dumps(checkpoint.meta)))
            # Keep every entry some signal's checkpoint does not yet cover.
            db.execute("DELETE FROM changes WHERE seq <= (SELECT min(seq) FROM checkpoints)")
        return None if row is None else row[1]

    # -- watches, alerts and the webhook outbox (picorigin._watch) ----------------------------

    def _dicts(self, query: str, args: Any = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._pool.connection() as db:
            return db.cursor(row_factory=dict_row).execute(query, args).fetchall()

    def add_watch(self, watch: dict[str, Any], pictures: list[dict[str, Any]]) -> int:
        with self._transaction() as db:
            watch_id = int(db.execute(
                "INSERT INTO watches (label, webhook, secret, kinds, allow_private, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (watch.get("label"), watch.get("webhook"), watch["secret"],
                 ",".join(watch["kinds"]), bool(watch.get("allow_private")), now()),
            ).fetchone()[0])
            db.cursor().executemany(
                "INSERT INTO watch_pictures (watch_id, uri, sha256, pixel_sha256, width, height,"
                " fingerprint, local, thumbnail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(watch_id, p["uri"], p["sha256"], p["pixel_sha256"], p["width"], p["height"],
                  p["fingerprint"], p.get("local"), p.get("thumbnail")) for p in pictures])
            _bump_watch_version(db)
        return watch_id

    def watches(self) -> list[dict[str, Any]]:
        out = []
        for watch in self._dicts("SELECT * FROM watches ORDER BY id"):
            watch["kinds"] = [k for k in watch["kinds"].split(",") if k]
            watch["allow_private"] = bool(watch["allow_private"])
            watch["pictures"] = self._dicts(
                "SELECT id, uri, sha256, width, height FROM watch_pictures WHERE watch_id = %s"
                " ORDER BY id", (watch["id"],))
            out.append(watch)
        return out

    def watch_pictures(self) -> list[dict[str, Any]]:
        rows = self._dicts(
            "SELECT id, watch_id, uri, sha256, pixel_sha256, width, height, fingerprint, local"
            " FROM watch_pictures ORDER BY id")
        return [{**r, "fingerprint": bytes(r["fingerprint"]),
                 "local": None if r["local"] is None else bytes(r["local"])} for r in rows]

    def watch_thumbnail(self, picture_id: int) -> bytes | None:
        rows = self._read("SELECT thumbnail FROM watch_pictures WHERE id = %s", (picture_id,))
        return None if not rows or rows[0][0] is None else bytes(rows[0][0])

    def remove_watch(self, watch_id: int) -> bool:
        with self._transaction() as db:
            removed = db.execute("DELETE FROM watches WHERE id = %s", (watch_id,)).rowcount
            if removed:
                _bump_watch_version(db)
        return removed > 0

    def watch_version(self) -> int:
        rows = self._read("SELECT value FROM meta WHERE key = 'watch.version'")
        return int(rows[0][0]) if rows else 0

    def add_alert(self, alert: dict[str, Any],
                  delivery: dict[str, Any] | None = None) -> tuple[int, bool]:
        stamp = now()
        details = _dumps(alert.get("details") or {})
        with self._transaction() as db:
            row = db.execute("SELECT id, kind, score FROM alerts WHERE picture_id = %s"
                             " AND image_sha256 = %s FOR UPDATE",
                             (alert["picture_id"], alert["image_sha256"])).fetchone()
            if row is not None:
                stronger = stronger_alert(alert, row[1], row[2])
                db.execute("UPDATE alerts SET image_id = %s, updated_at = %s WHERE id = %s",
                           (alert["image_id"], stamp, row[0]))
                if stronger:
                    db.execute("UPDATE alerts SET kind = %s, score = %s, details = %s"
                               " WHERE id = %s",
                               (alert["kind"], float(alert["score"]), details, row[0]))
                return int(row[0]), False
            alert_id = int(db.execute(
                "INSERT INTO alerts (watch_id, picture_id, image_id, image_sha256, kind, score,"
                " details, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (alert["watch_id"], alert["picture_id"], alert["image_id"],
                 alert["image_sha256"], alert["kind"], float(alert["score"]), details, stamp,
                 stamp)).fetchone()[0])
            if delivery is not None:
                payload = {**delivery["payload"], "alert_id": alert_id}
                db.execute("INSERT INTO deliveries (alert_id, key, payload, next_at, created_at)"
                           " VALUES (%s, %s, %s, %s, %s)",
                           (alert_id, delivery["key"], _dumps(payload),
                            float(delivery["next_at"]), stamp))
        return alert_id, True

    def alerts(self, *, since: str | None = None, watch_id: int | None = None,
               status: str | None = None, limit: int = 1000,
               offset: int = 0) -> list[dict[str, Any]]:
        where, args = [], []
        for clause, value in (("created_at >= %s", since), ("watch_id = %s", watch_id),
                              ("status = %s", status)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = "SELECT * FROM alerts" + (f" WHERE {' AND '.join(where)}" if where else "")
        return [_alert(row) for row in self._dicts(
            f"{sql} ORDER BY id DESC LIMIT %s OFFSET %s", [*args, limit, offset])]

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._dicts("SELECT * FROM alerts WHERE id = %s", (alert_id,))
        return _alert(rows[0]) if rows else None

    def set_alert_status(self, alert_id: int, status: str, reason: str | None = None) -> bool:
        with self._transaction() as db:
            changed = db.execute("UPDATE alerts SET status = %s, reason = %s, updated_at = %s"
                                 " WHERE id = %s", (status, reason, now(), alert_id)).rowcount
        return changed > 0

    def claim_deliveries(self, now: float, lease: float, limit: int = 50) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self._transaction() as db:
            # SKIP LOCKED: two senders claiming at once each get other rows.
            rows = db.cursor(row_factory=dict_row).execute(
                "SELECT d.id, d.alert_id, a.watch_id, d.key, d.payload, d.attempts, w.webhook,"
                " w.secret, w.allow_private FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
                " JOIN watches w ON w.id = a.watch_id WHERE d.status = 'pending'"
                " AND d.next_at <= %s ORDER BY d.next_at, d.id LIMIT %s"
                " FOR UPDATE OF d SKIP LOCKED", (now, limit)).fetchall()
            db.cursor().executemany("UPDATE deliveries SET next_at = %s WHERE id = %s",
                                    [(now + lease, row["id"]) for row in rows])
        return [{**row, "payload": json.loads(row["payload"]),
                 "allow_private": bool(row["allow_private"])} for row in rows]

    def record_attempt(self, delivery_id: int, attempt: dict[str, Any], *, status: str,
                       next_at: float | None = None) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO delivery_attempts (delivery_id, at, status_code, error, ms)"
                       " VALUES (%s, %s, %s, %s, %s)",
                       (delivery_id, attempt.get("at") or now(), attempt.get("status_code"),
                        attempt.get("error"), attempt.get("ms")))
            db.execute("UPDATE deliveries SET attempts = attempts + 1, status = %s,"
                       " next_at = coalesce(%s, next_at) WHERE id = %s",
                       (status, next_at, delivery_id))

    def deliveries(self, alert_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, alert_id, key, status, attempts, next_at, created_at FROM deliveries"
        rows = self._dicts(sql + (" WHERE alert_id = %s" if alert_id is not None else "")
                           + " ORDER BY id", () if alert_id is None else (alert_id,))
        return [{**row, "history": self._dicts(
            "SELECT at, status_code, error, ms FROM delivery_attempts WHERE delivery_id = %s"
            " ORDER BY id", (row["id"],))} for row in rows]

    # -- small settings kept with the data ------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = %s", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key)"
                       " DO UPDATE SET value = excluded.value", (key, value))

    def _upsert_location(self, db: Any, image_id: int, location: dict[str, Any]) -> None:
        seen = location.get("seen") or now()
        fields = {name: location.get(name) for name in SIGHTING_FIELDS}
        fields["page_url"] = fields["page_url"] or ""
        rights = location.get("rights")
        db.execute(
            "INSERT INTO locations (image_id, uri, page_url, page_title, alt, caption, author,"
            " author_source, license, published, rights, file_size, file_mtime, first_seen,"
            " last_seen) VALUES (%(image_id)s, %(uri)s, %(page_url)s, %(page_title)s, %(alt)s,"
            " %(caption)s, %(author)s, %(author_source)s, %(license)s, %(published)s,"
            " %(rights)s, %(file_size)s, %(file_mtime)s, %(seen)s, %(seen)s)"
            " ON CONFLICT (uri, page_url) DO UPDATE SET"
            " image_id = excluded.image_id, last_seen = excluded.last_seen, removed_at = NULL,"
            " file_size = excluded.file_size, file_mtime = excluded.file_mtime,"
            " page_title = coalesce(excluded.page_title, locations.page_title),"
            " alt = coalesce(excluded.alt, locations.alt),"
            " caption = coalesce(excluded.caption, locations.caption),"
            " author = coalesce(excluded.author, locations.author),"
            " author_source = coalesce(excluded.author_source, locations.author_source),"
            " license = coalesce(excluded.license, locations.license),"
            " published = coalesce(excluded.published, locations.published),"
            " rights = coalesce(excluded.rights, locations.rights)",
            {**fields, "image_id": image_id, "uri": location["uri"],
             "rights": _dumps(rights) if rights else None,
             "file_size": location.get("file_size"), "file_mtime": location.get("file_mtime"),
             "seen": seen},
        )


def _import() -> tuple[Any, Any]:
    try:
        import psycopg
        import psycopg_pool
    except ImportError as error:
        raise SettingError(
            "setting 'catalog': a postgresql:// catalog needs the postgres extra"
            f" (pip install 'picorigin[postgres]'): {error}") from None
    return psycopg, psycopg_pool


def _dumps(value: Any) -> str:
    # JSON as text, as SQLite keeps it: JSONB would refuse a \u0000 some EXIF strings hold.
    return json.dumps(value, sort_keys=True)


def _bump_watch_version(db: Any) -> None:
    db.execute("INSERT INTO meta VALUES ('watch.version', '1') ON CONFLICT (key) DO UPDATE"
               " SET value = (CAST(meta.value AS INTEGER) + 1)::TEXT")


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "details": json.loads(row["details"])}
