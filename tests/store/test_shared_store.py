"""Indexes every process shares (setting ``index``: Milvus): the shared position and its
catch-up, a stale write undone, a collection made anew, the engine finding what the default
finds, two engines on one Lite file and two processes on one Milvus server. Real Milvus Lite."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from helpers import close_stage, distinct_pictures, jpeg_bytes, open_stage, photo

from picorigin import Engine
from picorigin._index import milvus
from picorigin._maintenance import check
from picorigin._settings import resolve_settings
from picorigin._stages.fingerprint import FingerprintStage
from picorigin._store import SharedStore

CLI = [sys.executable, "-m", "picorigin"]


def _codes(n: int) -> np.ndarray:
    return np.random.default_rng(7).integers(0, 256, (n, 32), dtype=np.uint8)


def _fingerprints(folder, locator, ids, cls=FingerprintStage):
    settings = resolve_settings({"index": locator, "stages": ""}, environ={})
    return open_stage(cls, folder, ids, settings)


def test_a_commit_no_process_wrote_is_caught_up_by_the_next_reader(tmp_path, milvus_lite):
    locator = milvus_lite()
    writer, catalog = _fingerprints(tmp_path, locator, range(1, 11))
    assert isinstance(writer.store, SharedStore)
    codes = _codes(11)
    # committed to the catalog by a writer that died before writing to Milvus
    catalog.put_signals("fingerprint", [(i, codes[i].tobytes()) for i in range(1, 11)])
    assert catalog.checkpoint("fingerprint") is None
    reader, other = _fingerprints(tmp_path, locator, ())  # another process, same folder
    assert reader.search(codes[3:4], 0) == [(0, 3, 0)]
    recorded = catalog.checkpoint("fingerprint")
    assert recorded.seq == catalog.position() and recorded.file == ""
    # the shared position tells the writer the index already holds its commits: nothing to push
    assert not writer.store.checkpoint(force=True)
    assert writer.search(codes[5:6], 0) == [(0, 5, 0)]
    catalog.remove_image(5)
    assert reader.search(codes[5:6], 0) == []
    assert writer.search(codes[5:6], 0) == []
    assert not list(tmp_path.glob("indexes/*.ckpt"))
    close_stage(reader, other)
    close_stage(writer, catalog)


class _Raced(FingerprintStage):
    """Another process deletes image 3, and its Milvus entry, between this process's read of
    the rows and its write of them (the interleaving write-then-verify exists for)."""

    armed = raced = False

    def index_entry(self, data: bytes):
        if _Raced.armed and not _Raced.raced:
            _Raced.raced = True
            self.catalog.remove_image(3)
            self.store._index.update([3], [])  # the other process's catch-up
        return super().index_entry(data)


def test_a_stale_write_is_undone_by_reading_the_rows_again(tmp_path, milvus_lite):
    stage, catalog = _fingerprints(tmp_path, milvus_lite(), range(1, 6), cls=_Raced)
    codes = _codes(6)
    catalog.put_signals("fingerprint", [(1, codes[1].tobytes())])
    assert stage.search(codes[1:2], 0) == [(0, 1, 0)]  # a position is recorded: next, a catch-up
    _Raced.armed = True
    catalog.put_signals("fingerprint", [(i, codes[i].tobytes()) for i in range(2, 6)])
    assert stage.search(codes[3:4], 0) == []
    assert _Raced.raced
    with stage.store.reading() as index:
        assert index.ids() == {1, 2, 4, 5}
    close_stage(stage, catalog)


def test_a_collection_made_anew_is_filled_again_and_strangers_removed(tmp_path, milvus_lite):
    locator = milvus_lite()
    stage, catalog = _fingerprints(tmp_path, locator, range(1, 9))
    codes = _codes(9)
    catalog.put_signals("fingerprint", [(i, codes[i].tobytes()) for i in range(1, 9)])
    assert stage.search(codes[2:3], 0) == [(0, 2, 0)]
    before = catalog.checkpoint("fingerprint")
    connection = stage.store.connection
    connection.client.drop_collection(connection.target.collection("fingerprint"))
    again, other = _fingerprints(tmp_path, locator, ())  # a process started after the drop
    assert again.search(codes[2:3], 0) == [(0, 2, 0)]
    assert catalog.checkpoint("fingerprint").meta["shared"] != before.meta["shared"]
    with again.store.reading() as index:
        index.update([], [(99, codes[0])])  # an entry without a row (another catalog's)
    report = again.store.check()
    assert not report["ok"] and report["extra"] == [99] and report["entries"] == 9
    again.store.rebuild()
    report = again.store.check()
    assert report["ok"] and report["entries"] == report["rows"] == 8
    close_stage(again, other)
    close_stage(stage, catalog)


# -- the engine ---------------------------------------------------------------------------------

QUERIES = {
    "exact": lambda d: (d / "coffee.jpg").read_bytes(),
    "resized": lambda d: jpeg_bytes(photo("chelsea").resize((300, 200)), 40),
    "cropped": lambda d: jpeg_bytes(photo("astronaut").crop((120, 40, 400, 330))),
    "unknown": lambda d: jpeg_bytes(photo("camera")),
}


@pytest.fixture(scope="module")
def engines(tmp_path_factory, milvus_lite, photo_dir):
    """The same photos indexed by the default engine and by one with Milvus Lite indexes."""
    made = {}
    for name, settings in [("default", {}), ("milvus", {"index": milvus_lite()})]:
        engine = Engine(tmp_path_factory.mktemp(f"db-{name}"), settings=settings)
        assert "deep" in engine.stages, engine.stages_off
        assert engine.index([photo_dir], workers=1).indexed == 6
        made[name] = engine
    yield made
    for engine in made.values():
        engine.close()


@pytest.mark.parametrize("query", QUERIES)
def test_the_engine_finds_with_milvus_what_it_finds_by_default(engines, photo_dir, query):
    found = {name: engine.search(QUERIES[query](photo_dir))
             for name, engine in engines.items()}
    default, shared = found["default"], found["milvus"]
    assert [(m.kind, m.uri.rsplit("/", 1)[1]) for m in shared.matches] == \
        [(m.kind, m.uri.rsplit("/", 1)[1]) for m in default.matches]
    if query == "unknown":
        assert shared.copies == [] and all(m.kind == "similar" for m in shared.matches)
    else:
        expected = {"exact": "exact", "resized": "near_duplicate", "cropped": "partial"}[query]
        assert shared.matches[0].kind == expected


def test_the_milvus_engine_keeps_no_index_files_and_checks_sound(engines, photo_dir):
    engine = engines["milvus"]
    assert not list(engine.path.glob("indexes/*.ckpt"))
    stats = engine.stats()["stages"]
    assert stats["local"]["entries"] == 6 and stats["deep"]["index"] == "milvus FLAT"
    assert check(engine)["ok"]
    by_label = engine.search(jpeg_bytes(photo("chelsea"), 40), label="espresso").matches
    assert by_label and by_label[0].uri.endswith("coffee.jpg")


def test_two_engines_on_one_folder_share_the_lite_file(tmp_path, milvus_lite):
    pictures = distinct_pictures(tmp_path / "pictures", ["a", "b"], seed=3)
    locator = milvus_lite()
    settings = {"index": locator, "stages": "local"}
    with Engine(tmp_path / "db", settings=settings) as one, \
            Engine(tmp_path / "db", settings=settings) as two:
        assert one.index([pictures[0]], workers=1).indexed == 1
        top = two.search(pictures[0]).matches[0]
        assert top.kind == "exact" and top.uri == str(pictures[0].resolve())
        assert two.index([pictures[1]], workers=1).indexed == 1
        assert one.search(pictures[1]).matches[0].kind == "exact"
        one.remove(top.id)
        assert top.id not in {m.id for m in two.search(pictures[0]).matches}


@pytest.fixture
def milvus_server(tmp_path):
    """Milvus Lite's server listening on 127.0.0.1: what processes that share an index need
    (it speaks the protocol of a Milvus standalone server)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # milvus-lite imports pkg_resources
        from milvus_lite.server import Server
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server(str(tmp_path / "server.db"), f"127.0.0.1:{port}")
    assert server.init() and server.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert time.monotonic() < deadline, "Milvus Lite's server did not start"
            time.sleep(0.1)
    yield f"milvus://127.0.0.1:{port}"
    server.stop()


def test_two_processes_share_one_milvus_server(tmp_path, milvus_server):
    a = distinct_pictures(tmp_path / "a", [f"a{i}" for i in range(6)], seed=1)
    b = distinct_pictures(tmp_path / "b", [f"b{i}" for i in range(6)], seed=2)
    settings = ["-s", f"index={milvus_server}", "-s", "stages=local"]
    processes = [subprocess.Popen(
        [*CLI, "index", str(tmp_path / name), "--db", str(tmp_path / "db"), "-w", "1",
         *settings], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for name in ("a", "b")]
    for process in processes:
        out, err = process.communicate(timeout=240)
        assert process.returncode == 0, err.decode()
        assert b"indexed 6," in out
    with Engine(tmp_path / "db", settings={"index": milvus_server, "stages": "local"}) as engine:
        # everything is in Milvus already: the writers pushed their commits as they closed
        recorded = engine._catalog.checkpoint("fingerprint")
        assert recorded.seq == engine._catalog.position()
        for path in a + b:
            top = engine.search(path).matches[0]
            assert top.kind == "exact" and top.uri == str(path.resolve())
        assert check(engine)["ok"]
    assert not list((tmp_path / "db").glob("indexes/*.ckpt"))
    milvus.parse_target(milvus_server, tmp_path)  # (the locator round-trips)
