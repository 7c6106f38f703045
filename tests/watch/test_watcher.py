"""Watches and alerts end to end: a crawled mini web, retroactive watches, any writer, restarts,
exactly one alert per watched picture and copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from watch.pictures import copies, unrelated
from provenance.miniweb import MiniWeb

from picorigin import Engine
from picorigin._errors import NotFound, SettingError
from picorigin._provenance.crawl import crawl
from picorigin._watch import watcher

SETTINGS = {"stages": "local", "workers": 1, "measure_detail": False}


def pairs(alerts):
    """``{(watched picture name, copy name): kind}``."""
    return {(Path(a["picture"]).stem, Path(a["image"]["uri"]).stem): a["kind"] for a in alerts}


def test_a_crawled_mini_web_raises_exactly_the_expected_alerts(tmp_path, watched_dir):
    with MiniWeb() as web, Engine(tmp_path / "db", settings=SETTINGS) as engine:
        links = []
        for name, (_, data) in copies().items():
            web.file(f"/img/{name}.jpg", data)
            web.page(f"/{name}.html", f"<html><head><title>{name}</title>"
                     f'<meta name="author" content="Pat Reposter"></head>'
                     f'<body><img src="/img/{name}.jpg"></body></html>')
            links.append(f'<a href="/{name}.html">{name}</a>')
        for name, data in unrelated().items():
            web.file(f"/img/{name}.jpg", data)
            links.append(f'<img src="/img/{name}.jpg">')
        web.page("/", f"<html><body>{''.join(links)}</body></html>")
        watching = watcher(engine)
        added = watching.add([watched_dir], label="portfolio")
        assert (added["pictures"], added["alerts"]) == (3, 0)
        report = crawl(engine, [web.url("/")], depth=1, rate=500.0, allow_private=True)
        assert len(report.image_ids) == len(copies()) + len(unrelated()) and not report.failed
        alerts = watching.alerts()
        expected = {(picture, name) for name, (picture, _) in copies().items()}
        assert set(pairs(alerts)) == expected and len(alerts) == len(expected)
        by_copy = {Path(a["image"]["uri"]).stem: a for a in alerts}
        assert pairs(alerts)[("chelsea", "chelsea-pasted")] == "partial"
        assert pairs(alerts)[("coffee", "coffee-crop")] == "partial"
        assert by_copy["astronaut-rotated"]["orientation"] == "rot270"  # turned counter-clockwise
        pasted = by_copy["chelsea-pasted"]
        x0, y0, x1, y1 = pasted["boxes"]["copy"]
        assert abs(x0 - 240) < 15 and abs(y0 - 200) < 15 and abs(x1 - 660) < 15
        assert pasted["pages"][0]["page_url"] == web.url("/chelsea-pasted.html")
        assert pasted["creator"]["name"] == "Pat Reposter" and pasted["first_seen"]
        # Crawling again refreshes sightings and adds no alert.
        crawl(engine, [web.url("/")], depth=1, rate=500.0, allow_private=True)
        assert watching.process() == 0 and len(watching.alerts()) == len(expected)


def test_a_new_watch_reports_copies_already_indexed_once(tmp_path, watched_dir, copies_dir):
    with Engine(tmp_path / "db", settings=SETTINGS) as engine:
        engine.index([copies_dir, watched_dir])  # the watched files themselves too
        watching = watcher(engine)
        added = watching.add([watched_dir / "coffee.jpg", watched_dir / "chelsea.jpg"],
                             kinds=["partial"])
        # Only partial copies; the watched files indexed as themselves do not alert.
        assert added["alerts"] == 2
        assert set(pairs(watching.alerts())) == {("coffee", "coffee-crop"),
                                                 ("chelsea", "chelsea-pasted")}
        assert watching.process() == 0 and len(watching.alerts()) == 2


def test_any_writer_and_a_restart_alert_once_and_a_dismissal_sticks(tmp_path, watched_dir,
                                                                   copies_dir):
    folder = tmp_path / "db"
    with Engine(folder, settings=SETTINGS) as engine:
        watcher(engine).add([watched_dir / "astronaut.jpg"], label="one")
    # Another engine (another writer on the folder) ingests copies; this one is closed.
    with Engine(folder, settings=SETTINGS) as writer:
        writer.index([copies_dir / "astronaut-small.jpg", copies_dir / "rocket.jpg"])
    with Engine(folder, settings=SETTINGS) as engine, Engine(folder, settings=SETTINGS) as other:
        watching = watcher(engine)
        (alert,) = watching.alerts()
        assert Path(alert["image"]["uri"]).name == "astronaut-small.jpg"
        watching.dismiss(alert["id"], reason="licensed")
        # The same content removed and indexed again (a new id) finds its old, dismissed alert.
        engine.remove(alert["image_id"])
        other.add((copies_dir / "astronaut-small.jpg").read_bytes(), uri="https://x.example/a")
        other.add((copies_dir / "astronaut-rotated.jpg").read_bytes(), uri="https://x.example/b")
        assert watching.process() == 1
        found = {Path(a["image"]["uri"]).name: a for a in watching.alerts()}
        assert found["a"]["status"] == "dismissed" and found["a"]["reason"] == "licensed"
        assert found["b"]["status"] == "new"
        assert watching.acknowledge(found["b"]["id"])["status"] == "acknowledged"


def test_the_watched_bytes_seen_on_the_web_are_an_exact_copy(tmp_path, watched_dir):
    with Engine(tmp_path / "db", settings=SETTINGS) as engine:
        watching = watcher(engine)
        watching.add([watched_dir / "coffee.jpg"])
        data = (watched_dir / "coffee.jpg").read_bytes()
        engine.add(data)  # the user's own bytes, no page: itself
        assert watching.alerts() == []
        engine.remove(engine.add(data))
        engine.add(data, uri="https://thief.example/c.jpg",
                   sighting={"page_url": "https://thief.example/"})
        (alert,) = watching.alerts()
        assert (alert["kind"], alert["score"]) == ("exact", 1.0)


def test_bad_watches_are_refused_and_nothing_is_stored(tmp_path, watched_dir):
    with Engine(tmp_path / "db", settings=SETTINGS) as engine:
        watching = watcher(engine)
        with pytest.raises(SettingError, match="kind"):
            watching.add([watched_dir], kinds=["similar"])
        with pytest.raises(SettingError, match="webhook"):
            watching.add([watched_dir], webhook="file:///etc/passwd")
        with pytest.raises(SettingError, match="no pictures"):
            watching.add([])
        with pytest.raises(SettingError, match="ISO"):
            watching.alerts(since="yesterday")
        with pytest.raises(NotFound):
            watching.remove(5)
        with pytest.raises(NotFound):
            watching.dismiss(5)
        assert watching.watches() == []
