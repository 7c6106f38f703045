"""Upgrading a data folder written by an older picorigin.

Schema 1 kept the fingerprint in an ``images`` column, counted changes with an epoch, and kept
each stage's signals in its own SQLite file (``local.sqlite``, ``deep.sqlite``) with its own
change log. Schema 2 keeps every signal in ``signal_data`` with one change log. The fingerprints
move in the same transaction; the stages' old files are imported by the stages themselves
(``import_legacy``) when they first open, then renamed ``*.imported``.
"""

from __future__ import annotations

import sqlite3

__all__ = ["upgrade_schema_1"]


def upgrade_schema_1(db: sqlite3.Connection) -> None:
    """Move schema 1's fingerprints into ``signal_data`` and drop the epoch (one transaction)."""
    db.execute("INSERT OR IGNORE INTO signal_data (name, id, data)"
               " SELECT 'fingerprint', id, fingerprint FROM images")
    db.execute("ALTER TABLE images DROP COLUMN fingerprint")
    db.execute("DELETE FROM meta WHERE key = 'epoch'")
