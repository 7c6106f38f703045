"""Analysing many sources on a Dask cluster (``index --dask tcp://scheduler:8786``).

The workers read, decode and compute every signal (``analyse_batch``: pure, its inputs and
results plain picklable data); this process commits each result once, as it arrives, in any
order, so the catalog sees exactly what a local run would. Sources must be readable from the
workers: paths on a file system they share, or URLs.

A worker that dies takes its running batches with it; the scheduler hands them to another
worker. A batch that kills worker after worker (a decoder crash) is retried one source at a
time, and a source that still kills its worker is reported failed, like the local pool does.
With a PostgreSQL catalog the workers ask it which contents are known (and skip reading those
past the hash); with the SQLite file, which they may not see, they analyse everything new to
them and the commit adds a location where the content was known.
"""

from __future__ import annotations

import threading
from typing import Any, Iterator, Mapping

from .._errors import SettingError
from .analyse import BATCH, Analysed, Failed, Known, analyse_batch

__all__ = ["analyse_on_dask", "scheduler_address"]

Result = Known | Analysed | Failed

# Batches in flight per worker thread: enough to keep every worker busy while results stream
# back, few enough that memory stays flat for any collection size.
_IN_FLIGHT_PER_THREAD = 2

# One catalog per worker process, opened on first use (worker processes live across tasks).
_catalogs: dict[str, Any] = {}
_catalogs_lock = threading.Lock()


def scheduler_address(target: str) -> str:
    """``dask://host:8786`` (the setting's form) or ``tcp://host:8786`` -> the scheduler's
    address. Raises SettingError for anything else."""
    target = target.strip()
    if target.startswith("dask://"):
        return "tcp://" + target[len("dask://"):]
    if target.startswith(("tcp://", "tls://", "inproc://")):
        return target
    raise SettingError(f"setting 'ingest': {target!r} is not a Dask scheduler address; use "
                       "dask://host:8786 or tcp://host:8786, or leave it empty for local workers")


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as error:
        raise SettingError("setting 'ingest': a Dask cluster needs the dask extra"
                           f" (pip install 'picorigin[dask]'): {error}") from None
    return distributed


def analyse_on_dask(
    sources: list[str],
    settings: Mapping[str, Any],
    stages: tuple[str, ...],
    *,
    address: str,
    catalog: str | None = None,
    timeout: float = 10.0,
) -> Iterator[Result]:
    """Analyse every source on the cluster; yield one result per source, in any order.

    Parameters
    ----------
    address : str
        The scheduler (``tcp://host:8786`` or ``dask://host:8786``).
    catalog : str, optional
        The catalog's locator; a PostgreSQL DSN is opened by the workers to skip known content.
    timeout : float
        Seconds to wait for the scheduler.

    Raises
    ------
    SettingError
        When the dask extra is missing or the scheduler cannot be reached.
    """
    if not sources:
        return
    distributed = _distributed()
    address = scheduler_address(address)
    dsn = catalog if catalog and catalog.startswith(("postgresql://", "postgres://")) else None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as error:
        raise SettingError(f"setting 'ingest': cannot reach the Dask scheduler at {address}:"
                           f" {error}") from None
    try:
        threads = max(1, sum(client.nthreads().values()))
        window = threads * _IN_FLIGHT_PER_THREAD
        pending = [sources[i:i + BATCH] for i in range(0, len(sources), BATCH)][::-1]
        alone: list[list[str]] = []
        running: dict[Any, list[str]] = {}
        finished = distributed.as_completed(loop=client.loop)

        def submit(batch: list[str]) -> None:
            # pure=False: a retried batch is a new task, never a cached result.
            future = client.submit(_analyse_remote, batch, settings, stages, dsn, pure=False)
            running[future] = batch
            finished.add(future)

        while len(running) < window and pending:
            submit(pending.pop())
        for future in finished:
            batch = running.pop(future)
            error = None
            if future.status != "finished":
                # Not finished any more is not failed: a result lost with its worker (killed
                # after finishing) is computed again, and exception() waits for that.
                try:
                    error = future.exception()
                except Exception as cancelled:  # noqa: BLE001 - cancelled: the scheduler left
                    error = cancelled
            if error is None:
                yield from future.result()
            elif isinstance(error, distributed.KilledWorker) and len(batch) > 1:
                alone.extend([source] for source in batch)  # find the one that kills
            else:
                reason = ("the worker died analysing this file"
                          if isinstance(error, distributed.KilledWorker)
                          else f"{type(error).__name__}: {error}")
                for source in batch:
                    yield Failed(source, reason)
            future.release()
            while len(running) < window and (alone or pending):
                submit((alone or pending).pop())
    finally:
        client.close()


def _analyse_remote(sources: list[str], settings: Mapping[str, Any], stages: tuple[str, ...],
                    dsn: str | None) -> list[Result]:
    """The task each worker runs: one batch, with the catalog's known contents skipped."""
    known = None
    if dsn:
        with _catalogs_lock:
            if dsn not in _catalogs:
                from .._store.postgres import PostgresCatalog

                _catalogs[dsn] = PostgresCatalog(dsn, max_connections=1)
            known = _catalogs[dsn].find_by_sha256
    return analyse_batch(sources, settings, known=known, stages=stages)
