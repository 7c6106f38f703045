"""The provenance workbench in headless Chromium: sort and filter controls, the timeline, the
Compare view. Against ``history_server`` (one photo, four edited copies seen on pages of two
hosts from 2019 to 2024). Screenshots at 1280 and 390 px go to ``tests/server/artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from chromium import DESKTOP, PHONE, needs_chromium

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = needs_chromium


@pytest.fixture
def page(browser, history_server):
    context = browser.new_context(viewport=DESKTOP, base_url=history_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.set_default_timeout(30_000)
    page.failed = failed
    yield page
    context.close()
    # No script error and no CSP violation; a failed load only where the test expects one.
    expected = getattr(page, "expect_failed", 0)
    assert len(failed) == expected, failed
    assert [e for e in errors if "Failed to load resource" not in e] == []
    assert len(errors) == expected, errors


def screenshots(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.wait_for_timeout(150)  # the layout and the timeline redraw at the new width
        page.screenshot(path=ARTIFACTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def search_query(page, server) -> None:
    page.goto("/")
    page.set_input_files("#file", files=[{"name": "query.jpg", "mimeType": "image/jpeg",
                                          "buffer": server.query}])
    page.wait_for_selector("#results .summary")


def card_order(page, server) -> list[str]:
    names = {str(v): k for k, v in server.photos.items()}
    return [names[i] for i in page.locator("#results .card").evaluate_all(
        "cards => cards.map(c => c.dataset.id)")]


def choose(page, **controls) -> None:
    """Set controls of the sort/filter form and wait for the new results."""
    with page.expect_response(lambda r: r.url.endswith("/api/search")):
        for name, value in controls.items():
            if name == "sort":
                page.select_option("#sort", value)
            elif name == "domain":
                page.fill("#domain", value)
                page.press("#domain", "Enter")
            elif name == "larger_only":
                page.set_checked("#larger-only", value)
            else:
                page.set_checked(f"#arrange input[value={name}]", value)
    page.wait_for_selector("#results .summary")


def test_each_sort_orders_as_named(page, history_server):
    search_query(page, history_server)
    assert sorted(card_order(page, history_server)) == sorted(history_server.photos)
    best = card_order(page, history_server)
    choose(page, sort="oldest")
    assert card_order(page, history_server) == ["original", "crop", "edited", "recoloured", "upscale"]
    choose(page, sort="newest")
    assert card_order(page, history_server) == ["upscale", "recoloured", "edited", "crop", "original"]
    choose(page, sort="biggest")
    assert card_order(page, history_server) == ["original", "recoloured", "edited", "crop", "upscale"]
    last = page.locator("#results .card").last
    assert "upscaled" in last.locator(".badge").all_inner_texts()
    assert "larger" not in last.locator(".badge").all_inner_texts()
    choose(page, sort="changed")
    changed = card_order(page, history_server)
    scores = [int(t.split("score ")[1].split("%")[0])
              for t in page.locator("#results .card .facts").all_inner_texts()]
    assert scores == sorted(scores) and changed != best
    screenshots(page, "workbench-sorted")


def test_filters_cut_the_list(page, history_server):
    search_query(page, history_server)
    assert len(card_order(page, history_server)) == 5
    choose(page, domain="localhost/news")
    assert sorted(card_order(page, history_server)) == ["crop", "edited"]
    choose(page, domain="")
    choose(page, larger_only=True)
    assert sorted(card_order(page, history_server)) == ["edited", "original", "recoloured"]
    choose(page, larger_only=False)
    choose(page, partial=False)
    assert "crop" not in card_order(page, history_server)
    assert len(card_order(page, history_server)) == 4


def test_timeline_draws_one_mark_per_sighting(page, history_server):
    search_query(page, history_server)
    sightings = history_server.sightings
    assert page.locator("#timeline svg .tl-mark").count() == sightings == 6
    assert page.locator("#timeline tbody tr").count() == sightings
    original = str(history_server.photos["original"])
    marked = page.locator("#timeline .tl-row.original")
    assert marked.get_attribute("data-image-id") == original
    assert marked.locator(".tl-mark").count() == 2
    assert "earliest sighting" in page.locator("#timeline .evidence").inner_text()
    # Marks lie left to right in the order of their first sighting.
    xs = page.locator("#timeline .tl-first").evaluate_all("cs => cs.map(c => +c.getAttribute('cx'))")
    assert len(xs) == 6 and min(xs) >= 0
    first_row = page.locator("#timeline .tl-row").first
    assert first_row.get_attribute("data-image-id") == original  # seen first, in 2019
    screenshots(page, "workbench-timeline")
    # Still one mark per sighting once redrawn at a phone's width.
    page.set_viewport_size(PHONE)
    page.wait_for_timeout(150)
    assert page.locator("#timeline svg .tl-mark").count() == 6
    width = page.locator("#timeline svg").evaluate("s => s.getBoundingClientRect().width")
    assert width <= 390


def test_compare_opens_from_a_result_and_boxes_the_sticker(page, history_server):
    search_query(page, history_server)
    edited = page.locator(f"#results .card[data-id='{history_server.photos['edited']}']")
    edited.locator("a.compare-button").click()
    page.wait_for_url("**/compare?q=*")
    page.wait_for_selector("#compare-facts dt")
    images = page.locator("#stage img")
    assert images.count() == 2
    page.wait_for_function("() => [...document.querySelectorAll('#stage img, #side-by-side img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator("#side-by-side img").count() == 2
    assert page.locator("#stage .box.changed").count() >= 1
    assert page.locator("#regions li.region").count() >= 1
    assert "Kind" in page.locator("#compare-facts").inner_text()
    # Flip, by button and by key; slider and difference modes.
    layer = page.locator("#layer-b")
    assert layer.evaluate("e => getComputedStyle(e).opacity") == "0"
    page.click("#flip")
    assert layer.evaluate("e => getComputedStyle(e).opacity") == "1"
    page.keyboard.press("f")
    assert layer.evaluate("e => getComputedStyle(e).opacity") == "0"
    page.check("input[name=mode][value=slider]")
    page.fill("#range", "30")
    assert "30%" in layer.evaluate("e => e.style.clipPath")
    page.check("input[name=mode][value=difference]")
    assert layer.evaluate("e => getComputedStyle(e).mixBlendMode") == "difference"
    share = page.locator("#share").get_attribute("href")
    assert "/compare?q=" in share and f"b={history_server.photos['edited']}" in share
    screenshots(page, "workbench-compare")


def test_compare_of_the_recoloured_copy_shows_a_colour_shift(page, history_server):
    search_query(page, history_server)
    recoloured = page.locator(f"#results .card[data-id='{history_server.photos['recoloured']}']")
    href = recoloured.locator("a.compare-button").get_attribute("href")
    page.goto(href)  # the link alone reopens it: the server keeps the upload
    page.wait_for_selector("#colour-shift")
    assert page.locator("#colour-shift").inner_text() == "yes"
    assert "R +" in page.locator("#compare-facts").inner_text()  # the match is redder
    assert "its file" in page.locator("#compare-facts").inner_text()


def test_controls_are_reachable_by_keyboard(page, history_server):
    search_query(page, history_server)
    reached = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.add(page.evaluate("() => document.activeElement.id || "
                                  "document.activeElement.className || document.activeElement.value"))
    assert {"sort", "domain", "larger-only"} <= reached
    assert "button compare-button" in reached
    # Sorting from the keyboard alone.
    page.focus("#sort")
    with page.expect_response(lambda r: r.url.endswith("/api/search")):
        page.keyboard.press("ArrowDown")  # best -> changed
    page.wait_for_selector("#results .group.sorted[data-sort=changed]")


def test_compare_of_unrelated_images_says_nothing_to_align(page, history_server):
    from helpers import jpeg_bytes, photo

    with history_server.client() as client:
        answer = client.post("/api/search", files={"file": ("rocket.jpg", jpeg_bytes(photo("rocket")))})
    upload = answer.json()["upload"]
    page.goto(f"/compare?q={upload}&b={history_server.photos['original']}")
    page.wait_for_selector("#nothing-to-align")
    assert page.locator("#side-by-side img").count() == 2
    screenshots(page, "workbench-compare-unrelated")


def test_an_expired_upload_link_says_so(page, history_server):
    page.expect_failed = 1  # the API's 404, which the page shows
    page.goto(f"/compare?q={'0' * 24}&b={history_server.photos['original']}")
    page.wait_for_selector("#status.error")
    assert "no longer kept" in page.locator("#status").inner_text()
