import sqlite3

import pytest

from picorigin._catalog import Catalog


def _record(sha="a" * 64, pixel="p" * 64):
    return {
        "sha256": sha,
        "pixel_sha256": pixel,
        "width": 10,
        "height": 20,
        "format": "JPEG",
        "byte_size": 123,
        "fingerprint": bytes(32),
        "orientation": 0,
        "metadata": {"creator": "Ada"},
    }


@pytest.fixture
def catalog(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def test_same_content_is_one_row_with_many_locations(catalog):
    first, created = catalog.insert_image(_record(), {"uri": "/a.jpg"}, b"thumb")
    second, created_again = catalog.insert_image(_record(), {"uri": "/b.jpg"}, None)
    assert created and not created_again and first == second
    record = catalog.images([first])[first]
    assert [loc["uri"] for loc in record["locations"]] == ["/a.jpg", "/b.jpg"]
    assert record["metadata"] == {"creator": "Ada"}
    assert catalog.counts()["images"] == 1


def test_wal_mode_and_epoch_bumps_on_every_change(catalog):
    mode = catalog._writer.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    start = catalog.epoch
    image_id, _ = catalog.insert_image(_record(), {"uri": "/a.jpg"}, None)
    assert catalog.epoch == start + 1
    catalog.add_location(image_id, {"uri": "/c.jpg"})
    assert catalog.epoch == start + 1  # a location does not touch the index
    catalog.remove_image(image_id)
    assert catalog.epoch == start + 2


def test_removing_an_image_removes_its_locations_and_thumbnail(catalog):
    image_id, _ = catalog.insert_image(_record(), {"uri": "/a.jpg"}, b"jpeg")
    assert catalog.thumbnail(image_id) == b"jpeg"
    assert catalog.remove_image(image_id)
    assert catalog.counts() == {"images": 0, "locations": 0, "bytes": 0}
    assert catalog.thumbnail(image_id) is None
    assert not catalog.remove_image(image_id)


def test_sightings_keep_first_seen_and_refresh_last_seen(catalog):
    sighting = {"uri": "http://x/a.jpg", "page_url": "http://x/", "page_title": "Home",
                "seen": "2020-01-01T00:00:00+00:00"}
    image_id, _ = catalog.insert_image(_record(), sighting, None)
    catalog.add_location(image_id, {**sighting, "page_title": None, "seen": "2024-01-01T00:00:00+00:00"})
    (location,) = catalog.images([image_id])[image_id]["locations"]
    assert location["first_seen"].startswith("2020")
    assert location["last_seen"].startswith("2024")
    assert location["page_title"] == "Home"
    assert catalog.mark_removed("http://x/a.jpg", "http://x/")
    (location,) = catalog.images([image_id])[image_id]["locations"]
    assert location["removed_at"] is not None


def test_unchanged_file_lookup(catalog):
    image_id, _ = catalog.insert_image(
        _record(), {"uri": "/a.jpg", "file_size": 5, "file_mtime": 1.5}, None
    )
    assert catalog.unchanged_file("/a.jpg", 5, 1.5) == image_id
    assert catalog.unchanged_file("/a.jpg", 6, 1.5) is None


def test_readers_see_commits_from_the_writer(catalog, tmp_path):
    catalog.insert_image(_record(), {"uri": "/a.jpg"}, None)
    other = sqlite3.connect(tmp_path / "catalog.sqlite")
    assert other.execute("SELECT count(*) FROM images").fetchone()[0] == 1
    other.close()


def test_fingerprints_are_batched_in_id_order(catalog):
    for i in range(5):
        catalog.insert_image(_record(sha=f"{i:064d}"), {"uri": f"/{i}.jpg"}, None)
    batches = list(catalog.fingerprints(batch=2))
    assert [len(ids) for ids, _ in batches] == [2, 2, 1]
    assert [i for ids, _ in batches for i in ids] == sorted(i for ids, _ in batches for i in ids)
