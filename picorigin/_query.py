"""A query: the source's bytes, read once; its hashes and decodes made lazily, once per size.

Search steps ask the query for what they need (``decoded(side)``, ``signal(stage)``,
``computed(name, ...)``) and the query remembers it, so no step decodes or computes what another
already did. A request for a size that an earlier decode already covers (its longer side at
least as long, or the image at full size) is served from that decode.

Before the steps run, each may ``prefetch`` what it will need: those computations (the local
stage's keypoints, the deep network, the framing windows) then run side by side on a small
thread pool, one per core (OpenCV, ONNX Runtime and NumPy release the GIL), while the steps
before them work; a step that needs a result waits only for what is not done yet.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

from . import _imaging
from ._ingest.analyse import decode

__all__ = ["Query"]

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The pool queries compute on (one thread per core), for work a step splits."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2,
                                       thread_name_prefix="picorigin-query")
        return _pool


class Query:
    """One image searched for.

    Parameters
    ----------
    source : path, http(s) URL, or bytes
    settings : Settings
    first_side : int
        The longer side of the first decode, made at once (the largest any step that will run
        needs, so that later requests for smaller sizes reuse it).

    Raises
    ------
    ImageError, FetchError
        When the source cannot be read or decoded.
    """

    def __init__(self, source: str | Path | bytes, settings: Mapping[str, Any],
                 first_side: int) -> None:
        self.label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
        self.uri, self.data = _imaging.read_source(source, settings)
        self.settings = settings
        self._decodes: list[_imaging.Decoded] = []
        self._results: dict[str, Future] = {}
        self._lock = threading.Lock()
        first = self.decoded(first_side)
        self.width, self.height = first.width, first.height
        self.pixel_sha256 = first.pixel_sha256

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def decoded(self, side: int | None) -> _imaging.Decoded:
        """The query decoded with a longer side of at least ``side`` (None: full size)."""
        with self._lock:
            for done in self._decodes:
                full = done.image.size == (done.width, done.height)
                if full or (side is not None and max(done.image.size) >= side):
                    return done
            decoded = decode(self.data, self.uri, self.settings, side)
            self._decodes.append(decoded)
            return decoded

    def signal(self, stage: Any) -> Any:
        """``stage.compute`` of the query (at the stage's ``query_side``), computed once."""
        return self.computed(f"signal:{stage.name}", self._signal_of(stage))

    def prefetch_signal(self, stage: Any) -> None:
        """Start computing :meth:`signal` on the query pool."""
        self.prefetch(f"signal:{stage.name}", self._signal_of(stage))

    def _signal_of(self, stage: Any) -> Callable[[], Any]:
        def compute() -> Any:
            image = self.decoded(stage.query_side).image
            return stage.compute(image, self.size, query=True)

        return compute

    def prefetch(self, name: str, compute: Callable[[], Any]) -> None:
        """Start ``compute()`` on the query pool, once under ``name``."""
        with self._lock:
            if name not in self._results:
                self._results[name] = executor().submit(compute)

    def computed(self, name: str, compute: Callable[[], Any]) -> Any:
        """The result of ``compute()`` under ``name``: prefetched, or computed here, once."""
        with self._lock:
            future = self._results.get(name)
            if future is None:
                future = self._results[name] = Future()
                owner = True
            else:
                owner = False
        if owner:
            try:
                future.set_result(compute())
            except BaseException as error:
                future.set_exception(error)
        return future.result()
