"""Fetching http(s) sources safely: bounded in time, bytes and redirects, public addresses only.

A search server that fetches URLs for its users can be turned against the network it sits in
(SSRF). So every connection's host is resolved once, refused when any of its addresses is not
public (unless the caller allows private addresses), and the socket is opened to exactly the
address that was vetted: a second lookup by the HTTP library could answer differently (DNS
rebinding). The URL itself is left alone, so the ``Host`` header and TLS SNI and certificate
check still name the host. This happens at every connection, so at every redirect hop.

Two entry points share these checks: :func:`fetch` (blocking; one URL, used by search and index)
and :class:`AsyncFetcher` (one connection pool for many requests; used by the crawler). Both
read ``fetch_timeout``, ``max_bytes``, ``fetch_max_redirects`` and ``allow_private_urls`` from
the settings they are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, TypeVar
from urllib.parse import urljoin

import anyio.to_thread
import httpcore
import httpx

from ._errors import FetchError, ForbiddenAddress
from ._settings import resolve_settings

__all__ = ["USER_AGENT", "AsyncFetcher", "FetchOptions", "fetch", "is_public_address"]

logger = logging.getLogger("picorigin")

USER_AGENT = "picorigin/0.1 (+self-hosted reverse image search)"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_T = TypeVar("_T")


# -- options ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchOptions:
    """The limits every fetch runs under.

    Attributes
    ----------
    timeout : float
        Seconds one fetch may spend in requests, redirects and body included.
    max_bytes : int
        Largest body accepted (after content decoding).
    max_redirects : int
        Redirects followed; every hop's connection is vetted again.
    allow_private : bool
        Connect to private, loopback, link-local, multicast, reserved or unspecified addresses.
    """

    timeout: float
    max_bytes: int
    max_redirects: int
    allow_private: bool

    @classmethod
    def from_settings(
        cls, settings: Mapping[str, Any] | None = None, **overrides: Any
    ) -> FetchOptions:
        """Read ``fetch_timeout``, ``max_bytes``, ``fetch_max_redirects``, ``allow_private_urls``.

        Parameters
        ----------
        settings : mapping, optional
            Settings as from :func:`picorigin._settings.resolve_settings`; names it lacks (or
            all, when None) come from the environment or the defaults of the settings table.
        **overrides
            ``timeout``, ``max_bytes``, ``max_redirects``, ``allow_private``: values that beat
            the settings; None means "from the settings".

        Raises
        ------
        SettingError
            A value of the wrong type.
        """
        names = {"fetch_timeout": "timeout", "max_bytes": "max_bytes",
                 "fetch_max_redirects": "max_redirects", "allow_private_urls": "allow_private"}
        given = dict(settings or {})
        values = resolve_settings({name: given[name] for name in names if name in given})
        options = cls(**{field: values[name] for name, field in names.items()})
        return replace(options, **{k: v for k, v in overrides.items() if v is not None})


# -- the blocking entry point -------------------------------------------------------------------
def fetch(
    url: str,
    *,
    settings: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    max_redirects: int | None = None,
    allow_private: bool | None = None,
) -> tuple[str, bytes, str | None]:
    """Download one http(s) URL.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL.
    settings : mapping, optional
        Where the limits below come from when not given (see :meth:`FetchOptions.from_settings`).
    timeout : float, optional
        Seconds the whole download, redirects included, may take (``fetch_timeout``).
    max_bytes : int, optional
        Largest body accepted, after content decoding (``max_bytes``).
    max_redirects : int, optional
        Redirects followed; each hop's address is vetted again (``fetch_max_redirects``).
    allow_private : bool, optional
        Fetch from private, loopback, link-local, multicast, reserved or unspecified addresses
        (``allow_private_urls``).

    Returns
    -------
    final_url : str
        The URL the body came from, after redirects.
    body : bytes
    content_type : str or None
        The ``Content-Type`` header, if sent.

    Raises
    ------
    ForbiddenAddress
        A hop's host resolves to an address that is not public and ``allow_private`` is off.
    FetchError
        Not http(s), unresolvable host, network error, timeout, HTTP status >= 400, too many
        redirects, or a body larger than ``max_bytes``.
    """
    options = FetchOptions.from_settings(
        settings, timeout=timeout, max_bytes=max_bytes, max_redirects=max_redirects,
        allow_private=allow_private,
    )
    deadline = time.monotonic() + options.timeout
    transport = _Transport(options.allow_private)
    with _client(httpx.Client, transport, options, {"Accept": "image/*,*/*;q=0.5"}) as client:
        for _ in range(options.max_redirects + 1):
            _check_url(url)
            with _as_fetch_error(url, options.timeout):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise httpx.ConnectTimeout("deadline passed")
                with client.stream("GET", url, timeout=remaining) as response:
                    target = _redirect_target(response, url)
                    if target is None:
                        _raise_for_status(response, url)
                        cap = _ByteCap(url, options.max_bytes)
                        cap.announced(response)
                        body = b"".join(
                            cap.take(chunk) for chunk in _before(deadline, response.iter_bytes())
                        )
                        return str(response.url), body, response.headers.get("content-type")
            logger.debug("%s redirects to %s", url, target)
            url = target
    raise FetchError(f"more than {options.max_redirects} redirects", source=url)


def _before(deadline: float, chunks: Iterable[bytes]) -> Iterator[bytes]:
    # Per-read timeouts alone let a server trickle bytes forever.
    for chunk in chunks:
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("deadline passed")
        yield chunk


# -- the asynchronous entry point ---------------------------------------------------------------
class AsyncFetcher:
    """Many fetches from one event loop over one connection pool, with the checks of :func:`fetch`.

    Use as an async context manager. Redirects are followed by :meth:`get`, which hands the
    final response to a callback that reads it as it likes (:meth:`chunks`, :meth:`read`).

    Parameters
    ----------
    settings : mapping, optional
        Where the limits come from (see :meth:`FetchOptions.from_settings`).
    concurrency : int
        Requests in flight at once.
    headers : mapping, optional
        Sent with every request beside the ``User-Agent``.
    **overrides
        ``timeout``, ``max_bytes``, ``max_redirects``, ``allow_private``, as for :func:`fetch`.

    Attributes
    ----------
    options : FetchOptions
    bytes_received : int
        Body bytes read through :meth:`chunks` so far.
    """

    def __init__(
        self,
        settings: Mapping[str, Any] | None = None,
        *,
        concurrency: int = 4,
        headers: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> None:
        self.options = FetchOptions.from_settings(settings, **overrides)
        self.bytes_received = 0
        self._slots = asyncio.Semaphore(concurrency)
        transport = _AsyncTransport(self.options.allow_private, max_connections=2 * concurrency)
        self._client = _client(httpx.AsyncClient, transport, self.options, headers)

    async def __aenter__(self) -> AsyncFetcher:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)

    async def get(
        self,
        url: str,
        consume: Callable[[str, httpx.Response], Awaitable[_T]],
        *,
        before_hop: Callable[[str, int], Awaitable[None]] | None = None,
    ) -> _T:
        """GET ``url``, following redirects, and return what ``consume`` makes of the response.

        Parameters
        ----------
        url : str
        consume : async callable (url, response) -> T
            Called with the final URL and response (any status; its body unread), inside the
            time limit.
        before_hop : async callable (url, hop), optional
            Awaited before each request, hop 0 first; its time does not count against the
            limit (a crawler waits its turn here, or raises to refuse a redirect target).

        Raises
        ------
        ForbiddenAddress, FetchError
            As :func:`fetch`, except that an HTTP error status is handed to ``consume``.
        """
        loop = asyncio.get_running_loop()
        spent, limit = 0.0, self.options.timeout
        for hop in range(self.options.max_redirects + 1):
            _check_url(url)
            if before_hop is not None:
                await before_hop(url, hop)
            async with self._slots:
                started = loop.time()
                try:
                    with _as_fetch_error(url, limit):
                        async with asyncio.timeout(limit - spent):
                            async with self._client.stream("GET", url) as response:
                                target = _redirect_target(response, url)
                                if target is None:
                                    return await consume(url, response)
                finally:
                    spent += loop.time() - started
            logger.debug("%s redirects to %s", url, target)
            url = target
        raise FetchError(f"more than {self.options.max_redirects} redirects", source=url)

    async def chunks(
        self, response: httpx.Response, url: str, max_bytes: int | None = None, *,
        truncate: bool = False,
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, at most ``max_bytes`` (default ``options.max_bytes``).

        Past the cap it stops after the first ``max_bytes`` bytes when ``truncate``, else
        raises :class:`FetchError`.
        """
        cap = _ByteCap(url, self.options.max_bytes if max_bytes is None else max_bytes, truncate)
        cap.announced(response)
        async for chunk in response.aiter_bytes():
            self.bytes_received += len(chunk)
            yield cap.take(chunk)
            if cap.full:
                return

    async def read(
        self, response: httpx.Response, url: str, max_bytes: int | None = None, *,
        truncate: bool = False,
    ) -> bytes:
        """The whole body, bounded as by :meth:`chunks`."""
        return b"".join([chunk async for chunk in self.chunks(response, url, max_bytes,
                                                               truncate=truncate)])


# -- the checks both share ----------------------------------------------------------------------
def _client(kind: type, transport: Any, options: FetchOptions, headers: Mapping[str, str] | None):
    return kind(
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        timeout=options.timeout,
        transport=transport,
        follow_redirects=False,  # followed by hand: every hop is checked
        trust_env=False,         # an environment proxy or .netrc would sidestep the checks
    )


def _check_url(url: str) -> None:
    """Refuse what is not an http(s) URL with a host; addresses are vetted when connecting."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"not a valid URL: {exc}", source=url) from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs are fetched, not {parsed.scheme!r}", source=url)
    if not parsed.host:
        raise FetchError("URL has no host", source=url)


def _redirect_target(response: httpx.Response, url: str) -> str | None:
    location = response.headers.get("location")
    if response.is_redirect and location:
        return urljoin(url, location)
    return None


def _raise_for_status(response: httpx.Response, url: str) -> None:
    if response.status_code >= 400:
        raise FetchError(f"HTTP {response.status_code} {response.reason_phrase}", source=url)


@contextlib.contextmanager
def _as_fetch_error(url: str, timeout: float) -> Iterator[None]:
    """httpx's and asyncio's errors as FetchError; an error from connecting gets its URL."""
    try:
        yield
    except FetchError as exc:  # ForbiddenAddress, or an unresolvable host, from connecting
        if exc.source is None:
            exc.source = url
        raise
    except (httpx.TimeoutException, TimeoutError):
        raise FetchError(f"timed out after {timeout:g} s", source=url) from None
    except httpx.HTTPError as exc:
        raise FetchError(f"could not fetch: {exc}", source=url) from None


class _ByteCap:
    """Counts a body's bytes as they arrive and stops it past ``max_bytes``."""

    def __init__(self, url: str, max_bytes: int, truncate: bool = False) -> None:
        self.url, self.max_bytes, self.truncate = url, max_bytes, truncate
        self.size = 0
        self.full = False

    def announced(self, response: httpx.Response) -> None:
        declared = response.headers.get("content-length", "")
        if not self.truncate and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(
                f"larger than {self.max_bytes} bytes ({declared} announced)", source=self.url
            )

    def take(self, chunk: bytes) -> bytes:
        self.size += len(chunk)
        if self.size >= self.max_bytes:
            if self.size > self.max_bytes and not self.truncate:
                raise FetchError(f"larger than {self.max_bytes} bytes", source=self.url)
            self.full = self.truncate
            return chunk[: len(chunk) - (self.size - self.max_bytes)]
        return chunk


# -- addresses ----------------------------------------------------------------------------------
def is_public_address(host: str) -> bool:
    """Whether every address ``host`` (a name or an IP literal) resolves to is public.

    Parameters
    ----------
    host : str
        A host name, or an IPv4 or IPv6 address (brackets allowed).

    Returns
    -------
    bool
        False when the host does not resolve, or when any address is private, loopback,
        link-local, multicast, reserved or unspecified (IPv4 inside IPv6 is checked as IPv4).
    """
    try:
        addresses = _resolve(host)
    except FetchError:
        return False
    return all(_is_public_ip(address) for address in addresses)


def _vetted_addresses(host: str) -> list[_IPAddress]:
    """Resolve ``host`` once; its addresses, or ForbiddenAddress when any is not public.

    The message names the host only: what its DNS answered is the operator's business.
    """
    addresses = _resolve(host)
    if all(_is_public_ip(address) for address in addresses):
        return addresses
    try:
        ipaddress.ip_address(host.strip("[]"))
        what = "is not a public address"
    except ValueError:
        what = "resolves to a private address"
    raise ForbiddenAddress(f"{host} {what} (set allow_private_urls to fetch from it)")


def _resolve(host: str) -> list[_IPAddress]:
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}") from None
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _is_public_ip(address: _IPAddress) -> bool:
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public_ip(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved)


# -- transports that connect only to vetted addresses --------------------------------------------
# httpcore opens every connection through a network backend's connect_tcp(host, port). These
# backends resolve and vet the host there and connect to the vetted IP literal: nothing resolves
# the name a second time, and httpcore still takes Host and SNI from the URL.
class _VettingBackend(httpcore.NetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None, socket_options: Any = None) -> Any:
        if self.allow_private:
            return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        error: Exception | None = None
        for address in _vetted_addresses(host):
            try:
                return self.inner.connect_tcp(str(address), port, timeout, local_address,
                                              socket_options)
            except httpcore.ConnectError as exc:  # refused or unreachable: try the next one
                error = exc
        raise error  # type: ignore[misc]  # _vetted_addresses never returns an empty list

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _AsyncVettingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None, socket_options: Any = None) -> Any:
        if self.allow_private:
            return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = await anyio.to_thread.run_sync(_vetted_addresses, host, abandon_on_cancel=True)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self.inner.connect_tcp(str(address), port, timeout, local_address,
                                                    socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error  # type: ignore[misc]

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~40 ms; one context serves every client of the process.
    return httpx.create_ssl_context(trust_env=False)


def _pool_options(limits: httpx.Limits) -> dict[str, Any]:
    return {
        "ssl_context": _ssl_context(),
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
    }


class _Transport(httpx.HTTPTransport):
    """httpx's transport, over a connection pool whose connections are vetted."""

    def __init__(self, allow_private: bool, max_connections: int = 10) -> None:
        limits = httpx.Limits(max_connections=max_connections)
        super().__init__(verify=_ssl_context(), trust_env=False, limits=limits)
        # httpx offers no network_backend argument; its request and error mapping reads _pool.
        self._pool = httpcore.ConnectionPool(
            network_backend=_VettingBackend(allow_private), **_pool_options(limits)
        )


class _AsyncTransport(httpx.AsyncHTTPTransport):
    """httpx's async transport, over a connection pool whose connections are vetted."""

    def __init__(self, allow_private: bool, max_connections: int = 10) -> None:
        limits = httpx.Limits(max_connections=max_connections)
        super().__init__(verify=_ssl_context(), trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            network_backend=_AsyncVettingBackend(allow_private), **_pool_options(limits)
        )
