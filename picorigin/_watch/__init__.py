"""Watches and alerts: register pictures, get an alert (and a signed webhook) whenever the
engine ingests a copy of one, from any process (see ``_watcher``)."""

from ._deliver import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify
from ._index import WatchHit, WatchIndex
from ._watcher import STATUSES, Watcher, watcher

__all__ = ["SIGNATURE_HEADER", "STATUSES", "TIMESTAMP_HEADER", "WatchHit", "WatchIndex",
           "Watcher", "sign", "verify", "watcher"]
