"""The catalog contract, held against every implementation: SQLite (the embedded default),
PostgreSQL (a real server) and the in-memory reference."""

import sqlite3

import pytest

from picorigin._store import Checkpoint, MemoryCatalog, NewImage, SQLiteCatalog


def _new(sha="a" * 64, pixel="p" * 64, location=None, thumbnail=None, data=None, terms=None):
    record = {"sha256": sha, "pixel_sha256": pixel, "width": 10, "height": 20,
              "format": "JPEG", "byte_size": 123, "orientation": 0,
              "metadata": {"creator": "Ada"}, "signals": {}}
    return NewImage(record, location or {"uri": "/a.jpg"}, thumbnail,
                    data if data is not None else {"fingerprint": bytes(32)}, terms or {})


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def catalog(request, tmp_path):
    if request.param == "postgres":
        from picorigin._store.postgres import PostgresCatalog

        catalog = PostgresCatalog(request.getfixturevalue("postgres_dsn"))
    elif request.param == "sqlite":
        catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
    else:
        catalog = MemoryCatalog()
    yield catalog
    catalog.close()


def test_same_content_is_one_row_with_many_locations(catalog):
    first, created = catalog.add_image(_new(thumbnail=b"thumb"))
    second, created_again = catalog.add_image(_new(location={"uri": "/b.jpg"}))
    assert created and not created_again and first == second
    record = catalog.images([first])[first]
    assert [loc["uri"] for loc in record["locations"]] == ["/a.jpg", "/b.jpg"]
    assert record["metadata"] == {"creator": "Ada"}
    assert catalog.counts()["images"] == 1


def test_every_signal_change_is_logged_in_commit_order(catalog):
    start = catalog.position()
    image_id, _ = catalog.add_image(_new(data={"fingerprint": b"f" * 32, "local": b"l"}))
    after_add = catalog.position()
    assert after_add == start + 2
    catalog.add_location(image_id, {"uri": "/c.jpg"})
    assert catalog.position() == after_add  # a location touches no signal
    catalog.put_signals("deep", [(image_id, b"d"), (999, b"x")])  # 999 is not catalogued
    assert catalog.changed_since("deep", after_add, catalog.position()) == [image_id]
    assert catalog.signals("deep", [image_id, 999]) == {image_id: b"d"}
    before_remove = catalog.position()
    catalog.remove_image(image_id)
    assert catalog.position() == before_remove + 3  # one entry per signal it held
    for name in ("fingerprint", "local", "deep"):
        assert catalog.changed_since(name, before_remove, catalog.position()) == [image_id]
        assert catalog.signals(name, [image_id]) == {}


def test_checkpoints_prune_the_log_below_every_signal(catalog):
    ids = [catalog.add_image(_new(sha=f"{i:064d}", location={"uri": f"/{i}"},
                                  data={"fingerprint": b"f", "local": b"l"}))[0]
           for i in range(3)]
    end = catalog.position()
    assert catalog.record_checkpoint("local", Checkpoint(2, "l-1", {"v": 1})) is None
    assert catalog.record_checkpoint("fingerprint", Checkpoint(end, "f-1", {})) is None
    # pruned up to 2, the oldest checkpoint: "local" catches up from its own, an index still
    # at 0 must reload one
    assert catalog.changed_since("local", 2, end) == ids[1:]
    assert catalog.changed_since("fingerprint", 0, end) is None
    assert catalog.changed_since("fingerprint", end, end) == []
    # an older checkpoint does not replace a newer one: its own file is the one to delete
    assert catalog.record_checkpoint("local", Checkpoint(1, "l-0", {})) == "l-0"
    assert catalog.record_checkpoint("local", Checkpoint(end, "l-2", {"v": 2})) == "l-1"
    assert catalog.checkpoint("local") == Checkpoint(end, "l-2", {"v": 2})
    # one of the same position replaces it only when asked (a rebuild over a damaged file)
    assert catalog.record_checkpoint("local", Checkpoint(end, "l-3", {})) == "l-3"
    assert catalog.record_checkpoint("local", Checkpoint(end, "l-3", {}), replace=True) == "l-2"


def test_terms_find_ids_by_weight(catalog):
    a, _ = catalog.add_image(_new(sha="1" * 64, data={"deep": b"a"},
                                  terms={"deep": [(5, 0.15), (6, 0.1)]}))
    b, _ = catalog.add_image(_new(sha="2" * 64, location={"uri": "/b"}, data={"deep": b"b"},
                                  terms={"deep": [(5, 0.9)]}))
    assert catalog.ids_with_terms("deep", [5], 0.2) == [b]
    assert catalog.ids_with_terms("deep", [5, 6], 0.2) == [a, b]
    catalog.put_signals("deep", [(b, b"b2")], {b: [(7, 1.0)]})  # replacing drops old terms
    assert catalog.ids_with_terms("deep", [5], 0.2) == []


def test_removing_an_image_removes_its_locations_and_thumbnail(catalog):
    image_id, _ = catalog.add_image(_new(thumbnail=b"jpeg"))
    assert catalog.thumbnail(image_id) == b"jpeg"
    assert catalog.remove_image(image_id)
    assert catalog.counts() == {"images": 0, "locations": 0, "bytes": 0}
    assert catalog.thumbnail(image_id) is None
    assert not catalog.remove_image(image_id)


def test_sightings_keep_first_seen_and_refresh_last_seen(catalog):
    sighting = {"uri": "http://x/a.jpg", "page_url": "http://x/", "page_title": "Home",
                "seen": "2020-01-01T00:00:00+00:00"}
    image_id, _ = catalog.add_image(_new(location=sighting))
    catalog.add_location(image_id, {**sighting, "page_title": None,
                                    "seen": "2024-01-01T00:00:00+00:00"})
    (location,) = catalog.images([image_id])[image_id]["locations"]
    assert location["first_seen"].startswith("2020")
    assert location["last_seen"].startswith("2024")
    assert location["page_title"] == "Home"
    assert catalog.mark_removed("http://x/a.jpg", "http://x/")
    (location,) = catalog.images([image_id])[image_id]["locations"]
    assert location["removed_at"] is not None


def test_unchanged_file_lookup(catalog):
    image_id, _ = catalog.add_image(_new(location={"uri": "/a.jpg", "file_size": 5,
                                                   "file_mtime": 1.5}))
    assert catalog.unchanged_file("/a.jpg", 5, 1.5) == image_id
    assert catalog.unchanged_file("/a.jpg", 6, 1.5) is None


def test_signals_are_scanned_in_id_order_in_batches(catalog):
    for i in range(5):
        catalog.add_image(_new(sha=f"{i:064d}", location={"uri": f"/{i}.jpg"}))
    batches = list(catalog.scan_signals("fingerprint", batch=2))
    assert [len(rows) for rows in batches] == [2, 2, 1]
    ids = [i for rows in batches for i, _ in rows]
    assert ids == sorted(ids) and catalog.signal_ids("fingerprint") == set(ids)


def test_sqlite_is_wal_and_other_connections_see_commits(tmp_path):
    catalog = SQLiteCatalog(tmp_path / "catalog.sqlite")
    catalog.add_image(_new())
    other = sqlite3.connect(tmp_path / "catalog.sqlite")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert other.execute("SELECT count(*) FROM images").fetchone()[0] == 1
    other.close()
    catalog.close()


def test_a_schema_1_catalog_is_upgraded_in_place(tmp_path):
    path = tmp_path / "catalog.sqlite"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE images (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
            pixel_sha256 TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            format TEXT NOT NULL, byte_size INTEGER NOT NULL, fingerprint BLOB NOT NULL,
            orientation INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
            signals TEXT NOT NULL DEFAULT '{}', added_at TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('epoch', '7'), ('schema', '1');
        INSERT INTO images VALUES (4, 'aa', 'pp', 1, 2, 'PNG', 3, x'0102', 0, '{}', '{}', 'now');
    """)
    db.close()
    catalog = SQLiteCatalog(path)
    assert catalog.signals("fingerprint", [4]) == {4: b"\x01\x02"}
    assert catalog.get_meta("epoch") is None and catalog.get_meta("schema") == "2"
    assert catalog.images([4])[4]["format"] == "PNG"
    catalog.close()


def test_a_log_follower_reads_entries_after_its_position_and_holds_the_log(catalog):
    ids = [catalog.add_image(_new(sha=f"{i:064d}", location={"uri": f"/{i}"}))[0]
           for i in range(3)]
    entries = catalog.changes_after(0, "fingerprint")
    assert [i for _, i in entries] == ids
    assert catalog.changes_after(entries[0][0], "fingerprint", limit=1) == [entries[1]]
    assert catalog.changes_after(0, "local") == []
    # a follower's position is a checkpoint without a file: the log is kept from there
    catalog.record_checkpoint("alerts", Checkpoint(entries[0][0], "", {}))
    catalog.record_checkpoint("fingerprint", Checkpoint(entries[-1][0], "f", {}))
    assert [i for _, i in catalog.changes_after(entries[0][0], "fingerprint")] == ids[1:]


def test_rights_stated_by_a_page_are_kept_with_the_sighting(catalog):
    rights = {"license": "https://creativecommons.org/licenses/by/4.0/", "sources": ["jsonld"]}
    image_id, _ = catalog.add_image(_new(location={"uri": "http://x/a.jpg",
                                                   "page_url": "http://x/", "rights": rights}))
    catalog.add_location(image_id, {"uri": "http://x/a.jpg", "page_url": "http://x/"})
    catalog.add_location(image_id, {"uri": "/local.jpg"})
    by_uri = {loc["uri"]: loc for loc in catalog.images([image_id])[image_id]["locations"]}
    assert by_uri["http://x/a.jpg"]["rights"] == rights  # a later sighting without any keeps it
    assert by_uri["/local.jpg"]["rights"] is None


# -- watches, alerts and the webhook outbox ------------------------------------------------

def _watch(catalog, pictures=2, webhook="http://127.0.0.1:9/hook"):
    return catalog.add_watch(
        {"label": "portfolio", "webhook": webhook, "secret": "s3cret",
         "kinds": ["exact", "partial"], "allow_private": True},
        [{"uri": f"/w{i}.jpg", "sha256": f"{i}" * 64, "pixel_sha256": f"p{i}" * 32,
          "width": 10, "height": 20, "fingerprint": bytes([i]) * 32,
          "local": None if i else b"lf", "thumbnail": b"t%d" % i} for i in range(pictures)])


def _alert(watch_id, picture_id, sha="c" * 64, kind="partial", score=0.5, image_id=7):
    return {"watch_id": watch_id, "picture_id": picture_id, "image_id": image_id,
            "image_sha256": sha, "kind": kind, "score": score, "details": {"inliers": 30}}


def test_watches_keep_their_pictures_and_signals(catalog):
    version = catalog.watch_version()
    watch_id = _watch(catalog)
    assert catalog.watch_version() != version
    (watch,) = catalog.watches()
    assert (watch["id"], watch["label"], watch["kinds"]) == (watch_id, "portfolio",
                                                             ["exact", "partial"])
    assert watch["allow_private"] is True and watch["created_at"]
    assert [p["uri"] for p in watch["pictures"]] == ["/w0.jpg", "/w1.jpg"]
    pictures = catalog.watch_pictures()
    assert [p["fingerprint"] for p in pictures] == [bytes([0]) * 32, bytes([1]) * 32]
    assert [p["local"] for p in pictures] == [b"lf", None]
    assert catalog.watch_thumbnail(pictures[1]["id"]) == b"t1"
    assert catalog.watch_thumbnail(10_000) is None


def test_one_alert_per_picture_and_copy_content(catalog):
    watch_id = _watch(catalog)
    picture = catalog.watch_pictures()[0]["id"]
    first, created = catalog.add_alert(_alert(watch_id, picture))
    again, created_again = catalog.add_alert(_alert(watch_id, picture, image_id=8, score=0.4))
    assert created and not created_again and first == again
    (alert,) = catalog.alerts()
    assert alert["image_id"] == 8 and alert["score"] == 0.5  # a weaker match changes no kind
    catalog.add_alert(_alert(watch_id, picture, kind="near_duplicate", score=0.8))
    assert catalog.alert(first)["kind"] == "near_duplicate"
    assert catalog.set_alert_status(first, "dismissed", "licensed")
    catalog.add_alert(_alert(watch_id, picture, kind="exact", score=1.0))
    assert catalog.alert(first)["status"] == "dismissed"  # stays dismissed
    assert catalog.alert(first)["reason"] == "licensed"
    other, created = catalog.add_alert(_alert(watch_id, picture, sha="d" * 64))
    assert created and [a["id"] for a in catalog.alerts()] == [other, first]
    assert [a["id"] for a in catalog.alerts(status="dismissed")] == [first]
    assert catalog.alerts(since="9999") == [] and len(catalog.alerts(since="2000")) == 2
    assert not catalog.set_alert_status(10_000, "acknowledged")


def test_the_outbox_is_written_with_the_alert_and_leased_to_one_sender(catalog):
    watch_id = _watch(catalog)
    picture = catalog.watch_pictures()[0]["id"]
    delivery = {"key": "k-1", "payload": {"kind": "partial"}, "next_at": 100.0}
    alert_id, _ = catalog.add_alert(_alert(watch_id, picture), delivery)
    catalog.add_alert(_alert(watch_id, picture), {**delivery, "key": "k-2"})  # not new: none
    assert catalog.claim_deliveries(now=99.0, lease=30) == []
    (claimed,) = catalog.claim_deliveries(now=100.0, lease=30)
    assert claimed["payload"] == {"kind": "partial", "alert_id": alert_id}
    assert (claimed["key"], claimed["webhook"], claimed["secret"]) == (
        "k-1", "http://127.0.0.1:9/hook", "s3cret")
    assert catalog.claim_deliveries(now=101.0, lease=30) == []  # leased
    catalog.record_attempt(claimed["id"], {"status_code": 503, "error": "HTTP 503", "ms": 2.0},
                           status="pending", next_at=140.0)
    assert catalog.claim_deliveries(now=139.0, lease=30) == []
    (claimed,) = catalog.claim_deliveries(now=140.0, lease=30)
    assert claimed["attempts"] == 1
    catalog.record_attempt(claimed["id"], {"status_code": 204, "ms": 1.0}, status="delivered")
    assert catalog.claim_deliveries(now=10_000.0, lease=30) == []
    (record,) = catalog.deliveries(alert_id)
    assert (record["status"], record["attempts"]) == ("delivered", 2)
    assert [a["status_code"] for a in record["history"]] == [503, 204]


def test_removing_a_watch_removes_its_pictures_alerts_and_outbox(catalog):
    kept, gone = _watch(catalog), _watch(catalog, pictures=1)
    picture = [p["id"] for p in catalog.watch_pictures() if p["watch_id"] == gone][0]
    catalog.add_alert(_alert(gone, picture),
                      {"key": "k", "payload": {}, "next_at": 0.0})
    version = catalog.watch_version()
    assert catalog.remove_watch(gone) and not catalog.remove_watch(gone)
    assert catalog.watch_version() != version
    assert [w["id"] for w in catalog.watches()] == [kept]
    assert {p["watch_id"] for p in catalog.watch_pictures()} == {kept}
    assert catalog.alerts() == [] and catalog.deliveries() == []
    assert catalog.claim_deliveries(now=1.0, lease=1) == []
