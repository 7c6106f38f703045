"""Tests for picorigin._fetch against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
import time

import pytest
import trustme
from provenance.miniweb import RebindingResolver, twin_sites

from picorigin import _fetch
from picorigin._errors import FetchError, ForbiddenAddress, SettingError
from picorigin._fetch import USER_AGENT, fetch, is_public_address

BODY = bytes(range(256)) * 40  # 10 240 bytes


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /image, /redirect, /relative-redirect, /loop, /to-file, /to-private, /big,
    /big-unannounced, /slow, /trickle; anything else is 404. Records each request's path and User-Agent."""

    requests: list[tuple[str, str]] = []

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.requests.append((self.path, self.headers.get("User-Agent", "")))
        try:
            self.route()
        except OSError:  # the client gave up (timeouts, byte cap): expected here
            pass

    def route(self):
        port = self.server.server_port
        if self.path == "/image":
            self.reply(200, BODY, {"Content-Type": "image/jpeg"})
        elif self.path == "/redirect":
            self.reply(302, b"", {"Location": f"http://127.0.0.1:{port}/image"})
        elif self.path == "/relative-redirect":
            self.reply(301, b"", {"Location": "/image"})
        elif self.path == "/loop":
            self.reply(307, b"", {"Location": "/loop"})
        elif self.path == "/to-file":
            self.reply(302, b"", {"Location": "file:///etc/passwd"})
        elif self.path == "/to-private":
            self.reply(302, b"", {"Location": f"http://127.0.0.2:{port}/image"})
        elif self.path == "/big":
            self.reply(200, b"x" * 200_000, {"Content-Type": "image/png"})
        elif self.path == "/big-unannounced":  # no Content-Length: body ends when we close
            self.send_response(200)
            self.end_headers()
            for _ in range(200):
                self.wfile.write(b"x" * 1000)
        elif self.path == "/slow":
            time.sleep(1.0)
            self.reply(200, BODY, {})
        elif self.path == "/trickle":
            self.send_response(200)
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self.reply(404, b"not here", {})

    def reply(self, status, body, headers):
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def get(url, **options):
    return fetch(url, **{"timeout": 5.0, "max_bytes": 100_000, "max_redirects": 3,
                         "allow_private": True, **options})


def test_fetch_image(server):
    Handler.requests.clear()
    assert get(f"{server}/image") == (f"{server}/image", BODY, "image/jpeg")
    assert Handler.requests == [("/image", USER_AGENT)]


@pytest.mark.parametrize("path", ["/redirect", "/relative-redirect"])
def test_fetch_follows_redirects(server, path):
    final_url, body, _ = get(server + path)
    assert (final_url, body) == (f"{server}/image", BODY)
    with pytest.raises(FetchError, match="more than 0 redirects"):
        get(server + path, max_redirects=0)


def test_redirect_to_another_scheme_is_refused(server):
    with pytest.raises(FetchError, match="only http and https"):
        get(f"{server}/to-file")


def test_redirect_loop_is_bounded(server):
    Handler.requests.clear()
    with pytest.raises(FetchError, match="more than 3 redirects"):
        get(f"{server}/loop")
    assert len(Handler.requests) == 4


def test_http_error_status(server):
    with pytest.raises(FetchError, match="404") as caught:
        get(f"{server}/missing")
    assert caught.value.source == f"{server}/missing"


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_byte_cap(server, path):
    with pytest.raises(FetchError, match="larger than 100000 bytes"):
        get(server + path)
    assert len(get(server + path, max_bytes=200_000)[1]) == 200_000


def test_timeout(server):
    with pytest.raises(FetchError, match="timed out"):
        get(f"{server}/slow", timeout=0.3)


def test_trickling_server_hits_the_deadline(server):
    # Each byte comes well within the per-read timeout; the whole body does not.
    with pytest.raises(FetchError, match="timed out"):
        get(f"{server}/trickle", timeout=0.5)


def test_loopback_is_forbidden_by_default(server):
    Handler.requests.clear()
    with pytest.raises(ForbiddenAddress, match="127.0.0.1") as caught:
        fetch(f"{server}/image")
    assert caught.value.source == f"{server}/image"
    assert Handler.requests == []  # refused before connecting


def test_every_redirect_hop_is_checked(server, monkeypatch):
    # Pretend 127.0.0.1 is public, so the first hop passes and only the redirect to 127.0.0.2
    # (another loopback address) is refused.
    monkeypatch.setattr(_fetch, "_is_public_ip", lambda address: str(address) == "127.0.0.1")
    assert get(f"{server}/image", allow_private=False)[1] == BODY
    with pytest.raises(ForbiddenAddress, match="127.0.0.2"):
        get(f"{server}/to-private", allow_private=False)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/a.jpg", "file:///etc/passwd", "gopher://x/",
                                 "http://", "not a url"])
def test_only_http_and_https(url):
    with pytest.raises(FetchError) as caught:
        fetch(url, allow_private=True)
    assert not isinstance(caught.value, ForbiddenAddress)


@pytest.mark.parametrize("host, public", [
    ("8.8.8.8", True),
    ("2606:4700:4700::1111", True),
    ("[2606:4700:4700::1111]", True),
    ("::ffff:8.8.8.8", True),
    ("127.0.0.1", False),
    ("localhost", False),
    ("10.1.2.3", False),
    ("172.16.0.1", False),
    ("192.168.1.1", False),
    ("100.64.0.1", False),  # carrier-grade NAT
    ("169.254.169.254", False),  # cloud metadata service
    ("0.0.0.0", False),
    ("224.0.0.1", False),
    ("255.255.255.255", False),
    ("::1", False),
    ("::", False),
    ("fe80::1", False),
    ("fc00::1", False),
    ("ff02::1", False),
    ("::ffff:127.0.0.1", False),
    ("::ffff:10.0.0.1", False),
    ("2002:7f00:1::1", False),  # 6to4 around 127.0.0.1
])
def test_is_public_address(host, public):
    assert is_public_address(host) is public


# -- DNS rebinding: the connection goes to the address that was vetted -------------------------
# twin_sites() serves "outside" on 127.0.0.2 and "inside" on 127.0.0.1, on one port. Counting
# 127.0.0.2 as public, a name that resolves to it first and to 127.0.0.1 next is a rebinding
# attack on the private "inside" server.


@pytest.fixture
def twins(monkeypatch):
    monkeypatch.setattr(_fetch, "_is_public_ip", lambda address: str(address) == "127.0.0.2")
    with twin_sites() as (outside, inside):
        for web, body in ((outside, b"outside"), (inside, b"inside secret")):
            web.file("/image", body)
            web.redirect("/hop", web.url("/image", host="next.test"))
        yield outside, inside


def rebinding(monkeypatch, *names):
    resolver = RebindingResolver({name: ["127.0.0.2", "127.0.0.1"] for name in names})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


def test_a_rebinding_name_never_reaches_the_private_address(twins, monkeypatch):
    outside, inside = twins
    resolver = rebinding(monkeypatch, "rebind.test")
    url = outside.url("/image", host="rebind.test")
    assert get(url, allow_private=False) == (url, b"outside", "image/jpeg")
    assert resolver.lookups["rebind.test"] == 1          # vetted and connected with one answer
    assert outside.hosts == {f"rebind.test:{outside.port}": 1}

    # The name now answers 127.0.0.1: refused, without saying what it resolved to.
    with pytest.raises(ForbiddenAddress) as caught:
        get(url, allow_private=False)
    assert str(caught.value) == (f"{url}: rebind.test resolves to a private address "
                                 "(set allow_private_urls to fetch from it)")
    assert inside.connections == 0 and not inside.requests


def test_a_rebinding_name_behind_a_redirect_never_reaches_the_private_address(twins, monkeypatch):
    outside, inside = twins
    resolver = rebinding(monkeypatch, "next.test")
    final_url, body, _ = get(outside.url("/hop"), allow_private=False)
    assert (final_url, body) == (outside.url("/image", host="next.test"), b"outside")
    assert resolver.lookups["next.test"] == 1
    assert outside.hosts[f"next.test:{outside.port}"] == 1
    with pytest.raises(ForbiddenAddress, match="next.test resolves to a private address"):
        get(outside.url("/hop"), allow_private=False)
    assert inside.connections == 0 and not inside.requests


def test_allow_private_urls_lets_the_name_go_where_it_resolves(twins, monkeypatch):
    outside, inside = twins
    monkeypatch.setattr(socket, "getaddrinfo", RebindingResolver({"rebind.test": ["127.0.0.1"]}))
    url = inside.url("/image", host="rebind.test")
    assert fetch(url, settings={"allow_private_urls": True})[1] == b"inside secret"
    assert inside.connections == 1


def test_https_to_the_vetted_address_keeps_the_name_for_sni_and_the_certificate(monkeypatch):
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("rebind.test").configure_cert(server_context)
    names = []
    server_context.sni_callback = lambda sock, name, context: names.append(name)
    client_context = ssl.create_default_context()
    authority.configure_trust(client_context)
    monkeypatch.setattr(_fetch, "_ssl_context", lambda: client_context)
    monkeypatch.setattr(_fetch, "_is_public_ip", lambda address: str(address) == "127.0.0.2")
    rebinding(monkeypatch, "rebind.test", "other.test")
    with twin_sites(server_context) as (outside, inside):
        outside.file("/image", b"over tls")
        url = outside.url("/image", host="rebind.test")
        assert get(url, allow_private=False) == (url, b"over tls", "image/jpeg")
        assert names == ["rebind.test"]
        assert outside.hosts == {f"rebind.test:{outside.port}": 1}
        # The certificate is checked against the name, not the address connected to.
        with pytest.raises(FetchError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            get(outside.url("/image", host="other.test"), allow_private=False)
        assert outside.requests["/image"] == 1
    assert inside.connections == 0


def test_limits_come_from_the_settings(server):
    settings = {"allow_private_urls": True, "max_bytes": 50_000, "fetch_max_redirects": 0,
                "fetch_timeout": 0.3}
    with pytest.raises(FetchError, match="larger than 50000 bytes"):
        fetch(f"{server}/big", settings=settings)
    with pytest.raises(FetchError, match="more than 0 redirects"):
        fetch(f"{server}/redirect", settings=settings)
    with pytest.raises(FetchError, match="timed out after 0.3 s"):
        fetch(f"{server}/slow", settings=settings)
    # An explicit argument beats the setting.
    assert fetch(f"{server}/redirect", settings=settings, max_redirects=1)[1] == BODY
    with pytest.raises(ForbiddenAddress):
        fetch(f"{server}/image", settings={"max_bytes": 50_000})   # allow_private_urls: default
    with pytest.raises(SettingError):
        fetch(f"{server}/image", settings={"fetch_timeout": "soon"})
