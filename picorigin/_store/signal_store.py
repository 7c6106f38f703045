"""One signal's derived index, kept in step with the catalog by its change log.

The catalog holds every signal's rows (the truth); the index a search asks (FAISS, an inverted
file, ...) is derived from them. Each process keeps its own copy in memory and, before every
search, reads only the change-log entries after its own position (one indexed read when
nothing changed). Now and then it writes a checkpoint file under a name no other process uses,
then records it in the catalog only if it is newer than the one recorded; the catalog prunes the
log below every signal's checkpoint, so a process that falls behind a prune reloads the newest
checkpoint and catches up from there. Nothing committed is lost whichever process crashes, and
none waits for another's files.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .catalog import Catalog, Checkpoint

__all__ = ["DerivedIndex", "SignalStore"]

logger = logging.getLogger("picorigin")

# A checkpoint is written once this share of the index changed since the last (at least
# _CHECKPOINT_MIN changes), or checkpoint_seconds passed with anything pending, or on close.
_CHECKPOINT_SHARE = 0.05
_CHECKPOINT_MIN = 200
# Changed rows read per catch-up step: bounds memory when another process added many.
_CATCH_UP_BATCH = 2000
# Checkpoint files no record points to (a crash between writing and recording) are removed
# once this old: younger ones may be another process's, about to be recorded.
_ORPHAN_SECONDS = 600


class DerivedIndex(Protocol):
    """What a signal's index offers the store (each stage wraps its own)."""

    def update(self, removed: list[int], added: list[tuple[int, Any]]) -> None:
        """Drop every id in ``removed``, then add ``(id, entry)`` pairs (idempotent)."""

    def save(self, path: Path) -> None:
        """Write the whole index to ``path``."""

    def __len__(self) -> int: ...

    def ids(self) -> set[int]:
        """Every id the index holds (for ``check``)."""


class _Keeper(Protocol):
    """What the store needs from the stage it serves."""

    name: str

    def new_index(self) -> DerivedIndex: ...

    def load_index(self, path: Path) -> DerivedIndex: ...

    def index_meta(self) -> dict[str, Any]: ...

    def index_entry(self, data: bytes) -> Any: ...


class SignalStore:
    """The derived index of one signal in this process.

    Parameters
    ----------
    catalog : Catalog
    folder : Path
        Where checkpoint files are written (``indexes/`` in the data folder).
    keeper : stage
        Makes, loads and fills the index (``new_index``, ``load_index``, ``index_meta``,
        ``index_entry``) and names the signal (``name``).
    checkpoint_seconds : float
        Longest time a pending change waits for a checkpoint while this process writes.
    """

    def __init__(self, catalog: Catalog, folder: Path, keeper: _Keeper, *,
                 checkpoint_seconds: float = 60.0) -> None:
        self.catalog = catalog
        self.folder = Path(folder)
        self.keeper = keeper
        self.name = keeper.name
        self.checkpoint_seconds = checkpoint_seconds
        self._lock = threading.RLock()
        self._index: DerivedIndex | None = None
        self._seq = 0  # change-log position the in-memory index includes
        self._saved_seq = -1  # position of the newest checkpoint known to exist
        self._last_save = time.monotonic()
        self.loaded_from: str | None = None  # the checkpoint file the index came from

    # -- reading -----------------------------------------------------------------------------

    def reading(self, position: int | None = None) -> "_Reading":
        """``with store.reading() as index:`` the index, brought up to date, under the lock."""
        return _Reading(self, position)

    def sync(self, position: int | None = None) -> DerivedIndex:
        """Apply every commit up to ``position`` (default: the log's end); return the index."""
        with self._lock:
            if self._index is None:
                self._load()
            position = self.catalog.position() if position is None else position
            if position <= self._seq:
                return self._index
            touched = self.catalog.changed_since(self.name, self._seq, position)
            if touched is None:  # the log was pruned past us: start from the newest checkpoint
                self._index = None
                self._load()
                return self.sync()
            for start in range(0, len(touched), _CATCH_UP_BATCH):
                chunk = touched[start:start + _CATCH_UP_BATCH]
                rows = self.catalog.signals(self.name, chunk)
                self._index.update(chunk, [(i, self.keeper.index_entry(rows[i]))
                                           for i in chunk if i in rows])
            self._seq = position
            return self._index

    def reset(self) -> None:
        """Forget the in-memory index (it is reloaded or rebuilt on next use)."""
        with self._lock:
            self._index, self._seq, self._saved_seq = None, 0, -1

    def _load(self) -> None:
        for _ in range(3):  # a newer checkpoint may replace (and delete) the file we read
            recorded = self.catalog.checkpoint(self.name)
            if recorded is None or recorded.meta != self.keeper.index_meta():
                break
            try:
                self._index = self.keeper.load_index(self.folder / recorded.file)
            except (OSError, ValueError, RuntimeError, KeyError) as error:
                logger.info("%s index: checkpoint %s unusable (%s)", self.name, recorded.file,
                            error)
                continue
            self._seq = self._saved_seq = recorded.seq
            self.loaded_from = recorded.file
            return
        self._rebuild()

    def _rebuild(self) -> None:
        # Read the position first: rows committed during the scan are replayed again by the
        # next sync, which is harmless (update is idempotent); none can be missed.
        position = self.catalog.position()
        index = self.keeper.new_index()
        for rows in self.catalog.scan_signals(self.name):
            index.update([], [(i, self.keeper.index_entry(data)) for i, data in rows])
        self._index, self._seq, self._saved_seq = index, position, -1
        self.loaded_from = None
        logger.info("%s index: rebuilt from %d stored signals", self.name, len(index))

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self, *, force: bool = False, replace: bool = False) -> bool:
        """Write a checkpoint if enough changed (always with ``force``, if anything did;
        ``replace`` records it even over one of the same position, e.g. a damaged one).

        Returns whether one was recorded.
        """
        with self._lock:
            if self._index is None:
                return False
            self.sync()
            if self._seq in (self._saved_seq, 0):
                return False
            pending = self._seq - max(self._saved_seq, 0)
            due = (pending >= max(_CHECKPOINT_MIN, _CHECKPOINT_SHARE * len(self._index))
                   or time.monotonic() - self._last_save >= self.checkpoint_seconds)
            if not (force or due):
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
            token = f"{self.name}-{self._seq}-{os.getpid()}-{secrets.token_hex(4)}"
            final = self.folder / f"{token}.ckpt"
            tmp = self.folder / f".{token}.tmp"
            self._index.save(tmp)
            os.replace(tmp, final)
            stale = self.catalog.record_checkpoint(
                self.name, Checkpoint(self._seq, final.name, self.keeper.index_meta()),
                replace=replace)
            self._saved_seq, self._last_save = self._seq, time.monotonic()
            if stale is not None:
                _unlink(self.folder / stale)
            self._remove_orphans(keep=final.name)
            return stale != final.name

    def _remove_orphans(self, keep: str) -> None:
        recorded = self.catalog.checkpoint(self.name)
        current = {keep, recorded.file if recorded else keep}
        cutoff = time.time() - _ORPHAN_SECONDS
        for path in self.folder.glob(f"{self.name}-*.ckpt"):
            try:
                if path.name not in current and path.stat().st_mtime < cutoff:
                    path.unlink()
            except OSError:
                pass

    # -- maintenance -------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Load the recorded checkpoint afresh, catch it up, and compare it with the rows.

        Returns
        -------
        dict
            ``signal``, ``checkpoint`` (the recorded file, or None), ``checkpoint_usable``,
            ``entries`` (in the index), ``rows`` (in the catalog), ``missing`` and ``extra``
            (up to 20 ids each), ``ok``.
        """
        recorded = self.catalog.checkpoint(self.name)
        fresh = SignalStore(self.catalog, self.folder, self.keeper)
        index = fresh.sync()
        held, rows = set(index.ids()), self.catalog.signal_ids(self.name)
        usable = recorded is None or fresh.loaded_from is not None
        return {"signal": self.name, "checkpoint": recorded.file if recorded else None,
                "checkpoint_usable": usable, "entries": len(held), "rows": len(rows),
                "missing": sorted(rows - held)[:20], "extra": sorted(held - rows)[:20],
                "ok": usable and held == rows}

    def close(self) -> None:
        """Nothing to give back (the index is this process's own)."""

    def rebuild(self) -> None:
        """Rebuild the index from the catalog's rows and record a fresh checkpoint."""
        with self._lock:
            self._rebuild()
            self.checkpoint(force=True, replace=True)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            index = self.sync()
            return {"position": self._seq, "checkpoint": self._saved_seq,
                    "entries": len(index)}


class _Reading:
    def __init__(self, store: SignalStore, position: int | None) -> None:
        self.store, self.position = store, position

    def __enter__(self) -> Any:
        self.store._lock.acquire()
        try:
            return self.store.sync(self.position)
        except BaseException:
            self.store._lock.release()
            raise

    def __exit__(self, *exc: object) -> None:
        self.store._lock.release()


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
