"""Upgrading a data folder written by an older picorigin.

Schema 1 kept the fingerprint in an ``images`` column, counted changes with an epoch, and kept
each stage's signals in its own SQLite file (``local.sqlite``, ``deep.sqlite``) with its own
change log. Schema 2 keeps every signal in ``signal_data`` with one change log. The fingerprints
move in the same transaction; the stages' old files are imported when each stage first opens
(``import_stage_file``), then renamed ``*.imported``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable

__all__ = ["import_stage_file", "upgrade_schema_1"]

logger = logging.getLogger("picorigin")


def upgrade_schema_1(db: sqlite3.Connection) -> None:
    """Move schema 1's fingerprints into ``signal_data`` and drop the epoch (one transaction)."""
    db.execute("INSERT OR IGNORE INTO signal_data (name, id, data)"
               " SELECT 'fingerprint', id, fingerprint FROM images")
    db.execute("ALTER TABLE images DROP COLUMN fingerprint")
    db.execute("DELETE FROM meta WHERE key = 'epoch'")


def import_stage_file(stage: Any, path: Path, query: str,
                      convert: Callable[[tuple], tuple[int, Any]]) -> None:
    """Move a schema-1 stage file's signals (``local.sqlite``, ``deep.sqlite``) into the
    catalog, then rename the file ``*.imported``.

    Parameters
    ----------
    stage : Stage
        Encodes each signal (``encode``, ``terms``) and names it.
    query : str
        Selects the old rows.
    convert : callable
        One old row to ``(id, signal)``.
    """
    if not path.exists():
        return
    db = sqlite3.connect(path)
    try:
        rows = db.execute(query)
        while batch := rows.fetchmany(1000):
            signals = dict(convert(row) for row in batch)
            stage.catalog.put_signals(stage.name,
                                      [(i, stage.encode(s)) for i, s in signals.items()],
                                      {i: stage.terms(s) for i, s in signals.items()})
    except sqlite3.Error as error:
        logger.warning("%s stage: could not import %s (%s); `picorigin reindex` recomputes "
                       "what is missing", stage.name, path, error)
    finally:
        db.close()
    try:
        path.rename(path.with_name(path.name + ".imported"))
    except OSError:
        pass  # another process opening the folder moved it first
