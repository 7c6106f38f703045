"""Fetching http(s) sources safely: bounded in time, bytes and redirects, public addresses only.

A search server that fetches URLs for its users can be turned against the network it sits in
(SSRF). So every hop's host is resolved and refused when any of its addresses is not public,
unless the caller allows private addresses.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from urllib.parse import urljoin

import httpx

from ._errors import FetchError, ForbiddenAddress

__all__ = ["USER_AGENT", "fetch", "is_public_address"]

logger = logging.getLogger("picorigin")

USER_AGENT = "picorigin/0.1 (+self-hosted reverse image search)"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def fetch(
    url: str,
    *,
    timeout: float = 20.0,
    max_bytes: int = 50_000_000,
    max_redirects: int = 5,
    allow_private: bool = False,
) -> tuple[str, bytes, str | None]:
    """Download one http(s) URL.

    Parameters
    ----------
    url : str
        An ``http://`` or ``https://`` URL.
    timeout : float
        Seconds the whole download, redirects included, may take.
    max_bytes : int
        Largest body accepted (after content decoding).
    max_redirects : int
        Redirects followed; each hop's address is checked again.
    allow_private : bool
        Fetch from private, loopback, link-local, multicast, reserved or unspecified addresses.

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
    deadline = time.monotonic() + timeout
    headers = {"User-Agent": USER_AGENT, "Accept": "image/*,*/*;q=0.5"}
    # trust_env=False: proxies or .netrc from the environment would sidestep the address check.
    with httpx.Client(headers=headers, timeout=timeout, trust_env=False) as client:
        for _ in range(max_redirects + 1):
            _check_url(url, allow_private)
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise httpx.ConnectTimeout("deadline passed")
                with client.stream("GET", url, timeout=remaining) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = urljoin(str(response.url), location)
                        logger.debug("%s redirects to %s", response.url, url)
                        continue
                    if response.status_code >= 400:
                        raise FetchError(
                            f"HTTP {response.status_code} {response.reason_phrase}", source=url
                        )
                    body = _read_body(response, url, max_bytes, deadline)
                    return str(response.url), body, response.headers.get("content-type")
            except httpx.TimeoutException:
                raise FetchError(f"timed out after {timeout:g} s", source=url) from None
            except httpx.HTTPError as exc:
                raise FetchError(f"could not fetch: {exc}", source=url) from None
    raise FetchError(f"more than {max_redirects} redirects", source=url)


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
        addresses = _resolve(host, source=host)
    except FetchError:
        return False
    return all(_is_public_ip(address) for address in addresses)


def _check_url(url: str, allow_private: bool) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise FetchError(f"not a valid URL: {exc}", source=url) from None
    if parsed.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs are fetched, not {parsed.scheme!r}", source=url)
    if not parsed.host:
        raise FetchError("URL has no host", source=url)
    if allow_private:
        return
    for address in _resolve(parsed.host, source=url):
        if not _is_public_ip(address):
            raise ForbiddenAddress(
                f"{parsed.host} resolves to {address}, which is not a public address "
                "(set allow_private_urls to fetch from it)",
                source=url,
            )


def _resolve(host: str, *, source: str) -> list[_IPAddress]:
    host = host.strip("[]")
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"cannot resolve host {host!r}: {exc}", source=source) from None
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _is_public_ip(address: _IPAddress) -> bool:
    if address.version == 6:
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return _is_public_ip(embedded)
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _read_body(response: httpx.Response, url: str, max_bytes: int, deadline: float) -> bytes:
    """Stream the body, stopping as soon as it passes ``max_bytes`` or the deadline."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchError(f"larger than {max_bytes} bytes ({declared} announced)", source=url)
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError(f"larger than {max_bytes} bytes", source=url)
        # Per-read timeouts alone let a server trickle bytes forever.
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("deadline passed")
        chunks.append(chunk)
    return b"".join(chunks)
