import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import PHOTOS, UNKNOWN, jpeg_bytes, photo
from PIL import Image

from picorigin import Engine, ImageError, NotFound
from picorigin._features import fingerprint as fp


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, photo_dir):
    folder = tmp_path_factory.mktemp("db")
    with Engine(folder) as engine:
        report = engine.index([photo_dir], workers=1)
    assert report.indexed == len(PHOTOS) and not report.failed
    engine = Engine(folder)
    yield engine
    engine.close()


def _id_of(engine, path):
    return next(m.id for m in engine.search(path).matches if m.kind == "exact")


def test_same_file_is_an_exact_match(indexed, photo_dir):
    for name in PHOTOS:
        result = indexed.search(photo_dir / f"{name}.jpg")
        top = result.matches[0]
        assert top.kind == "exact" and top.score == 1.0
        assert top.uri == str((photo_dir / f"{name}.jpg").resolve())
        assert sum(m.kind == "exact" for m in result.matches) == 1


@pytest.mark.parametrize("element", fp.ORIENTATIONS, ids=fp.orientation_name)
def test_rotated_and_mirrored_copies_are_found_with_their_orientation(indexed, photo_dir, element):
    for name in ("coffee", "rocket", "chelsea"):
        array = np.asarray(photo(name))
        copy = Image.fromarray(np.ascontiguousarray(fp.apply_spatial(array, element)))
        copy = copy.resize((copy.width * 2 // 3, copy.height * 2 // 3))
        result = indexed.search(jpeg_bytes(copy, 60))
        top = result.matches[0]
        assert top.kind == "near_duplicate"
        assert top.uri.endswith(f"{name}.jpg")
        assert top.orientation == fp.orientation_name(element)
        assert top.larger_than_query  # the copy was shrunk: the indexed one is larger


def test_photos_not_in_the_index_get_no_copy(indexed, unknown_dir):
    for name in UNKNOWN:
        result = indexed.search(unknown_dir / f"{name}.jpg")
        assert result.copies == [], [m.to_dict() for m in result.matches]


def test_same_pixels_in_another_file_is_exact(indexed, tmp_path):
    png = tmp_path / "a.png"
    photo("astronaut").save(png, compress_level=1)
    with Engine(tmp_path / "db") as engine:
        engine.add(png)
        other = tmp_path / "b.png"
        photo("astronaut").save(other, compress_level=9)
        assert png.read_bytes() != other.read_bytes()
        top = engine.search(other).matches[0]
        assert top.kind == "exact"


def test_json_contract(indexed, photo_dir):
    result = indexed.search(photo_dir / "coffee.jpg").to_dict()
    json.dumps(result)
    assert set(result) >= {"query", "matches", "elapsed_ms"}
    match = result["matches"][0]
    assert set(match) >= {
        "id", "uri", "uris", "kind", "score", "orientation", "width", "height",
        "larger_than_query", "creator",
    }
    assert 0.0 <= match["score"] <= 1.0
    assert match["kind"] in {"exact", "near_duplicate", "partial", "similar"}


def test_kinds_filter_and_k(indexed, photo_dir):
    result = indexed.search(photo_dir / "coffee.jpg", kinds=["near_duplicate"])
    assert all(m.kind == "near_duplicate" for m in result.matches)
    assert len(indexed.search(photo_dir / "coffee.jpg", k=0).matches) == 0
    with pytest.raises(ValueError):
        indexed.search(photo_dir / "coffee.jpg", kinds=["copy"])


def test_reindexing_adds_nothing_and_a_moved_copy_adds_a_location(tmp_path, photo_dir):
    with Engine(tmp_path / "db") as engine:
        first = engine.index([photo_dir], workers=1)
        again = engine.index([photo_dir], workers=1)
        assert (again.indexed, again.skipped) == (0, len(PHOTOS))
        moved = tmp_path / "elsewhere" / "copy-of-coffee.jpg"
        moved.parent.mkdir()
        shutil.copy(photo_dir / "coffee.jpg", moved)
        third = engine.index([moved.parent], workers=1)
        assert (third.indexed, third.skipped) == (0, 1)
        stats = engine.stats()
        assert stats["images"] == first.indexed
        assert stats["locations"] == first.indexed + 1
        image_id = _id_of(engine, moved)
        assert str(moved.resolve()) in engine.info(image_id)["uris"]


def test_a_bad_file_is_reported_and_the_rest_indexed(tmp_path, photo_dir):
    batch = tmp_path / "batch"
    shutil.copytree(photo_dir, batch)
    (batch / "empty.jpg").write_bytes(b"")
    (batch / "notes.jpg").write_text("this is not an image")
    (batch / "cut.jpg").write_bytes((photo_dir / "rocket.jpg").read_bytes()[:3000])
    with Engine(tmp_path / "db") as engine:
        report = engine.index([batch, tmp_path / "missing.jpg"], workers=2)
    assert report.indexed == len(PHOTOS)
    failed = {Path(source).name: reason for source, reason in report.failed}
    assert set(failed) == {"empty.jpg", "notes.jpg", "cut.jpg", "missing.jpg"}
    assert all(reason for reason in failed.values())


def test_worker_processes_give_the_same_catalog(tmp_path, photo_dir):
    with Engine(tmp_path / "one") as one, Engine(tmp_path / "two") as two:
        one.index([photo_dir], workers=1)
        report = two.index([photo_dir], workers=2)
        assert report.indexed == len(PHOTOS)
        ids = lambda e: {r["sha256"] for r in e.list_images(limit=100)["images"]}
        assert ids(one) == ids(two)


def test_remove(tmp_path, photo_dir):
    with Engine(tmp_path / "db") as engine:
        engine.index([photo_dir], workers=1)
        image_id = _id_of(engine, photo_dir / "rocket.jpg")
        engine.remove(image_id)
        assert engine.search(photo_dir / "rocket.jpg").copies == []
        with pytest.raises(NotFound):
            engine.info(image_id)
        with pytest.raises(NotFound):
            engine.remove(image_id)
        assert engine.stats()["images"] == len(PHOTOS) - 1


def test_add_records_sighting_and_caller_metadata(tmp_path):
    with Engine(tmp_path / "db") as engine:
        image_id = engine.add(
            jpeg_bytes(photo("chelsea")),
            uri="https://example.org/cat.jpg",
            sighting={"page_url": "https://example.org/", "page_title": "A cat", "alt": "cat"},
            metadata={"creator": "Ada Lovelace"},
        )
        record = engine.info(image_id)
        assert record["creator"]["name"] == "Ada Lovelace"
        assert record["creator"]["source"] == "supplied"
        (location,) = record["locations"]
        assert location["page_title"] == "A cat" and location["uri"].endswith("cat.jpg")
        top = engine.search(jpeg_bytes(photo("chelsea"), 40)).matches[0]
        assert top.creator["name"] == "Ada Lovelace"
        assert top.extra["pages"][0]["title"] == "A cat"
        assert engine.thumbnail(image_id)[:2] == b"\xff\xd8"


def test_bad_single_add_raises_a_typed_error(tmp_path):
    with Engine(tmp_path / "db") as engine:
        with pytest.raises(ImageError, match="<bytes>"):
            engine.add(b"not an image")
        assert engine.stats()["images"] == 0


def test_a_stale_checkpoint_catches_up_from_the_change_log(tmp_path, photo_dir):
    folder = tmp_path / "db"
    engine = Engine(folder)
    engine.index([photo_dir], workers=1)
    engine.search(photo_dir / "rocket.jpg", fast=True)  # loads the index
    engine.checkpoint()
    engine.add(jpeg_bytes(photo("camera")))
    # No close(): the index checkpoint on disk predates the last add, as after a crash.
    engine._catalog.close()
    with Engine(folder) as reopened:
        assert reopened.stats()["index"]["fingerprints"] == len(PHOTOS) + 1
        assert reopened.search(jpeg_bytes(photo("camera"))).matches[0].kind == "exact"


def test_the_engine_runs_on_the_in_memory_catalog_too(tmp_path, photo_dir):
    from picorigin._store import MemoryCatalog

    with Engine(tmp_path / "db", catalog=MemoryCatalog(), settings={"stages": ""}) as engine:
        assert engine.index([photo_dir], workers=1).indexed == len(PHOTOS)
        assert engine.search(jpeg_bytes(photo("coffee"), 30)).matches[0].kind == "near_duplicate"
        assert engine.search(photo_dir / "rocket.jpg").matches[0].kind == "exact"


def test_nothing_committed_is_lost_when_indexing_is_killed(tmp_path):
    source = tmp_path / "many"
    source.mkdir()
    base = photo("astronaut")
    for i in range(120):
        # Distinct content: each image gets a differently placed and coloured square.
        image = base.copy()
        image.paste((255, 2 * i, 0), (i * 4 % 480, i * 3 % 480, i * 4 % 480 + 32, i * 3 % 480 + 32))
        image.save(source / f"{i:03d}.jpg", quality=85)
    folder = tmp_path / "db"
    process = subprocess.Popen(
        [sys.executable, "-m", "picorigin", "index", str(source), "--db", str(folder), "-w", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    catalog = folder / "catalog.sqlite"
    deadline = time.monotonic() + 60
    import sqlite3

    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        if catalog.exists():
            try:
                with sqlite3.connect(catalog) as db:
                    committed = db.execute("SELECT count(*) FROM images").fetchone()[0]
            except sqlite3.OperationalError:
                committed = 0
            if committed >= 10:
                break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert committed >= 10
    with Engine(folder) as engine:
        survived = engine.stats()["images"]
        assert survived >= committed
        assert engine.stats()["index"]["fingerprints"] == survived
        report = engine.index([source], workers=1)
        assert report.skipped >= survived - 1  # the one in flight may be redone
        assert report.indexed + report.skipped == 120
        assert engine.stats()["images"] == 120


def test_urls_and_list_files_are_indexed_and_private_addresses_refused(tmp_path, photo_dir):
    from provenance.miniweb import MiniWeb

    from picorigin import ForbiddenAddress

    with MiniWeb() as web:
        web.file("/cat.jpg", (photo_dir / "chelsea.jpg").read_bytes())
        listing = tmp_path / "list.txt"
        listing.write_text(f"# a list file\n{web.url('/cat.jpg')}\n{photo_dir / 'rocket.jpg'}\n")
        with Engine(tmp_path / "open", settings={"allow_private_urls": True}) as engine:
            report = engine.index([listing], workers=1)
            assert (report.indexed, report.failed) == (2, [])
            top = engine.search(jpeg_bytes(photo("chelsea"), 50)).matches[0]
            assert top.uri == web.url("/cat.jpg")
        with Engine(tmp_path / "closed") as engine:
            report = engine.index([listing], workers=1)
            assert report.indexed == 1
            [(source, reason)] = report.failed
            assert source == web.url("/cat.jpg") and "private" in reason.lower()
            with pytest.raises(ForbiddenAddress):
                engine.search(web.url("/cat.jpg"))


def _paste(inner: Image.Image, host: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    canvas = host.resize((800, 600))
    canvas.paste(inner.resize((box[2] - box[0], box[3] - box[1])), box[:2])
    return canvas


@pytest.mark.parametrize("orientation", ["identity", "mirror"])
def test_a_photo_pasted_into_another_is_found_by_its_window(tmp_path, photo_dir, orientation):
    # The fingerprint alone (no local or deep stage): the window around the pasted photo.
    with Engine(tmp_path, settings={"stages": ""}) as engine:
        engine.index([photo_dir], workers=1)
        inner = photo("coffee")
        if orientation == "mirror":
            inner = inner.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        box = (420, 230, 740, 470)
        result = engine.search(jpeg_bytes(_paste(inner, photo("moon"), box), 85))
    top = result.copies[0]
    assert top.kind == "partial" and top.uri.endswith("coffee.jpg")
    assert top.orientation == orientation and top.extra["mirror"] == (orientation == "mirror")
    assert all(abs(a - b) <= 8 for a, b in zip(top.extra["query_box"], box))
    assert top.extra["match_box"] == [0, 0, top.width, top.height]
    assert top.extra["query_overlap"] == pytest.approx(320 * 240 / (800 * 600), abs=0.02)
    assert [m.uri for m in result.copies] == [top.uri]


def test_an_unknown_photo_pasted_into_another_is_no_copy(tmp_path, photo_dir):
    with Engine(tmp_path, settings={"stages": ""}) as engine:
        engine.index([photo_dir], workers=1)
        query = _paste(photo("camera"), photo("coins"), (100, 80, 500, 400))
        assert engine.search(jpeg_bytes(query)).copies == []
