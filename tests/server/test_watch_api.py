"""Watches and alerts over HTTP, and the Watches page in headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import jpeg_bytes, photo
from server.conftest import API_KEY
from watch.pictures import copies

from picorigin import Engine
from picorigin.server import create_app

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def live(tmp_path, serve_app):
    engine = Engine(tmp_path / "db", settings={"stages": "local", "measure_detail": False})
    with engine, serve_app(create_app(engine, api_key=API_KEY)) as url:
        yield url, engine


def test_watches_and_alerts_over_http(live):
    import httpx

    url, engine = live
    key = {"X-API-Key": API_KEY}
    coffee = jpeg_bytes(photo("coffee"), 92)
    with httpx.Client(base_url=url, timeout=60) as client:
        files = {"file": ("coffee.jpg", coffee, "image/jpeg")}
        assert client.post("/api/watches", files=files).status_code == 401
        answer = client.post("/api/watches", files=files, headers=key,
                             data={"label": "mine", "webhook": "http://127.0.0.1:9/hook",
                                   "kinds": "exact,partial"})
        assert answer.status_code == 201, answer.text
        added = answer.json()
        assert (added["pictures"], added["alerts"]) == (1, 0) and len(added["secret"]) == 64
        # A client's webhook is not the operator's: loopback stays refused (allow_private_urls
        # is off here).
        assert engine._catalog.watches()[0]["allow_private"] is False
        engine.add(copies()["coffee-crop"][1], uri="https://copies.example/crop.jpg")
        (alert,) = client.get("/api/alerts").json()["alerts"]
        assert (alert["kind"], alert["label"]) == ("partial", "mine")
        assert alert["picture"].startswith("upload:") and alert["picture"].endswith("/coffee.jpg")
        assert alert["boxes"]["copy"] and alert["image"]["uri"] == "https://copies.example/crop.jpg"
        (watch,) = client.get("/api/watches").json()["watches"]
        assert watch["pictures"][0]["alerts"]["new"] == 1 and "secret" not in watch
        thumb = client.get(f"/api/watches/pictures/{watch['pictures'][0]['id']}/thumbnail")
        assert thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
        assert client.post(f"/api/alerts/{alert['id']}/dismiss").status_code == 401
        dismissed = client.post(f"/api/alerts/{alert['id']}/dismiss", headers=key,
                                json={"reason": "licensed"}).json()
        assert (dismissed["status"], dismissed["reason"]) == ("dismissed", "licensed")
        one = client.get(f"/api/alerts/{alert['id']}").json()
        assert one["status"] == "dismissed" and len(one["deliveries"]) == 1
        assert client.get("/api/alerts", params={"status": "new"}).json()["alerts"] == []
        for bad in ({"since": "yesterday"}, {"status": "gone"}, {"limit": 0}):
            response = client.get("/api/alerts", params=bad)
            assert 400 <= response.status_code < 500 and "error" in response.json()
        assert client.post("/api/alerts/999/ack", headers=key).status_code == 404
        assert client.post("/api/watches", headers=key, json={"url": "ftp://x/"}).status_code == 400
        assert client.post("/api/watches", headers=key, files=files,
                           data={"kinds": "similar"}).status_code == 400
        assert client.delete(f"/api/watches/{watch['id']}", headers=key).status_code == 200
        assert client.delete(f"/api/watches/{watch['id']}", headers=key).status_code == 404
        assert client.get("/api/alerts").json()["alerts"] == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                    "(`make test` installs it)")
def test_the_watches_page_lists_alerts_and_dismissal_sticks(live):
    from playwright.sync_api import sync_playwright

    url, engine = live
    from picorigin._watch import watcher

    watching = watcher(engine)
    watching.add([jpeg_bytes(photo("chelsea"), 92)], label="cats")
    watching.add([jpeg_bytes(photo("astronaut"), 92)], label="space")
    engine.add(copies()["chelsea-pasted"][1], uri="https://copies.example/pasted.jpg",
               sighting={"page_url": "https://copies.example/post", "page_title": "A post",
                         "author": "Pat Reposter"})
    engine.add(copies()["astronaut-small"][1], uri="https://copies.example/small.jpg")
    assert watching.process() == 2
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(base_url=url)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.goto("/watches")
        assert page.locator(".watched-picture").count() == 2
        assert "1 new" in page.locator(".watched-picture").first.inner_text()
        alerts = page.locator("li.alert")
        assert alerts.count() == 2
        pasted = page.locator("li.alert", has_text="A post")
        assert pasted.locator("img").count() == 2  # both pictures side by side
        assert pasted.locator("svg.match-box rect").count() == 1
        assert "Pat Reposter" in pasted.inner_text() and "first seen" in pasted.inner_text()
        for image in page.locator("li.alert img").all():  # every thumbnail really loaded
            assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        page.fill("#api-key", API_KEY)
        page.once("dialog", lambda dialog: dialog.accept("licensed"))
        pasted.locator("button[data-action=dismiss]").click()
        page.wait_for_function(
            "() => document.querySelector('li.alert-dismissed') !== null")
        other = page.locator("li.alert", has_text="small.jpg")
        other.locator("button[data-action=ack]").click()
        page.wait_for_function("() => document.querySelector('li.alert-acknowledged') !== null")
        page.reload()
        assert "dismissed" in page.locator("li.alert", has_text="A post").inner_text()
        assert "licensed" in page.locator("li.alert", has_text="A post").inner_text()
        assert page.locator("li.alert", has_text="small.jpg").locator(".alert-status") \
            .inner_text() == "acknowledged"
        browser.close()
    # The browser asks for /favicon.ico by itself; nothing else may fail.
    assert [u for u in failed if not u.endswith("/favicon.ico")] == []
    assert [e for e in errors if "Failed to load resource" not in e] == []
    statuses = {a["image"]["uri"]: a["status"] for a in watching.alerts()}
    assert statuses == {"https://copies.example/pasted.jpg": "dismissed",
                        "https://copies.example/small.jpg": "acknowledged"}
