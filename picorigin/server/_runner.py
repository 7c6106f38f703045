"""Run the synchronous engine from the event loop without blocking it.

The engine is thread-safe for concurrent reads (SQLite readers, read-only index searches) but has
one writer, so reads go to worker threads side by side and writes go one at a time. Writers wait
on an async lock rather than in a thread, so a queue of uploads cannot use up the thread pool
that searches need.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import anyio
import anyio.to_thread

__all__ = ["EngineRunner"]


class EngineRunner:
    """The app's handle on the engine.

    Parameters
    ----------
    engine : picorigin.Engine
        Owned by the caller, who closes it after the server stops.
    threads : int
        Engine calls running at once; more wait their turn.
    """

    def __init__(self, engine: Any, *, threads: int = 8) -> None:
        self.engine = engine
        self._limiter = anyio.CapacityLimiter(threads)
        self._write_lock = anyio.Lock()

    def has(self, method: str) -> bool:
        return callable(getattr(self.engine, method, None))

    async def read(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in a worker thread alongside other reads."""
        return await anyio.to_thread.run_sync(
            functools.partial(fn, *args, **kwargs), limiter=self._limiter
        )

    async def write(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in a worker thread, one write at a time."""
        async with self._write_lock:
            return await self.read(fn, *args, **kwargs)
