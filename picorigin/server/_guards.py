"""What stands between a request and the engine: the Host check, the upload cap, the API key,
error mapping.

Every error leaves the server as ``{"error": {"status": n, "message": "..."}}`` (or, for a person
browsing an HTML page, as a small HTML page saying the same), so a client never has to parse a
traceback or a framework-specific shape.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from typing import Any, Callable
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from .._errors import (
    CorruptImage,
    FetchError,
    ForbiddenAddress,
    ImageError,
    ImageTooLarge,
    NotFound,
    PicoriginError,
    SettingError,
    StageUnavailable,
    UnsupportedFormat,
)

logger = logging.getLogger("picorigin")

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "BodyTooLarge",
    "HostGuard",
    "UploadCap",
    "allowed_hosts_from",
    "error_body",
    "install_error_handlers",
    "require_key",
    "status_for",
]

# Multipart boundaries, part headers and small text fields ride on top of the file bytes.
_FORM_SLACK = 64 * 1024
# After refusing a body we still read (and drop) this much of it, so the client gets to read
# our 413 instead of a connection reset; beyond it we stop reading and let the connection close.
_DRAIN_LIMIT = 64 * 1024 * 1024

# Most specific first: ForbiddenAddress is a FetchError, ImageTooLarge an ImageError.
_STATUS: tuple[tuple[type[BaseException], int], ...] = (
    (ImageTooLarge, 413),
    (UnsupportedFormat, 415),
    (CorruptImage, 422),
    (ImageError, 422),
    (ForbiddenAddress, 400),
    (FetchError, 502),
    (NotFound, 404),
    (SettingError, 400),
    (StageUnavailable, 501),
)


def status_for(exc: PicoriginError) -> int:
    """HTTP status for a picorigin error (500 for one this table does not know)."""
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


ALLOWED_HOSTS_ENV = "PICORIGIN_ALLOWED_HOSTS"
"""Environment variable read when no allowed hosts are given: comma-separated names."""

# Names every server answers to, whatever it is bound to: its own machine.
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def allowed_hosts_from(values: Any = None, environ: Any = None) -> tuple[str, ...]:
    """Normalise the hosts a server answers to besides loopback and its own address.

    Parameters
    ----------
    values : iterable of str, optional
        ``name`` (any port), ``name:port``, ``[v6]:port``, or ``*`` (any host: for a server
        behind a proxy that checks Host itself). None reads :data:`ALLOWED_HOSTS_ENV`,
        comma-separated.
    environ : mapping, optional
        Defaults to ``os.environ``.

    Returns
    -------
    tuple of str
        Lower-case entries.

    Raises
    ------
    SettingError
        An entry with a scheme, a path, or spaces: the mistake is said rather than never matching.
    """
    if values is None:
        environ = os.environ if environ is None else environ
        values = environ.get(ALLOWED_HOSTS_ENV, "").split(",")
    elif isinstance(values, str):
        values = [values]
    out = []
    for value in values:
        entry = str(value).strip().lower().rstrip(".")
        if not entry:
            continue
        if entry != "*" and (any(c in entry for c in "/@?# \t") or entry.startswith(":")):
            raise SettingError(
                f"allowed host {value!r} must be a host name, optionally with :port "
                "(search.example.com, 192.168.1.5:8000), or *"
            )
        out.append(entry)
    return tuple(out)


def _authority(host: str, port: int | None) -> str:
    """``host:port`` as a Host header spells it; IPv6 addresses in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return f"{host}:{port}" if port is not None else host


def _split_host(header: str) -> tuple[str, str | None]:
    """``(name, port or None)`` of a Host header value (lower case, trailing dot dropped)."""
    header = header.strip().lower()
    if header.startswith("["):
        name, _, rest = header.partition("]")
        name += "]"
        port = rest[1:] if rest.startswith(":") else None
    else:
        name, sep, port = header.rpartition(":")
        if not sep:
            name, port = header, None
    return name.rstrip("."), port


class HostGuard:
    """ASGI middleware answering 421 to a request whose ``Host`` this server does not serve.

    Without it, a page on ``attacker.example`` whose DNS name is re-pointed at 127.0.0.1 (DNS
    rebinding) talks to a loopback server as a same-origin page: its ``Origin`` and ``Host``
    agree, so the cross-origin check passes and it can read and delete. Browsers always send
    the name they resolved as ``Host``, so accepting only this machine's names, the address
    the connection arrived on and the configured names closes that door. A request without
    ``Host`` (HTTP/1.0 from a script) cannot come from such a page and passes.

    Parameters
    ----------
    app : ASGI app
    allowed_hosts : tuple of str
        From :func:`allowed_hosts_from`.
    """

    def __init__(self, app: Any, *, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.named = frozenset(allowed_hosts)

    def allows(self, host: str, server: tuple[str, int] | None) -> bool:
        if self.any_host:
            return True
        name, port = _split_host(host)
        local_port = server[1] if server else None
        if port is None:  # the scheme's default port: allowed only when that is ours
            port = str(local_port) if local_port in (80, 443) else ""
        if f"{name}:{port}" in self.named or name in self.named:
            return True
        if port != str(local_port):
            return False
        ours = set(_LOOPBACK_NAMES)
        if server:  # the address this connection arrived on (the LAN address on 0.0.0.0)
            ours.add(_authority(server[0], None).lower())
        return name in ours

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hosts = [v for k, v in scope.get("headers", ()) if k == b"host"]
        host = hosts[0].decode("latin-1") if len(hosts) == 1 else None
        if len(hosts) > 1 or (host is not None and not self.allows(host, scope.get("server"))):
            await _drain(receive, 0)
            shown = (host or "several Host headers")[:100]
            message = (
                f"this server does not answer to the host {shown!r}; open it as "
                "http://127.0.0.1:PORT/, or start it with --allowed-host NAME "
                f"(or {ALLOWED_HOSTS_ENV}) to serve that name"
            )
            response = JSONResponse(error_body(421, message), status_code=421)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyTooLarge(Exception):
    """A request body grew past the cap while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit:,} bytes")
        self.limit = limit


def _too_large_message(cap: int) -> str:
    return (
        f"upload too large: this server accepts images of at most {cap:,} bytes "
        f"({cap / 1_000_000:g} MB); send a smaller file or a URL to it"
    )


class UploadCap:
    """ASGI middleware refusing request bodies over the cap, before and while they are read.

    A declared ``Content-Length`` over the limit is refused without reading the body; a body that
    grows past it (chunked, or lying about its length) raises `BodyTooLarge` from ``receive``,
    which the app answers with 413. Either way the rest of the body is drained (up to
    ``_DRAIN_LIMIT``) so that a client still sending gets to read the answer.

    Parameters
    ----------
    app : ASGI app
    cap : int
        Largest image upload, in bytes. A request may carry ``files_for(path)`` images plus
        a little form overhead.
    files_for : callable
        ``path -> number of images`` a request to that path may carry.
    """

    def __init__(self, app: Any, *, cap: int, files_for: Callable[[str], int]) -> None:
        self.app = app
        self.cap = cap
        self.files_for = files_for

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap * self.files_for(scope["path"]) + _FORM_SLACK
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _drain(receive, 0)
            response = JSONResponse(error_body(413, _too_large_message(self.cap)), status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await _drain(receive, seen)
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


def _content_length(scope: dict) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Callable, seen: int) -> None:
    while seen < _DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def require_key(request: Request) -> None:
    """Refuse a write (401) unless it carries the server's API key, when the server has one.

    The key may come as ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``. Writes from a web
    page on another origin are refused (403) whether or not a key is set: without this, any site
    the user visits could post a form to a server on their own machine.
    """
    problem = _write_refusal(request)
    if problem is not None:
        # Read (and drop) the upload first: refusing mid-upload would reset the connection
        # before the client reads why. UploadCap still bounds what is read.
        async for _ in request.stream():
            pass
        raise problem


def _write_refusal(request: Request) -> HTTPException | None:
    origin = request.headers.get("origin")
    if origin is not None:
        # "null" is what sandboxed frames and file: pages send: never this server's own page.
        origin_host = urlsplit(origin).netloc.lower() if origin != "null" else "null"
        if origin_host != request.headers.get("host", "").lower():
            return HTTPException(
                403, f"cross-origin write refused: a page on {origin} may not change this "
                "collection; use the server's own page or a non-browser client"
            )
    key = request.app.state.api_key
    if key is None:
        return None
    given = request.headers.get("x-api-key")
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else None
    if not given:
        return HTTPException(
            401, "this server needs an API key for changes: send it as the X-API-Key header "
            "or as 'Authorization: Bearer KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(given.encode(), key.encode()):
        return HTTPException(
            401, "wrong API key: check the key the server was started with (--api-key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/api", "/healthz", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def install_error_handlers(app: Any, render_error: Callable[[Request, int, str], Response]) -> None:
    """Make every error, ours or the framework's, leave as the one JSON (or HTML) shape."""

    def respond(request: Request, status: int, message: str, headers: dict | None = None) -> Response:
        if _wants_html(request):
            return render_error(request, status, message)
        return JSONResponse(error_body(status, message), status_code=status, headers=headers)

    @app.exception_handler(PicoriginError)
    async def picorigin_error(request: Request, exc: PicoriginError) -> Response:
        status = status_for(exc)
        if status == 500:
            logger.error("unexpected picorigin error on %s", request.url.path, exc_info=exc)
        return respond(request, status, str(exc))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge) -> Response:
        return respond(request, 413, _too_large_message(request.app.state.max_upload_bytes))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such page: {request.url.path}"
        elif exc.status_code == 405 and message == "Method Not Allowed":
            message = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return respond(request, exc.status_code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body"))
            parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
        return respond(request, 422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(
            error_body(500, "internal error; the server log has the details"), status_code=500
        )
