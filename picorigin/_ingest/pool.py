"""Analysing many sources: in this process, or in a local pool of worker processes.

Results come back in any order, each committed once by the caller. A bounded window of batches
keeps memory flat for any collection size; a worker that dies (a decoder crash) loses only the
files in flight, which are retried alone; a worker whose parent was killed exits by itself.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any, Callable, Iterator, Mapping

from .analyse import BATCH, Analysed, Failed, Known, analyse_batch

__all__ = ["analyse_all"]

Result = Known | Analysed | Failed

_known: Callable[[str], int | None] | None = None


def analyse_all(
    sources: list[str],
    settings: Mapping[str, Any],
    stages: tuple[str, ...],
    *,
    known: Callable[[str], int | None],
    catalog: str | None,
    workers: int,
) -> Iterator[Result]:
    """Analyse every source; yield one result per source, in any order.

    Parameters
    ----------
    known : callable
        SHA-256 -> catalogued id or None, in this process.
    catalog : str or None
        The catalog's locator (``picorigin._store.catalog_locator``: a SQLite path or a
        PostgreSQL DSN), opened by each worker for the same question (None: ask nothing).
    workers : int
        Processes; 1 (or a handful of sources) analyses here.
    """
    if workers <= 1 or len(sources) < 4:
        for start in range(0, len(sources), BATCH):
            yield from analyse_batch(sources[start:start + BATCH], settings, known=known,
                                     stages=stages)
        return
    pending = [sources[i:i + BATCH] for i in range(0, len(sources), BATCH)][::-1]
    retry_alone: list[list[str]] = []
    while pending or retry_alone:
        alone = bool(retry_alone) and not pending
        window = 1 if alone else workers * 2
        queue = retry_alone if alone else pending
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=get_context("forkserver"),
            initializer=_init_worker,
            initargs=(catalog, os.getpid()),
        ) as pool:
            running: dict[Future, list[str]] = {}
            try:
                while queue or running:
                    while queue and len(running) < window:
                        batch = queue.pop()
                        running[pool.submit(_analyse_in_worker, batch, settings, stages)] = batch
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.pop(future)
                        yield from future.result()
            except BrokenProcessPool:
                crashed = [source for batch in running.values() for source in batch]
                if alone:
                    for source in crashed:
                        yield Failed(source, "the decoder crashed on this file")
                else:
                    retry_alone.extend([source] for source in crashed)


def _init_worker(catalog: str | None, parent: int) -> None:
    global _known
    if catalog:
        from .._store import open_catalog_at

        # The same kind as the parent's; one connection is all a worker's lookups need.
        options = {"max_connections": 1} if "://" in catalog else {}
        _known = open_catalog_at(catalog, **options).find_by_sha256
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int) -> None:
    # A parent killed with SIGKILL cannot stop its pool: each worker notices and leaves.
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


def _analyse_in_worker(sources: list[str], settings: Mapping[str, Any],
                       stages: tuple[str, ...]) -> list[Result]:
    return analyse_batch(sources, settings, known=_known, stages=stages)
