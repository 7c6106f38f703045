"""Webhook delivery: signed JSON POSTs from the catalog's outbox, retried with backoff.

Each alert's delivery is written to the outbox in the same transaction as the alert, so a crash
or a receiver that is down loses nothing; a sender claims due deliveries with a lease (another
process does not send them meanwhile), POSTs each and records every attempt. At least once:
a crash after the receiver answered but before the attempt was recorded sends it again, with
the same ``Idempotency-Key``, which the receiver uses to drop the repeat.

Headers of every POST::

    Content-Type: application/json
    Idempotency-Key: <the delivery's key, the same on every attempt>
    X-Picorigin-Timestamp: <unix seconds of this attempt>
    X-Picorigin-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>
    X-Picorigin-Attempt: <1, 2, ...>

The receiver recomputes the signature over the timestamp and the raw body with the watch's
secret, compares in constant time and refuses stale timestamps (replays).

Connections go through the project's fetcher (``picorigin._fetch``): the host is resolved once,
vetted and connected to exactly that address; redirects are not followed (a webhook answers);
private addresses are allowed only for a URL the operator gave at ``watch add`` on the command
line or in the library, or when ``allow_private_urls`` is on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx

from .. import _fetch
from .._errors import FetchError

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "backoff", "post", "sign", "verify"]

logger = logging.getLogger("picorigin")

SIGNATURE_HEADER = "X-Picorigin-Signature"
TIMESTAMP_HEADER = "X-Picorigin-Timestamp"
_MAX_BACKOFF = 3600.0
_RESPONSE_BYTES = 4096  # what is kept of a receiver's answer: enough to read an error


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``timestamp + "." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, signature: str, *,
           tolerance: float = 300.0, now: float | None = None) -> bool:
    """Whether a received webhook is genuine and fresh (for receivers, and the tests)."""
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(sign(secret, timestamp, body), signature)


def backoff(attempts: int, base: float) -> float:
    """Seconds before the next try after ``attempts`` failures: base, 2 base, 4 base, ...
    capped at an hour."""
    return min(_MAX_BACKOFF, base * 2 ** max(0, attempts - 1))


def post(url: str, payload: dict[str, Any], *, secret: str, key: str, attempt: int,
         allow_private: bool, timeout: float) -> int:
    """POST one delivery; return the HTTP status (2xx means delivered).

    Raises
    ------
    FetchError
        Not http(s), a refused address, no connection, a timeout.
    """
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "Idempotency-Key": key,
               TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body),
               "X-Picorigin-Attempt": str(attempt)}
    _fetch._check_url(url)
    options = _fetch.FetchOptions(timeout=timeout, max_bytes=_RESPONSE_BYTES, max_redirects=0,
                                  allow_private=allow_private)
    transport = _fetch._Transport(allow_private)
    with _fetch._client(httpx.Client, transport, options, headers) as client:
        with _fetch._as_fetch_error(url, timeout):
            with client.stream("POST", url, content=body, timeout=timeout) as response:
                # Read a little of the answer (some servers wait for it) and no more.
                for chunk in response.iter_bytes():
                    if len(chunk) >= _RESPONSE_BYTES:
                        break
                return response.status_code


def describe_failure(error: Exception) -> str:
    """One line for the attempt's record."""
    return str(error) if isinstance(error, FetchError) else f"{type(error).__name__}: {error}"
