"""Uploaded query images kept a short while in memory, so a compare URL can name one.

A search or compare of an uploaded image keeps its bytes here under an id made from their
SHA-256 (24 hex digits, so an id can be neither guessed nor enumerated: whoever holds it
already had the image, or was given the link). ``/compare?q=ID&b=42`` then reopens the
comparison without uploading again. Nothing is written to disk or to the collection; uploads
are forgotten after ``ttl`` seconds, when the server restarts, or oldest first when more than
``max_items`` or ``max_bytes`` are kept, so memory stays bounded.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict

__all__ = ["UPLOAD_ID", "UploadStore"]

UPLOAD_ID = re.compile(r"^[0-9a-f]{24}$")


class UploadStore:
    """A bounded, expiring map of upload id -> bytes; thread-safe.

    Parameters
    ----------
    max_items : int
        Most uploads kept.
    max_bytes : int
        Most bytes kept, all uploads together (an upload larger than this is not kept).
    ttl : float
        Seconds an upload is kept after it was last put or read.
    """

    def __init__(self, max_items: int = 64, max_bytes: int = 256_000_000,
                 ttl: float = 3600.0) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str | None:
        """Keep ``data``; return its id (None when it is too large to keep)."""
        if len(data) > self.max_bytes:
            return None
        key = hashlib.sha256(data).hexdigest()[:24]
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._items[key] = (time.monotonic(), data)
            self._bytes += len(data)
            self._evict()
        return key

    def get(self, key: str) -> bytes | None:
        """The upload kept under ``key``, or None (unknown, malformed or expired)."""
        if not isinstance(key, str) or not UPLOAD_ID.match(key):
            return None
        with self._lock:
            self._evict()
            item = self._items.pop(key, None)
            if item is None:
                return None
            self._items[key] = (time.monotonic(), item[1])  # read: kept longer, evicted last
            return item[1]

    def __len__(self) -> int:
        return len(self._items)

    def _evict(self) -> None:
        now = time.monotonic()
        while self._items:
            key, (stamp, data) = next(iter(self._items.items()))
            if (now - stamp <= self.ttl and len(self._items) <= self.max_items
                    and self._bytes <= self.max_bytes):
                break
            del self._items[key]
            self._bytes -= len(data)
