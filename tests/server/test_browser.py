"""The web page in headless Chromium (Debian's ``chromium``), driven by Playwright.

Screenshots of each page, at a laptop (1280 px) and a phone (390 px) width, are written to
``tests/server/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from chromium import DESKTOP, PHONE, needs_chromium
from helpers import jpeg_bytes, photo
from PIL import ImageOps

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = needs_chromium


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport=DESKTOP, base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_default_timeout(30_000)
    yield page
    context.close()
    # Expected failures (a 4xx the page shows) log "Failed to load resource"; anything else,
    # a script error or a CSP violation, is a bug.
    assert [e for e in errors if "Failed to load resource" not in e] == []


def screenshots(page, name: str) -> None:
    """Save ``name``-desktop.png and ``name``-phone.png (full page) under artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=ARTIFACTS / f"{name}-desktop.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(100)  # let the layout settle at the new width
    page.screenshot(path=ARTIFACTS / f"{name}-phone.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def upload(page, data: bytes, name: str = "query.jpg", mime: str = "image/jpeg") -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def wait_for_results(page) -> None:
    page.wait_for_selector("#results .summary")


def first_card(page):
    return page.locator("#results .card").first


_FILE_JS = """([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, {type}));
  return data;
}"""


def paste(page, data: bytes, name: str = "image.png", mime: str = "image/png") -> None:
    """Fire a real ``paste`` ClipboardEvent carrying the image as a File, as a browser does."""
    transfer = page.evaluate_handle(_FILE_JS, [base64.b64encode(data).decode(), name, mime])
    page.evaluate("(data) => document.dispatchEvent(new ClipboardEvent('paste', "
                  "{clipboardData: data, bubbles: true, cancelable: true}))", transfer)


def drop(page, data: bytes, name: str = "dropped.jpg", mime: str = "image/jpeg") -> None:
    transfer = page.evaluate_handle(_FILE_JS, [base64.b64encode(data).decode(), name, mime])
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def png_bytes(image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_upload_a_copy_shows_the_larger_original_first(page, server):
    page.goto("/")
    upload(page, jpeg_bytes(photo("astronaut").resize((240, 240)), quality=55), "astronaut-small.jpg")
    wait_for_results(page)
    card = first_card(page)
    assert card.get_attribute("data-id") == str(server.photos["astronaut"])
    assert card.get_attribute("data-kind") == "near_duplicate"
    badges = card.locator(".badge").all_inner_texts()
    assert "near-duplicate" in badges and "larger" in badges
    assert "512 × 512" in card.locator(".facts").inner_text()
    assert page.locator("#no-copies").count() == 0
    assert page.locator("#preview-img").evaluate("img => img.naturalWidth") == 240
    assert page.locator(".group[data-kind=near_duplicate] h2").inner_text().startswith("Near-duplicates")
    # The thumbnail really loaded (not a broken image).
    assert card.locator("img").evaluate("img => img.complete && img.naturalWidth > 0")
    screenshots(page, "search-near-duplicate")


def test_paste_from_the_clipboard(page, server):
    page.goto("/")
    paste(page, png_bytes(photo("coffee").resize((300, 200))))
    wait_for_results(page)
    card = first_card(page)
    assert card.get_attribute("data-id") == str(server.photos["coffee"])
    assert "larger" in card.locator(".badge").all_inner_texts()
    assert page.locator("#preview-name").inner_text() == "image.png"


def test_drop_a_mirrored_copy(page, server):
    page.goto("/")
    drop(page, jpeg_bytes(ImageOps.mirror(photo("chelsea"))))
    wait_for_results(page)
    card = first_card(page)
    assert card.get_attribute("data-id") == str(server.photos["chelsea"])
    assert "mirrored" in card.locator(".badge").all_inner_texts()


def test_exact_copy_by_url(page, server, image_host):
    page.goto("/")
    page.fill("#url", f"{image_host}/rocket.jpg")
    page.click("#url-form button")
    wait_for_results(page)
    card = first_card(page)
    assert card.get_attribute("data-id") == str(server.photos["rocket"])
    badges = card.locator(".badge").all_inner_texts()
    assert "exact copy" in badges and "larger" not in badges


def test_unknown_photo_finds_no_copies(page):
    page.goto("/")
    upload(page, jpeg_bytes(photo("camera")), "camera.jpg")
    wait_for_results(page)
    notice = page.locator("#no-copies")
    assert notice.is_visible()
    assert "No copies found" in notice.inner_text()
    assert page.locator("#results .card[data-kind=exact], #results .card[data-kind=near_duplicate],"
                        " #results .card[data-kind=partial]").count() == 0
    # The deep stage names what the photo shows (skimage's camera man: a tripod).
    assert "Best guess for this image: tripod" in page.locator("#best-guess").inner_text()
    screenshots(page, "search-no-copies")


def test_a_bad_upload_shows_the_servers_message(page):
    page.goto("/")
    upload(page, b"this is not an image", "notes.jpg")
    page.wait_for_selector("#status.error")
    assert "not an image" in page.locator("#status").inner_text()
    assert page.locator("#results .card").count() == 0


def _box_fraction(card, which: int) -> list[float]:
    """The ``which``-th box of a card as [x0, y0, x1, y1] fractions of its image's displayed size."""
    # Measure only once the image has loaded: before that it has no size (NaN fractions).
    card.locator(".boxed img").nth(which).evaluate(
        "img => img.complete && img.naturalWidth > 0 ? true :"
        " new Promise((ok, fail) => { img.onload = () => ok(true); img.onerror = fail; })"
    )
    return card.locator(".boxed").nth(which).evaluate("""frame => {
        const img = frame.querySelector('img').getBoundingClientRect();
        const box = frame.querySelector('.box').getBoundingClientRect();
        return [(box.left - img.left) / img.width, (box.top - img.top) / img.height,
                (box.right - img.left) / img.width, (box.bottom - img.top) / img.height];
    }""")


def test_partial_match_draws_boxes_on_both_images(page, server):
    """The page draws a partial match's boxes where the API says, at any displayed size.

    The engine answers through the real server for everything else (thumbnails, the page); only
    the search answer is a fixed partial match, so this runs whether or not a partial-match
    stage is installed. ``test_real_crop_draws_a_box`` checks the engine's own answer.
    """
    astronaut = server.photos["astronaut"]
    answer = {
        "query": "<bytes>", "width": 256, "height": 192, "stages": ["local"], "elapsed_ms": 12.5,
        "matches": [{
            "id": astronaut, "uri": "https://example.org/photos/astronaut.jpg",
            "uris": ["https://example.org/photos/astronaut.jpg"], "kind": "partial", "score": 0.81,
            "orientation": "identity", "distance": None, "width": 512, "height": 512,
            "format": "JPEG", "larger_than_query": True, "metadata": {},
            "creator": {"name": "NASA", "source": "IPTC"},
            "query_box": [0, 0, 256, 192], "match_box": [128, 64, 384, 256],
            "pages": [{"url": "https://example.org/gallery", "title": "Space gallery"},
                      "https://example.net/blog/post"],
        }],
    }
    page.route("**/api/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(answer)))
    crop = photo("astronaut").crop((128, 64, 384, 256))
    page.goto("/")
    upload(page, jpeg_bytes(crop), "crop.jpg")
    wait_for_results(page)
    card = page.locator(".card[data-kind=partial]")
    assert card.locator(".box").count() == 2
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        assert _box_fraction(card, 0) == pytest.approx([0, 0, 1, 1], abs=0.02)
        assert _box_fraction(card, 1) == pytest.approx([0.25, 0.125, 0.75, 0.5], abs=0.02)
    page.set_viewport_size(DESKTOP)
    assert "by NASA" in card.locator(".creator").inner_text()
    links = card.locator(".pages a")
    assert links.all_inner_texts() == ["Space gallery", "example.net › post"]
    assert links.first.get_attribute("href") == "https://example.org/gallery"
    assert page.locator("#no-copies").count() == 0
    screenshots(page, "search-partial")


def test_no_copies_but_similar_images(page, server):
    """With only "similar" matches the page says so, then lists them (answer fixed, as above)."""
    coffee = server.photos["coffee"]
    answer = {
        "query": "<bytes>", "width": 512, "height": 512, "stages": ["deep"], "elapsed_ms": 30.0,
        "matches": [{
            "id": coffee, "uri": "/photos/coffee.jpg", "uris": ["/photos/coffee.jpg"],
            "kind": "similar", "score": 0.42, "orientation": None, "distance": None,
            "width": 600, "height": 400, "format": "JPEG", "larger_than_query": False,
            "creator": "Rachel Michetti", "metadata": {},
        }],
    }
    page.route("**/api/search", lambda route: route.fulfill(
        status=200, content_type="application/json", body=json.dumps(answer)))
    page.goto("/")
    upload(page, jpeg_bytes(photo("camera")), "camera.jpg")
    wait_for_results(page)
    assert "No copies found" in page.locator("#no-copies").inner_text()
    card = page.locator(".group[data-kind=similar] .card")
    assert card.get_attribute("data-id") == str(coffee)
    assert card.locator(".badge").all_inner_texts() == ["similar"]
    assert "by Rachel Michetti" in card.locator(".creator").inner_text()
    # The no-copies notice comes before the similar images.
    order = page.locator("#results > *").evaluate_all("nodes => nodes.map(n => n.id || n.className)")
    assert order.index("no-copies") < order.index("group")
    screenshots(page, "search-similar-only")


def test_real_crop_draws_a_box(page, server):
    crop = photo("astronaut").crop((100, 40, 400, 300))
    query = jpeg_bytes(crop)
    with server.client() as client:
        found = client.post("/api/search", files={"file": ("crop.jpg", query)}).json()
    partial = [m for m in found["matches"] if m["kind"] == "partial" and m.get("match_box")]
    if not partial:
        pytest.skip(f"the engine found no partial match (stages: {found['stages']}): "
                    "no partial-match stage is installed yet")
    page.goto("/")
    paste(page, png_bytes(crop))
    wait_for_results(page)
    card = page.locator(f".card[data-kind=partial][data-id='{partial[0]['id']}']")
    assert card.locator(".box").count() >= 1
    screenshots(page, "search-real-crop")


def test_collection_add_then_remove(page, server):
    page.goto("/collection")
    total = server.engine.stats()["images"]
    assert page.locator(".tile .big").first.inner_text() == f"{total:,}"
    page.set_input_files("#add-file", files=[{"name": "moon.jpg", "mimeType": "image/jpeg",
                                             "buffer": jpeg_bytes(photo("moon"))}])
    page.fill("#add-creator", "Lunar Orbiter")
    page.fill("#add-title", "The Moon")
    page.fill("#api-key", "wrong")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#status.error")
    assert "wrong API key" in page.locator("#status").inner_text()
    page.fill("#api-key", server.api_key)
    page.set_input_files("#add-file", files=[{"name": "moon.jpg", "mimeType": "image/jpeg",
                                             "buffer": jpeg_bytes(photo("moon"))}])
    page.fill("#add-creator", "Lunar Orbiter")
    page.click("#add-form button[type=submit]")
    page.wait_for_selector("#status.ok")
    link = page.locator("#status a")
    image_id = int(re.search(r"\d+", link.inner_text()).group())
    assert server.engine.info(image_id)["creator"]["name"] == "Lunar Orbiter"

    page.goto("/collection")
    assert page.locator(".tile .big").first.inner_text() == f"{total + 1:,}"
    screenshots(page, "collection")

    page.goto(f"/images/{image_id}")
    assert "Lunar Orbiter" in page.locator(".facts").inner_text()
    screenshots(page, "image-record")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")  # the key typed on the collection page is kept for the session
    page.wait_for_url("**/collection")
    assert server.engine.stats()["images"] == total


def test_collection_filter_and_image_page(page, server):
    page.goto("/collection?q=chelsea")
    cards = page.locator(".grid .mini")
    assert cards.count() == 1
    cards.first.click()
    page.wait_for_url(f"**/images/{server.photos['chelsea']}")
    assert "451 × 300" in page.locator(".facts").inner_text()
    assert page.locator(".record-image img").evaluate("img => img.complete && img.naturalWidth > 0")
