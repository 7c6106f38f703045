"""One signal's index when every process shares it (a Milvus collection), kept in step with the
catalog's change log.

With per-process indexes (``picorigin._store.signal_store``) each process replays the log into
its own copy and checkpoints it to a file. A shared index needs neither the copies nor the
files, but it needs one answer to: who writes a commit into it, and how does everyone know it
is there? The answer here:

- **One shared position.** The catalog records, as this signal's checkpoint (file-less, like
  the watcher's), the log position up to which the shared index holds every change, with the
  collection's identity token in its meta. ``record_checkpoint`` only ever moves it forward.
- **Whoever is behind catches up, idempotently.** Before a search at position ``P`` (or at a
  writer's checkpoint, or on close), a process that finds the recorded position ``M < P``
  reads the ids changed in ``(M, P]`` and writes their current rows: an upsert by primary key
  (the image id) for rows present, a delete for rows gone; then records ``P``. The process that
  commits a signal thus writes it at its next checkpoint or search; any other process that
  searches first writes it instead. Replays are harmless, so no process waits for another and
  a crash between commit and write loses nothing: the recorded position has not moved past it.
- **Write, then verify.** Two processes catching up overlapping ranges could interleave so
  that a stale write lands last: A reads an image's row, B deletes the image and its Milvus
  entry, A writes the row it read. So after writing a batch, a process reads the same ids from
  the catalog again and rewrites those whose rows changed meanwhile, until a read agrees with
  what it wrote. Then every id's last write came after a read that saw every commit made before
  that write; any later commit lies beyond the recorded position of whoever wrote it, and is
  caught up (written after it) by the next process that needs it.
- **Start over when the identity changes.** A collection that is new (or was dropped and made
  anew) carries a token the recorded meta does not hold, as does a changed vocabulary: the
  process that notices rewrites every row, deletes entries without a row, and records the
  position it read before starting (changes during the scan are replayed after it).

A process remembers the highest position it knows the index reached, so a search reads the
catalog for this only when something was committed since. Searches see at least the state of
their position (the index may be ahead; results are joined with the catalog, which drops
images removed meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from .catalog import Catalog, Checkpoint

__all__ = ["SharedIndex", "SharedStore"]

logger = logging.getLogger("picorigin")

_BATCH = 2000  # changed ids written per step
_PUSH_MIN = 200  # a writer's checkpoint pushes once this many log entries are pending ...
_VERIFY_ROUNDS = 100  # a row rewritten this often in one catch-up is a bug, not a race


class SharedIndex(Protocol):
    """What a shared index offers the store (each stage's Milvus index)."""

    identity: str  # changes when the index is made anew (empty)

    def update(self, removed: list[int], added: list[tuple[int, Any]]) -> None:
        """Delete ``removed`` ids, then upsert ``(id, entry)`` pairs (idempotent)."""

    def ids(self) -> set[int]: ...

    def __len__(self) -> int: ...


class _Keeper(Protocol):
    name: str

    def shared_index(self, connection: Any) -> SharedIndex: ...

    def index_meta(self) -> dict[str, Any]: ...

    def index_entry(self, data: bytes) -> Any: ...


class SharedStore:
    """The shared index of one signal, as this process sees it (the API of ``SignalStore``).

    Parameters
    ----------
    catalog : Catalog
    folder : Path
        ``indexes/`` in the data folder: a per-process checkpoint file recorded before the
        index became shared is deleted when the shared position replaces its record.
    keeper : stage
        Makes the index (``shared_index``), says what it holds (``index_meta``) and what one
        row becomes (``index_entry``); ``name`` names the signal.
    connection : picorigin._index.milvus.Connection
    checkpoint_seconds : float
        Longest time a writer's pending changes wait before it pushes them.
    """

    def __init__(self, catalog: Catalog, folder: Path, keeper: _Keeper, connection: Any, *,
                 checkpoint_seconds: float = 60.0) -> None:
        self.catalog = catalog
        self.folder = Path(folder)
        self.keeper = keeper
        self.name = keeper.name
        self.connection = connection
        self.checkpoint_seconds = checkpoint_seconds
        self._lock = threading.RLock()
        self._index: SharedIndex | None = None
        self._seq = 0  # a position the shared index is known to have reached
        self._last_push = time.monotonic()
        self.loaded_from: str | None = None

    def _meta(self, index: SharedIndex) -> dict[str, Any]:
        return {**self.keeper.index_meta(), "shared": index.identity}

    # -- reading -----------------------------------------------------------------------------

    def reading(self, position: int | None = None) -> "_Reading":
        """``with store.reading() as index:`` the index, holding every commit up to
        ``position`` (default: the log's end)."""
        return _Reading(self, position)

    def sync(self, position: int | None = None) -> SharedIndex:
        """Make sure the shared index holds every commit up to ``position``; return it."""
        with self._lock:
            if self._index is None:
                self._index = self.keeper.shared_index(self.connection)
            index = self._index
            position = self.catalog.position() if position is None else position
            if position <= self._seq:
                return index
            recorded = self.catalog.checkpoint(self.name)
            if recorded is None or recorded.meta != self._meta(index):
                start = self._start_over(index)
            else:
                start = recorded.seq
            if position > start:
                touched = self.catalog.changed_since(self.name, start, position)
                if touched is None:  # pruned past the recorded position: not ours any more
                    start = self._start_over(index)
                    touched = self.catalog.changed_since(self.name, start, position) or []
                self._write(index, touched)
                self._record(index, position)
            self._seq = max(start, position)
            self._last_push = time.monotonic()
            return index

    def _write(self, index: SharedIndex, ids: list[int]) -> None:
        """Write these ids' current rows (upsert, or delete when gone), then verify."""
        for begin in range(0, len(ids), _BATCH):
            pending = ids[begin:begin + _BATCH]
            for _ in range(_VERIFY_ROUNDS):
                rows = self.catalog.signals(self.name, pending)
                index.update([i for i in pending if i not in rows],
                             [(i, self.keeper.index_entry(rows[i])) for i in pending if i in rows])
                again = self.catalog.signals(self.name, pending)
                pending = [i for i in pending if rows.get(i) != again.get(i)]
                if not pending:
                    break
            else:
                raise RuntimeError(f"{self.name} index: rows kept changing while written")

    def _start_over(self, index: SharedIndex) -> int:
        """Write every row, delete entries without one; record and return the position read
        before the scan."""
        position = self.catalog.position()
        written = 0
        for rows in self.catalog.scan_signals(self.name, batch=_BATCH):
            self._write(index, [i for i, _ in rows])
            written += len(rows)
        extra = sorted(index.ids() - self.catalog.signal_ids(self.name))
        self._write(index, extra)  # verified like any write: a row may have appeared since
        self._record(index, position, replace=True)
        logger.info("%s index: %d rows written to the shared index, %d entries removed",
                    self.name, written, len(extra))
        return position

    def _record(self, index: SharedIndex, position: int, *, replace: bool = False) -> None:
        if position <= 0:
            return
        stale = self.catalog.record_checkpoint(
            self.name, Checkpoint(position, "", self._meta(index)), replace=replace)
        if stale:  # the per-process checkpoint file the shared position replaced
            try:
                (self.folder / stale).unlink()
            except OSError:
                pass

    def reset(self) -> None:
        """Forget what this process knows (the next sync reads the recorded position)."""
        with self._lock:
            self._index, self._seq = None, 0

    # -- writers -----------------------------------------------------------------------------

    def checkpoint(self, *, force: bool = False, replace: bool = False) -> bool:
        """Push pending commits into the shared index when due (always with ``force``).

        ``replace`` is accepted for ``SignalStore``'s interface (a shared position is never
        damaged). Returns whether anything was pending.
        """
        with self._lock:
            position = self.catalog.position()
            pending = position - self._seq
            if pending <= 0:
                return False
            due = pending >= _PUSH_MIN or time.monotonic() - self._last_push >= \
                self.checkpoint_seconds
            if not (force or due):
                return False
            if self._index is None:  # nothing opened yet: ask the catalog before Milvus
                recorded = self.catalog.checkpoint(self.name)
                if recorded is not None and recorded.seq >= position and \
                        "shared" in recorded.meta:
                    return False
            self.sync(position)
            return True

    def close(self) -> None:
        from .._index.milvus import release

        with self._lock:
            self._index = None
            if self.connection is not None:
                release(self.connection)
                self.connection = None

    # -- maintenance -------------------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Catch up, then compare the shared index's ids with the catalog's rows (the keys of
        ``SignalStore.check``; ``checkpoint`` is the recorded position)."""
        with self._lock:
            recorded = self.catalog.checkpoint(self.name)
            index = self.sync()
            usable = recorded is None or recorded.meta == self._meta(index)
            held, rows = index.ids(), self.catalog.signal_ids(self.name)
        return {"signal": self.name, "checkpoint": recorded.seq if recorded else None,
                "checkpoint_usable": usable, "entries": len(held), "rows": len(rows),
                "missing": sorted(rows - held)[:20], "extra": sorted(held - rows)[:20],
                "ok": usable and held == rows}

    def rebuild(self) -> None:
        """Rewrite every row into the shared index and delete entries without one."""
        with self._lock:
            if self._index is None:
                self._index = self.keeper.shared_index(self.connection)
            self._seq = self._start_over(self._index)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            index = self.sync()
            recorded = self.catalog.checkpoint(self.name)
            return {"position": self._seq, "checkpoint": recorded.seq if recorded else None,
                    "entries": len(index), "shared_index": str(self.connection.target)}


class _Reading:
    def __init__(self, store: SharedStore, position: int | None) -> None:
        self.store, self.position = store, position

    def __enter__(self) -> Any:
        # Unlike a per-process index, the shared one is not changed under a reader by this
        # store, so the lock is held only while catching up.
        return self.store.sync(self.position)

    def __exit__(self, *exc: object) -> None:
        pass
