"""What the stages' SQLite stores share: the connection, the change log, the checkpoint.

Each stage keeps its signals in its own SQLite file (the truth) and a derived index in memory,
saved now and then as a checkpoint that records the change-log position it includes. Every
add or remove appends the touched ids to ``changes`` in the same transaction, so a stale
checkpoint is brought up to date by replaying the log past its position.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

__all__ = ["changed_since", "connect", "log_changes", "position", "write_checkpoint"]

def connect(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating) a store: WAL, autocommit, shareable between threads under a lock.
    ``schema`` creates the stage's tables, ``changes (seq AUTOINCREMENT, id)`` among them."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    # NORMAL in WAL mode, as the catalog: a commit survives a process crash; only an OS crash
    # or power loss can roll back the last transactions, never corrupt the file.
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=30000")
    with db:
        db.executescript(schema)
    return db


def log_changes(db: sqlite3.Connection, keys: list[tuple[int]]) -> None:
    """Record ids touched by the transaction in progress."""
    db.executemany("INSERT INTO changes (id) VALUES (?)", keys)


def position(db: sqlite3.Connection) -> int:
    """The change log's last sequence number (0 when nothing was ever logged)."""
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='changes'").fetchone()
    return int(row[0]) if row else 0


def changed_since(db: sqlite3.Connection, seq: int, upto: int) -> list[int] | None:
    """Ids touched after position ``seq`` up to ``upto``; None when the log no longer reaches
    back to ``seq`` (another process's checkpoint pruned it): the index must be reloaded."""
    lowest = db.execute("SELECT MIN(seq) FROM changes").fetchone()[0]
    if lowest is None or lowest > seq + 1:
        return None
    return [row[0] for row in db.execute(
        "SELECT DISTINCT id FROM changes WHERE seq > ? AND seq <= ?", (seq, upto))]


def write_checkpoint(db: sqlite3.Connection, state_path: Path, state: dict) -> None:
    """Write the checkpoint's state file atomically (after the index file itself), then prune
    the change log it covers (``state["seq"]``)."""
    tmp = state_path.with_name(f".{state_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, state_path)
    with db:
        db.execute("DELETE FROM changes WHERE seq <= ?", (state["seq"],))
