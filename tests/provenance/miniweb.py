"""A real HTTP server on 127.0.0.1 serving a dictionary of pages and images (tests, bench).

Importable as ``provenance.miniweb`` (``tests`` is on the pytest path; bench adds it).
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MiniWeb:
    """One site: ``routes`` maps a path (with query) to ``(status, content_type, body, headers)``.

    ``requests`` counts the GETs each path received; ``agents`` the User-Agents seen.
    Use as a context manager; ``url(path)`` gives the absolute URL.
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes, dict[str, str]]] = {}
        self.requests: Counter[str] = Counter()
        self.agents: set[str] = set()
        web = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                web.requests[self.path] += 1
                web.agents.add(self.headers.get("User-Agent", ""))
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

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.netloc = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/") -> str:
        return f"http://{self.netloc}{path}"

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
