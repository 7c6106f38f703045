"""robots.txt as RFC 9309 reads it, on a real mini web on 127.0.0.1."""

from __future__ import annotations

import pytest
from helpers import jpeg_bytes, photo
from provenance.miniweb import MiniWeb
from provenance.test_crawl import RecordingEngine, fast

from picorigin._provenance.crawl import crawl


@pytest.fixture(scope="module")
def jpeg():
    return jpeg_bytes(photo("coffee").resize((160, 120)), 85)


@pytest.fixture
def engine(tmp_path):
    return RecordingEngine(tmp_path)


@pytest.fixture
def site():
    with MiniWeb() as web:
        yield web


def test_a_dollar_anchored_wildcard_rule_stops_only_what_ends_there(engine, site, jpeg):
    site.robots("User-agent: *\nDisallow: /*.private.jpg$\n")
    site.page("/", '<a href="/a/b.private.jpg.html">page</a><a href="/a/b.private.jpg">file</a>'
                   '<img src="/a/b.private.jpg"><img src="/a/c.private.jpg?size=2">')
    site.page("/a/b.private.jpg.html", '<img src="/a/shown.jpg">')
    for path in ("/a/b.private.jpg", "/a/c.private.jpg?size=2", "/a/shown.jpg"):
        site.file(path, jpeg)

    report = crawl(engine, [site.url("/")], **fast())

    assert site.requests["/a/b.private.jpg"] == 0
    assert site.requests["/a/b.private.jpg.html"] == 1
    assert report.blocked == [site.url("/a/b.private.jpg")]
    # "$" anchors the whole path and query: with a query after it, the rule does not match.
    assert sorted(uri for uri, _, _ in engine.added) == [
        site.url("/a/c.private.jpg?size=2"), site.url("/a/shown.jpg")]


def test_the_longest_match_wins_and_allow_wins_a_tie(engine, site):
    site.robots(
        "User-agent: *\n"
        "Disallow: /gallery/\n"
        "Allow: /gallery/public/\n"           # longer than the Disallow above: wins
        "Disallow: /gallery/public/raw/\n"    # longer still: wins back
        "Disallow: /tie\n"
        "Allow: /tie\n"                       # as long as the Disallow: Allow wins
        "Disallow: /*?print=\n"
        "Allow: /*.html$\n"                   # shorter than /gallery/...: loses there
    )
    paths = ["/gallery/a.html", "/gallery/public/b.html", "/gallery/public/raw/c.html",
             "/tie.html", "/page.html?print=1", "/page.html"]
    site.page("/", "".join(f'<a href="{path}">x</a>' for path in paths))
    for path in paths:
        site.page(path, "")

    report = crawl(engine, [site.url("/")], **fast())

    fetched = sorted(path for path in paths if site.requests[path])
    assert fetched == ["/gallery/public/b.html", "/page.html", "/tie.html"]
    assert sorted(report.blocked) == sorted(site.url(path) for path in
                                            ["/gallery/a.html", "/gallery/public/raw/c.html",
                                             "/page.html?print=1"])


def test_the_group_naming_picorigin_beats_the_star_group(engine, site):
    site.robots("User-agent: otherbot\nAllow: /\n\n"
                "User-agent: *\nDisallow: /\n\n"
                "User-agent: PicOrigin\nDisallow: /not-for-us/\n")
    site.page("/", '<a href="/open.html">o</a><a href="/not-for-us/x.html">x</a>')
    site.page("/open.html", "")
    site.page("/not-for-us/x.html", "")
    report = crawl(engine, [site.url("/")], **fast())
    assert report.pages == 2
    assert report.blocked == [site.url("/not-for-us/x.html")]


def test_crawl_delay_and_rate_space_the_requests_to_a_host(engine, site):
    site.page("/", "".join(f'<a href="/p{n}.html">p</a>' for n in range(4)))
    for n in range(4):
        site.page(f"/p{n}.html", "")

    def span(times):  # from the first page on: robots.txt itself comes before any delay
        return times[-1][0] - times[1][0]

    site.robots("User-agent: *\nCrawl-delay: 0.2\n")
    crawl(engine, [site.url("/")], **fast(concurrency=4))
    assert len(site.times) == 6                            # robots.txt and five pages
    assert span(site.times) >= 4 * 0.2 * 0.9

    # Without a Crawl-delay, the crawl's own rate per host.
    site.robots("User-agent: *\nAllow: /\n")
    site.times.clear()
    crawl(engine, [site.url("/")], **fast(concurrency=4, rate=5.0,
                                          state_path=engine.path / "again.sqlite"))
    assert len(site.times) == 6
    assert span(site.times) >= 4 * 0.2 * 0.9
