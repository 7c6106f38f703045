"""A query: the source's bytes, read once; its hashes and decodes made lazily, once per size.

Search steps ask the query for what they need (``decoded(side)``, ``signal(stage)``) and the
query remembers it, so no step decodes or computes what another already did. A request for a
size that an earlier decode already covers (its longer side at least as long, or the image at
full size) is served from that decode.
"""

from __future__ import annotations

import hashlib
import threading
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from . import _imaging
from ._ingest.analyse import decode

__all__ = ["Query"]


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
        self._signals: dict[tuple[str, bool], Any] = {}
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

    def signal(self, stage: Any, *, query: bool = True) -> Any:
        """``stage.compute`` of the query (at the stage's ``query_side``), computed once."""
        key = (stage.name, query)
        if key not in self._signals:
            decoded = self.decoded(stage.query_side)
            self._signals[key] = stage.compute(decoded.image, self.size, query=query)
        return self._signals[key]

    def computed(self, name: str, compute: Any) -> Any:
        """``compute()`` once under ``name`` (signals no stage owns: windows, dense keypoints)."""
        key = (name, True)
        if key not in self._signals:
            self._signals[key] = compute()
        return self._signals[key]
