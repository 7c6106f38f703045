"""Real servers for the API and browser tests: uvicorn on 127.0.0.1 over a real Engine.

``server`` is the main one: a collection of the sample photos, an API key, and private URLs
allowed so that URL searches can fetch from ``image_host`` on loopback. ``strict_server`` has the
default settings (private URLs refused) and no key.
"""

from __future__ import annotations

import functools
import http.server
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from helpers import serve_in_thread

from picorigin import Engine
from picorigin.server import create_app

API_KEY = "test-key-5d1f"


@dataclass
class LiveServer:
    url: str
    engine: Engine
    api_key: str | None
    photos: dict[str, int]  # sample photo name -> image id

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    @property
    def key_headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}


@pytest.fixture(scope="session")
def serve_app():
    """``serve_in_thread`` for tests that build their own app: ``with serve_app(app) as url``."""
    return serve_in_thread


def _index_photos(engine: Engine, photo_dir: Path) -> dict[str, int]:
    report = engine.index([str(photo_dir)], workers=1)
    assert report.ok, report.failed
    ids = {}
    for path in sorted(photo_dir.glob("*.jpg")):
        result = engine.search(str(path), k=1, kinds=["exact"])
        ids[path.stem] = result.matches[0].id
    return ids


@pytest.fixture(scope="session")
def server(photo_dir, tmp_path_factory) -> Iterator[LiveServer]:
    engine = Engine(tmp_path_factory.mktemp("server-data"), settings={"allow_private_urls": True})
    ids = _index_photos(engine, photo_dir)
    with engine, serve_in_thread(create_app(engine, api_key=API_KEY)) as url:
        yield LiveServer(url, engine, API_KEY, ids)


@pytest.fixture(scope="session")
def strict_server(photo_dir, tmp_path_factory) -> Iterator[LiveServer]:
    """Default settings: URLs resolving to private addresses are refused. No API key."""
    engine = Engine(tmp_path_factory.mktemp("strict-data"))
    ids = _index_photos(engine, photo_dir)
    with engine, serve_in_thread(create_app(engine)) as url:
        yield LiveServer(url, engine, None, ids)


@pytest.fixture(scope="session")
def small_cap_server(tmp_path_factory) -> Iterator[LiveServer]:
    """An empty collection whose server takes uploads of at most 1000 bytes."""
    engine = Engine(tmp_path_factory.mktemp("small-cap-data"))
    with engine, serve_in_thread(create_app(engine, max_upload_bytes=1000)) as url:
        yield LiveServer(url, engine, None, {})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture(scope="session")
def image_host(photo_dir) -> Iterator[str]:
    """A plain HTTP server on loopback serving ``photo_dir``: the "web" URL searches fetch from."""
    handler = functools.partial(_QuietHandler, directory=str(photo_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=10)


# -- a collection with a history: copies of one photo seen on three pages at different dates --

# name -> (page, first seen, last seen); the image itself lives beside its page.
SIGHTINGS = {
    "original": [("127.0.0.1", "/photos/chelsea.html", "2019-03-01T10:00:00+00:00",
                  "2024-01-01T00:00:00+00:00"),
                 ("localhost", "/blog/filters.html", "2022-03-01T00:00:00+00:00",
                  "2022-04-01T00:00:00+00:00")],
    "crop": [("localhost", "/news/story.html", "2020-06-01T00:00:00+00:00",
              "2023-05-01T00:00:00+00:00")],
    "edited": [("localhost", "/news/story.html", "2021-02-01T00:00:00+00:00",
                "2021-08-01T00:00:00+00:00")],
    "recoloured": [("localhost", "/blog/filters.html", "2021-09-15T00:00:00+00:00",
                    "2022-02-01T00:00:00+00:00")],
    "upscale": [("localhost", "/blog/filters.html", "2022-11-30T00:00:00+00:00",
                 "2022-12-30T00:00:00+00:00")],
}


def history_pictures() -> dict[str, "Image.Image"]:
    """The original photo and four edited copies of it, and the query: a smaller copy."""
    import io

    from helpers import jpeg_bytes, photo
    from PIL import Image, ImageDraw

    original = photo("chelsea")  # 451 x 300
    recoloured = Image.merge("RGB", [band.point(lambda v, f=f: min(255, int(v * f)))
                                     for band, f in zip(original.split(), (1.25, 0.9, 0.7))])
    edited = original.copy()
    ImageDraw.Draw(edited).rectangle((300, 190, 420, 270), fill=(250, 210, 40))  # a sticker
    query = original.resize((300, 200), Image.Resampling.LANCZOS)
    return {
        "original": original,
        "crop": original.crop((60, 30, 360, 250)),
        "edited": edited.resize((420, 279), Image.Resampling.LANCZOS),
        "recoloured": recoloured.resize((440, 293), Image.Resampling.LANCZOS),
        # Enlarged from the query's file (a lossless source would leave no trace to find).
        "upscale": Image.open(io.BytesIO(jpeg_bytes(query, 85))).convert("RGB").resize(
            (900, 600), Image.Resampling.BICUBIC),
        "query": query,
    }


@dataclass
class HistoryServer(LiveServer):
    query: bytes = b""  # the query: a smaller copy of the original
    sightings: int = 0  # (page, image) pairs recorded


@pytest.fixture(scope="session")
def history_server(tmp_path_factory) -> Iterator[HistoryServer]:
    """A collection with a history: an original, a crop, a sticker-edited, a recoloured and an
    upscaled copy, each served by a loopback web server (so compare reads its file) and seen on
    pages of two hosts (127.0.0.1 and localhost) at dates from 2019 to 2024."""
    from helpers import jpeg_bytes

    site = tmp_path_factory.mktemp("history-site")
    pictures = history_pictures()
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    engine = Engine(tmp_path_factory.mktemp("history-data"), settings={"allow_private_urls": True})
    ids = {}
    for name, sightings in SIGHTINGS.items():
        data = jpeg_bytes(pictures[name], quality=92)
        for host, page, first, last in sightings:
            folder = page.rsplit("/", 1)[0]
            (site / folder.strip("/")).mkdir(parents=True, exist_ok=True)
            (site / folder.strip("/") / f"{name}.jpg").write_bytes(data)
            uri = f"http://{host}:{port}{folder}/{name}.jpg"
            for seen in (first, last):
                ids[name] = engine.add(data, uri=uri, sighting={
                    "page_url": f"http://{host}:{port}{page}", "page_title": page, "seen": seen})
    try:
        with engine, serve_in_thread(create_app(engine)) as url:
            yield HistoryServer(url, engine, None, ids, query=jpeg_bytes(pictures["query"], 85),
                                sightings=sum(len(s) for s in SIGHTINGS.values()))
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's) under Playwright, one per test module."""
    from chromium import CHROMIUM, CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()
