"""A real HTTP server on 127.0.0.1 serving a dictionary of pages and images (tests, bench).

Importable as ``provenance.miniweb`` (``tests`` is on the pytest path; bench adds it).
Also here: :func:`twin_sites` and :class:`RebindingResolver`, to stage DNS rebinding against
real servers.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


class MiniWeb:
    """One site: ``routes`` maps a path (with query) to ``(status, content_type, body, headers)``.

    ``requests`` counts the GETs each path received; ``agents`` the User-Agents seen; ``hosts``
    the Host headers; ``times`` when each request came (``time.monotonic()``, path);
    ``connections`` the TCP connections accepted. Use as a context manager; ``url(path)`` gives
    the absolute URL. ``address`` and ``port`` choose where it listens (port 0: any free one);
    with ``ssl_context`` it speaks HTTPS.
    """

    def __init__(
        self, address: str = "127.0.0.1", port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.requests: Counter[str] = Counter()
        self.agents: set[str] = set()
        self.hosts: Counter[str] = Counter()
        self.times: list[tuple[float, str]] = []
        self.connections = 0
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                web.times.append((time.monotonic(), self.path))
                web.requests[self.path] += 1
                web.agents.add(self.headers.get("User-Agent", ""))
                web.hosts[self.headers.get("Host", "")] += 1
                status, content_type, body, headers = web.routes.get(
                    self.path, (404, "text/plain", b"not found", {})
                )
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                web.connections += 1
                return True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up (a refused certificate, a byte cap) is expected

        self.server = Server((address, port), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self.netloc = f"{address}:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/", host: str | None = None) -> str:
        """The absolute URL of ``path``; ``host`` names the site otherwise than by address."""
        netloc = f"{host}:{self.port}" if host else self.netloc
        return f"{self.scheme}://{netloc}{path}"

    def page(self, path: str, html: str, status: int = 200) -> None:
        self.routes[path] = (status, "text/html; charset=utf-8", html.encode(), {})

    def file(self, path: str, body: bytes, content_type: str = "image/jpeg") -> None:
        self.routes[path] = (200, content_type, body, {})

    def redirect(self, path: str, target: str, status: int = 302) -> None:
        self.routes[path] = (status, "text/plain", b"", {"Location": target})

    def robots(self, text: str) -> None:
        self.routes["/robots.txt"] = (200, "text/plain", text.encode(), {})

    def __enter__(self) -> "MiniWeb":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@contextlib.contextmanager
def twin_sites(
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[tuple[MiniWeb, MiniWeb]]:
    """Two sites on one port: ``outside`` on 127.0.0.2 and ``inside`` on 127.0.0.1.

    A test that counts 127.0.0.2 as a public address can then point a host name at either by
    DNS alone, as a rebinding attacker does. Only ``outside`` speaks HTTPS when given a context.
    """
    for _ in range(20):
        outside = MiniWeb("127.0.0.2", ssl_context=ssl_context)
        try:
            inside = MiniWeb("127.0.0.1", outside.port)
            break
        except OSError:  # that port is taken on 127.0.0.1: try another
            outside.server.server_close()
    else:
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")
    with outside, inside:
        yield outside, inside


class RebindingResolver:
    """A stand-in for ``socket.getaddrinfo`` whose answer for a name changes as it is asked.

    ``answers`` maps a host name to the addresses it resolves to at the 1st, 2nd, ... lookup
    (the last one repeats). Other names, and IP literals, go to the real resolver. ``lookups``
    counts the lookups of each name.
    """

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: Counter[str] = Counter()
        self.real = socket.getaddrinfo
        self.lock = threading.Lock()

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        name = host.decode("ascii") if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        with self.lock:
            answers = self.answers[name]
            address = answers[min(self.lookups[name], len(answers) - 1)]
            self.lookups[name] += 1
        return self.real(address, port, *args, **kwargs)
