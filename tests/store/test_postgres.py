"""The PostgreSQL catalog beyond the shared contract: the log in commit order under concurrent
writers, all-or-nothing records, the schema, errors a person can act on, and the engine (every
stage, the CLI, two processes on two data folders) over a real server."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from helpers import distinct_pictures, jpeg_bytes, photo

from picorigin import Engine, SettingError
from picorigin._store import NewImage, SQLiteCatalog, open_catalog
from picorigin._store.postgres import SCHEMA_VERSION, PostgresCatalog

CLI = [sys.executable, "-m", "picorigin"]


def _new(i: int, data=None, terms=None) -> NewImage:
    record = {"sha256": f"{i:064x}", "pixel_sha256": f"{i:064x}", "width": 1, "height": 1,
              "format": "PNG", "byte_size": 1, "orientation": 0, "metadata": {}, "signals": {}}
    return NewImage(record, {"uri": f"/{i}.png"}, b"thumb",
                    data if data is not None else {"fingerprint": b"f"}, terms or {})


def test_a_follower_misses_no_entry_while_many_writers_commit(postgres_dsn):
    # Writers from 4 threads (4 connections) append while a follower reads after its own
    # position: if numbers were handed out in one order and committed in another, it would
    # move past an entry not yet visible and never read it.
    catalog = PostgresCatalog(postgres_dsn, max_connections=6)
    follower = PostgresCatalog(postgres_dsn, max_connections=1)
    written: list[int] = []
    errors: list[BaseException] = []

    def write(start: int) -> None:
        try:
            for i in range(start, start + 40):
                image_id, _ = catalog.add_image(_new(i))
                catalog.put_signals("deep", [(image_id, b"d")])
                written.append(image_id)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    seen: list[int] = []
    position = 0
    while any(t.is_alive() for t in threads) or position < follower.position():
        head = follower.position()
        seen += follower.changed_since("deep", position, head) or []
        position = head
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(seen) == sorted(written) and len(written) == 160
    assert follower.position() == 320  # one fingerprint and one deep entry per image
    catalog.close()
    follower.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_write_that_fails_midway_leaves_nothing(kind, tmp_path, request):
    catalog = (PostgresCatalog(request.getfixturevalue("postgres_dsn")) if kind == "postgres"
               else SQLiteCatalog(tmp_path / "catalog.sqlite"))
    # the terms of the second signal cannot be stored: after the image row, its thumbnail
    # and the first signal were written in the same transaction
    broken = _new(1, data={"fingerprint": b"f", "deep": b"d"}, terms={"deep": [(1, "heavy")]})
    with pytest.raises(ValueError):
        catalog.add_image(broken)
    assert catalog.counts() == {"images": 0, "locations": 0, "bytes": 0}
    assert catalog.position() == 0 and catalog.signal_ids("fingerprint") == set()
    assert catalog.add_image(_new(1))[1]  # and the next write goes through
    catalog.close()


def test_the_schema_is_created_once_and_a_newer_one_refused(postgres_dsn):
    catalogs = []
    threads = [threading.Thread(target=lambda: catalogs.append(PostgresCatalog(postgres_dsn)))
               for _ in range(3)]  # three processes opening a fresh database at once
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(catalogs) == 3 and catalogs[0].get_meta("schema") == str(SCHEMA_VERSION)
    catalogs[0].add_image(_new(1))
    assert catalogs[2].counts()["images"] == 1
    catalogs[0].set_meta("schema", "99")
    with pytest.raises(SettingError, match="schema 99, newer"):
        PostgresCatalog(postgres_dsn)
    for catalog in catalogs:
        catalog.close()


def test_an_unreachable_server_is_one_clear_error_without_the_password(tmp_path):
    dsn = f"postgresql://ada:s3cret@/nowhere?host={tmp_path}&connect_timeout=2"
    with pytest.raises(SettingError, match="cannot connect to PostgreSQL") as caught:
        PostgresCatalog(dsn, timeout=3)
    assert "s3cret" not in str(caught.value)
    done = subprocess.run([*CLI, "stats", "--db", str(tmp_path / "db"), "-s",
                           f"catalog={dsn}"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "cannot connect to PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr and "s3cret" not in done.stderr


def test_the_setting_picks_the_catalog(tmp_path, postgres_dsn):
    (tmp_path / "one").mkdir()
    embedded = open_catalog({"catalog": ""}, tmp_path / "one")
    assert isinstance(embedded, SQLiteCatalog) and (tmp_path / "one" / "catalog.sqlite").exists()
    embedded.close()
    with pytest.raises(SettingError, match="mysql:// is not a kind of catalog"):
        open_catalog({"catalog": "mysql://x/y"}, tmp_path)
    (tmp_path / "two").mkdir()
    catalog = open_catalog({"catalog": postgres_dsn}, tmp_path / "two")
    assert isinstance(catalog, PostgresCatalog) and catalog.dsn == postgres_dsn
    catalog.close()
    assert list((tmp_path / "two").iterdir()) == []


@pytest.fixture(scope="module")
def pg_engine(tmp_path_factory, postgres_server, photo_dir):
    dsn = postgres_server.new_database()
    engine = Engine(tmp_path_factory.mktemp("pgdb"), settings={"catalog": dsn})
    assert "deep" in engine.stages, engine.stages_off
    report = engine.index([photo_dir], workers=2)  # the pool's workers ask the same catalog
    assert report.indexed == 6 and not report.failed
    yield engine, dsn
    engine.close()
    postgres_server.drop_database(dsn)


def test_the_engine_finds_every_kind_over_postgres(pg_engine, photo_dir):
    engine, _ = pg_engine
    assert not (engine.path / "catalog.sqlite").exists()
    exact = engine.search(photo_dir / "coffee.jpg").matches[0]
    assert exact.kind == "exact" and exact.uri.endswith("coffee.jpg")
    near = engine.search(jpeg_bytes(photo("chelsea").resize((300, 200)), 40)).matches[0]
    assert near.kind == "near_duplicate" and near.uri.endswith("chelsea.jpg")
    crop = engine.search(jpeg_bytes(photo("astronaut").crop((120, 40, 400, 330)))).matches[0]
    assert crop.kind == "partial" and crop.uri.endswith("astronaut.jpg")
    unknown = engine.search(jpeg_bytes(photo("camera")))
    assert unknown.copies == [] and unknown.extra["labels"]
    assert all(m.kind == "similar" for m in unknown.matches)
    assert engine.search(jpeg_bytes(photo("chelsea"), 40), label="espresso").matches[0].kind \
        == "similar"
    info = engine.info(exact.id)
    assert info["uris"][0].endswith("coffee.jpg") and engine.thumbnail(exact.id)[:2] == b"\xff\xd8"
    assert engine.stats()["images"] == 6 and engine.missing_signals() == {}


def test_a_second_index_skips_and_remove_reaches_every_stage(pg_engine, photo_dir):
    engine, _ = pg_engine
    again = engine.index([photo_dir], workers=1)
    assert again.indexed == 0 and again.skipped == 6
    rocket = engine.search(photo_dir / "rocket.jpg").matches[0].id
    engine.remove(rocket)
    result = engine.search(photo_dir / "rocket.jpg")
    assert rocket not in {m.id for m in result.matches}
    assert engine.stats()["images"] == 5
    assert engine.index([photo_dir / "rocket.jpg"], workers=1).indexed == 1  # back again


def test_two_processes_on_two_machines_share_one_catalog(tmp_path, postgres_dsn):
    # Two data folders (two machines' checkpoint files), one PostgreSQL catalog.
    a = distinct_pictures(tmp_path / "a", [f"a{i}" for i in range(8)], seed=1)
    b = distinct_pictures(tmp_path / "b", [f"b{i}" for i in range(8)], seed=2)
    processes = [subprocess.Popen(
        [*CLI, "index", str(tmp_path / name), "--db", str(tmp_path / f"db-{name}"), "-w", "1",
         "-s", f"catalog={postgres_dsn}", "-s", "stages=local"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("a", "b")]
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err.decode()
        assert b"indexed 8," in out
    # a third folder, never used, builds every index from the catalog's rows
    with Engine(tmp_path / "db-c", settings={"catalog": postgres_dsn,
                                             "stages": "local"}) as engine:
        assert engine.stats()["images"] == 16 and engine.missing_signals() == {}
        for path in a + b:
            top = engine.search(path, fast=True).matches[0]
            assert top.kind == "exact" and top.uri == str(path.resolve())
