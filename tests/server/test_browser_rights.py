"""Creator and licence with their sources on the web page, in headless Chromium.

A photo is crawled from a page on 127.0.0.1 whose JSON-LD names a creator other than the photo's
own EXIF Artist, with a licence and a licence page; the image's record shows both creators, the
licence and where each claim came from, and a search's result card shows the licence.
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chromium import needs_chromium
from helpers import jpeg_bytes, photo
from PIL import Image
from provenance.miniweb import MiniWeb

from picorigin import Engine
from picorigin._provenance.crawl import crawl
from picorigin.server import create_app

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def site_and_server(tmp_path_factory, serve_app):
    image = photo("rocket")
    exif = Image.Exif()
    exif[0x013B] = "Exif Person"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    markup = {"@context": "https://schema.org", "@type": "ImageObject",
              "contentUrl": "/img/rocket.jpg", "creator": {"@type": "Person",
                                                           "name": "Markup Person"},
              "license": CC_BY, "acquireLicensePage": "/licensing"}
    with MiniWeb() as site:
        site.file("/img/rocket.jpg", buffer.getvalue())
        site.page("/launch.html", f"""<html><head><title>Launch</title>
            <script type="application/ld+json">{json.dumps(markup)}</script></head>
            <body><img src="/img/rocket.jpg" alt="rocket"></body></html>""")
        engine = Engine(tmp_path_factory.mktemp("rights-web"),
                        settings={"allow_private_urls": True, "stages": ""})
        # In a thread of its own: Playwright's sync API may already run a loop in this one.
        with ThreadPoolExecutor(1) as pool:
            report = pool.submit(crawl, engine, [site.url("/launch.html")], depth=0,
                                 rate=500.0, allow_private=True).result()
        assert report.failed == [] and len(report.image_ids) == 1
        with engine, serve_app(create_app(engine)) as url:
            yield site, url, next(iter(report.image_ids)), image


@pytest.fixture
def page(browser, site_and_server):
    context = browser.new_context(viewport={"width": 1280, "height": 860},
                                  base_url=site_and_server[1])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(30_000)
    yield page
    context.close()
    # Chromium's own /favicon.ico request logs "Failed to load resource"; a script error or a
    # CSP violation is a bug.
    assert [e for e in errors if "Failed to load resource" not in e] == []


def test_the_image_record_shows_creator_and_licence_with_their_sources(page, site_and_server):
    site, _, image_id, _ = site_and_server
    page.goto(f"/images/{image_id}")
    facts = page.locator("dl.facts")
    creator = facts.locator("dt:text-is('Creator') + dd")
    assert creator.inner_text() == "Exif Person (exif:Artist)"
    licence = page.locator("#licence")
    assert licence.inner_text() == f"{CC_BY} (jsonld:license)"
    assert licence.locator("a").get_attribute("href") == CC_BY
    rows = page.locator("#rights tbody tr")
    table = [[cell.inner_text() for cell in row.locator("td").all()] for row in rows.all()]
    launch = site.url("/launch.html")
    assert table == [
        ["Creator", "Exif Person", "exif:Artist", "the file"],
        ["Creator", "Markup Person", "jsonld:creator", launch],
        ["License", CC_BY, "jsonld:license", launch],
        ["Acquire license page", site.url("/licensing"), "jsonld:acquireLicensePage", launch],
    ]
    # The disagreeing creators are marked, not hidden.
    assert page.locator("#rights .conflicts").inner_text().startswith(
        "Sources disagree on: Creator.")
    assert page.locator("#rights tr.conflict").count() == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "image-rights-desktop.png", full_page=True)


def test_a_result_card_shows_the_licence_and_the_creators_source(page, site_and_server):
    _, _, _, image = site_and_server
    copy = jpeg_bytes(image.resize((image.width // 2, image.height // 2)), 75)
    page.goto("/")
    page.set_input_files("#file", files=[{"name": "copy.jpg", "mimeType": "image/jpeg",
                                          "buffer": copy}])
    page.wait_for_selector("#results .summary")
    card = page.locator("#results .card").first
    assert card.locator(".creator").inner_text() == "by Exif Person (exif:Artist)"
    assert card.locator(".licence").inner_text() == f"licence {CC_BY} (jsonld:license)"
    assert card.locator(".licence a").get_attribute("href") == CC_BY
