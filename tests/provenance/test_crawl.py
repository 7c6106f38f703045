"""The crawler against real HTTP servers on 127.0.0.1, with an engine that records its calls."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest
from helpers import jpeg_bytes, photo
from provenance.miniweb import MiniWeb, RebindingResolver, twin_sites

from picorigin import _fetch
from picorigin._errors import CorruptImage
from picorigin._provenance.crawl import crawl


class RecordingEngine:
    """Stands in for Engine: the crawler only calls add, mark_removed and checkpoint."""

    def __init__(self, path):
        self.path = path
        self.settings = {"max_bytes": 200_000}
        self.added: list[tuple[str, str | None, dict | None]] = []
        self.removed: list[tuple[str, str]] = []
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, data, *, uri=None, sighting=None):
        if not data.startswith(b"\xff\xd8"):
            raise CorruptImage("not a JPEG", source=uri)
        with self._lock:
            self.added.append((uri, (sighting or {}).get("page_url"), sighting))
            return self._ids.setdefault(hashlib.sha256(data).hexdigest(), len(self._ids) + 1)

    def mark_removed(self, uri, page_url=""):
        self.removed.append((uri, page_url))
        return True

    def checkpoint(self):
        pass

    def pages_of(self, uri):
        return sorted(page for image, page, _ in self.added if image == uri)


@pytest.fixture(scope="module")
def images():
    return {name: jpeg_bytes(photo(name).resize((160, 120)), 85)
            for name in ("coffee", "chelsea", "rocket", "astronaut")}


@pytest.fixture
def engine(tmp_path):
    return RecordingEngine(tmp_path)


@pytest.fixture
def site():
    with MiniWeb() as web:
        yield web


@pytest.fixture
def other_site():
    with MiniWeb() as web:
        yield web


def fast(**options):
    return {"rate": 500.0, "concurrency": 4, "allow_private": True, "timeout": 10.0, **options}


def test_robots_txt_is_obeyed_for_pages_and_images(engine, site, images):
    site.robots("User-agent: *\nDisallow: /private/\n\nUser-agent: otherbot\nDisallow: /\n")
    site.page("/", '<a href="/private/secret.html">s</a><a href="/open.html">o</a>'
                   '<img src="/private/hidden.jpg"><img src="/img/coffee.jpg">')
    site.page("/open.html", '<a href="/redirect">r</a><img src="/img/chelsea.jpg">')
    site.redirect("/redirect", "/private/secret.html")
    site.page("/private/secret.html", '<img src="/img/rocket.jpg">')
    site.file("/img/coffee.jpg", images["coffee"])
    site.file("/img/chelsea.jpg", images["chelsea"])
    site.file("/private/hidden.jpg", images["astronaut"])

    report = crawl(engine, [site.url("/")], **fast())

    assert site.requests["/private/secret.html"] == 0
    assert site.requests["/private/hidden.jpg"] == 0
    assert site.requests["/robots.txt"] == 1
    assert sorted(report.blocked) == sorted(
        [site.url("/private/secret.html"), site.url("/private/hidden.jpg"),
         site.url("/private/secret.html")]  # once linked, once as a redirect target
    )
    assert sorted(uri for uri, _, _ in engine.added) == [
        site.url("/img/chelsea.jpg"), site.url("/img/coffee.jpg")]
    assert (report.pages, report.images, len(report.image_ids)) == (2, 2, 2)
    assert site.agents == {"picorigin/0.1 (+self-hosted reverse image search)"}


def test_robots_txt_5xx_forbids_the_site_and_4xx_allows_it(engine, site, images):
    site.routes["/robots.txt"] = (503, "text/plain", b"down", {})
    site.page("/", '<img src="/a.jpg">')
    report = crawl(engine, [site.url("/")], **fast())
    assert report.pages == 0 and report.blocked == [site.url("/")]
    assert site.requests["/"] == 0

    site.routes["/robots.txt"] = (404, "text/plain", b"none", {})
    site.file("/a.jpg", images["coffee"])
    report = crawl(engine, [site.url("/")], **fast())
    assert report.pages == 1 and report.images == 1


def test_sightings_carry_the_page_signals(engine, site, images):
    site.page("/", """<html><head><title>Cats</title><meta name="author" content="Jane">
        <meta property="article:published_time" content="2019-05-01"></head><body>
        <figure><img src="/c.jpg" alt="cat"><figcaption>Our cat</figcaption></figure>
        <a href="/c.jpg">full size</a></body></html>""")
    site.file("/c.jpg", images["chelsea"])
    crawl(engine, [site.url("/")], **fast())
    assert engine.added == [(site.url("/c.jpg"), site.url("/"), {
        "page_url": site.url("/"), "page_title": "Cats", "alt": "cat", "caption": "Our cat",
        "author": "Jane", "author_source": "page:meta author", "published": "2019-05-01"})]


def test_depth_and_max_pages_bound_the_crawl(engine, site):
    for n in range(5):
        site.page(f"/p{n}.html", f'<a href="/p{n + 1}.html">next</a>')
    report = crawl(engine, [site.url("/p0.html")], **fast(depth=2))
    assert report.pages == 3
    assert site.requests["/p3.html"] == 0

    report = crawl(engine, [site.url("/p0.html")], **fast(depth=10, max_pages=2,
                                                         state_path=engine.path / "other.sqlite"))
    assert report.pages == 2


def test_same_site_keeps_to_the_seeds_sites_unless_allowed(engine, site, other_site, images):
    site.page("/", f'<a href="{other_site.url("/b.html")}">b</a>'
                   f'<img src="{other_site.url("/hosted.jpg")}">')
    other_site.page("/b.html", '<img src="/b.jpg">')
    other_site.file("/b.jpg", images["rocket"])
    other_site.file("/hosted.jpg", images["coffee"])

    crawl(engine, [site.url("/")], **fast())
    assert other_site.requests["/b.html"] == 0
    # Images are fetched wherever the page takes them from.
    assert engine.pages_of(other_site.url("/hosted.jpg")) == [site.url("/")]

    crawl(engine, [site.url("/")], **fast(allow=[other_site.netloc]))
    assert engine.pages_of(other_site.url("/b.jpg")) == [other_site.url("/b.html")]

    engine.added.clear()
    crawl(engine, [site.url("/")], **fast(same_site=False))
    assert engine.pages_of(other_site.url("/b.jpg")) == [other_site.url("/b.html")]


def test_an_image_on_several_pages_is_fetched_once_and_seen_on_each(engine, site, images):
    site.page("/", '<img src="/logo.jpg"><a href="/a.html">a</a><a href="/b.html">b</a>')
    site.page("/a.html", '<img src="/logo.jpg">')
    site.page("/b.html", '<img src="/logo.jpg">')
    site.file("/logo.jpg", images["astronaut"])
    report = crawl(engine, [site.url("/")], **fast(concurrency=1))
    assert site.requests["/logo.jpg"] == 1
    assert engine.pages_of(site.url("/logo.jpg")) == sorted(
        [site.url("/"), site.url("/a.html"), site.url("/b.html")])
    assert (report.images, len(report.image_ids)) == (3, 1)


def test_a_recrawl_marks_images_gone_from_a_page_and_pages_gone(engine, site, images):
    site.page("/", '<img src="/a.jpg"><img src="/b.jpg"><a href="/old.html">old</a>')
    site.page("/old.html", '<img src="/c.jpg">')
    for name, key in (("a", "coffee"), ("b", "chelsea"), ("c", "rocket")):
        site.file(f"/{name}.jpg", images[key])
    first = crawl(engine, [site.url("/")], **fast())
    assert first.removed == 0 and not first.resumed and first.images == 3

    site.page("/", '<img src="/a.jpg"><a href="/old.html">old</a>')
    del site.routes["/old.html"]
    engine.added.clear()
    second = crawl(engine, [site.url("/")], **fast())
    assert not second.resumed
    assert sorted(engine.removed) == [(site.url("/b.jpg"), site.url("/")),
                                      (site.url("/c.jpg"), site.url("/old.html"))]
    assert second.removed == 2
    assert [uri for uri, _, _ in engine.added] == [site.url("/a.jpg")]   # last_seen refreshed


class Stop(Exception):
    pass


def test_an_interrupted_crawl_resumes_where_it_stopped(engine, site):
    for n in range(6):
        site.page(f"/p{n}.html", "".join(f'<a href="/p{m}.html">p</a>' for m in range(6)))
    visited = []

    def stop_after_two(report):
        visited.append(report.pages)
        if report.pages == 2:
            raise Stop

    with pytest.raises(Stop):
        crawl(engine, [site.url("/p0.html")], **fast(concurrency=1, progress=stop_after_two))
    report = crawl(engine, [site.url("/p0.html")], **fast(concurrency=1))
    assert report.resumed
    assert report.pages == 4
    assert all(site.requests[f"/p{n}.html"] == 1 for n in range(6))
    again = crawl(engine, [site.url("/p0.html")], **fast(concurrency=1))
    assert not again.resumed and again.pages == 6


def test_bounded_bytes_redirects_and_bad_images(engine, site, images):
    engine.settings["fetch_max_redirects"] = 3     # the engine's settings bound the crawl too
    site.page("/", '<img src="/big.jpg"><img src="/loop"><img src="/text.jpg"><img src="/ok.jpg">'
                   '<img src="/missing.jpg">')
    site.file("/big.jpg", b"\xff\xd8" + b"0" * 300_000)
    site.redirect("/loop", "/loop")
    site.file("/text.jpg", b"not an image", "text/plain")
    site.redirect("/ok.jpg", "/real.jpg", 301)
    site.file("/real.jpg", images["coffee"])
    report = crawl(engine, [site.url("/")], **fast())
    reasons = dict(report.failed)
    assert "larger than 200000 bytes" in reasons[site.url("/big.jpg")]
    assert "more than 3 redirects" in reasons[site.url("/loop")]
    assert "not a JPEG" in reasons[site.url("/text.jpg")]
    assert "HTTP 404" in reasons[site.url("/missing.jpg")]
    assert site.requests["/loop"] == 4
    assert [uri for uri, _, _ in engine.added] == [site.url("/ok.jpg")]


def test_a_long_page_is_read_only_up_to_its_byte_cap(engine, site, images):
    filler = "<p>" + "x" * 10_000 + "</p>"
    site.page("/", '<img src="/early.jpg">' + filler * 20 + '<img src="/late.jpg">')
    site.file("/early.jpg", images["coffee"])
    site.file("/late.jpg", images["rocket"])
    crawl(engine, [site.url("/")], **fast(max_page_bytes=50_000))
    assert [uri for uri, _, _ in engine.added] == [site.url("/early.jpg")]
    assert site.requests["/late.jpg"] == 0


def test_private_addresses_are_refused_unless_allowed(engine, site, images):
    site.page("/", '<img src="/a.jpg">')
    site.file("/a.jpg", images["coffee"])
    report = crawl(engine, [site.url("/")], rate=500.0)
    assert report.pages == 0 and not engine.added
    assert site.connections == 0
    assert report.failed == [(site.url("/"), "http://127.0.0.1:%d/: 127.0.0.1 is not a public "
                              "address (set allow_private_urls to fetch from it)" % site.port)]
    assert report.blocked == []

    # The engine's allow_private_urls setting allows them, as it does for every other fetch.
    engine.settings["allow_private_urls"] = True
    report = crawl(engine, [site.url("/")], rate=500.0)
    assert (report.pages, report.images) == (1, 1)


def test_a_rebinding_host_name_never_reaches_a_private_address(engine, images, monkeypatch):
    # "outside" (127.0.0.2, counted as public here) and "inside" (127.0.0.1) share one port;
    # rebind.test resolves to outside at the first lookup and to inside at every later one.
    monkeypatch.setattr(_fetch, "_is_public_ip", lambda address: str(address) == "127.0.0.2")
    resolver = RebindingResolver({"rebind.test": ["127.0.0.2", "127.0.0.1"]})
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with twin_sites() as (outside, inside):
        for web in (outside, inside):
            # "Connection: close": the page after robots.txt needs a second connection.
            web.routes["/robots.txt"] = (200, "text/plain", b"User-agent: *\nAllow: /\n",
                                         {"Connection": "close"})
            web.page("/", '<img src="/a.jpg">')
            web.file("/a.jpg", images["coffee"])
        seed = outside.url("/", host="rebind.test")
        report = crawl(engine, [seed], rate=500.0)
    assert inside.connections == 0 and not inside.requests
    assert outside.requests == {"/robots.txt": 1}
    assert resolver.lookups["rebind.test"] == 2
    assert report.failed == [(seed, f"{seed}: rebind.test resolves to a private address "
                                    "(set allow_private_urls to fetch from it)")]


def test_bad_arguments_are_refused(engine):
    with pytest.raises(ValueError, match="seed"):
        crawl(engine, ["ftp://example.org/", "not a url"])
    with pytest.raises(ValueError, match="rate"):
        crawl(engine, ["https://example.org/"], rate=0)


def test_page_encodings_from_the_header_or_a_meta_charset(engine, site, images):
    site.routes["/latin.html"] = (200, "text/html; charset=iso-8859-1",
                                  "<title>Caf\xe9</title><img src='/a.jpg'>".encode("latin-1"), {})
    site.routes["/meta.html"] = (200, "text/html",
                                 '<meta charset="windows-1252"><title>\x93Quoted\x94</title>'
                                 "<img src='/b.jpg'>".encode("latin-1"), {})
    site.file("/a.jpg", images["coffee"])
    site.file("/b.jpg", images["rocket"])
    crawl(engine, [site.url("/latin.html"), site.url("/meta.html")], **fast())
    titles = {uri: sighting["page_title"] for uri, _, sighting in engine.added}
    assert titles == {site.url("/a.jpg"): "Café", site.url("/b.jpg"): "\u201cQuoted\u201d"}
