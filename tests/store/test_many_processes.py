"""Many processes on one data folder: writers beside writers, a server beside an indexer, a
writer killed while a reader searches. Real processes (the CLI), every stage on."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from helpers import distinct_pictures
from PIL import Image

from picorigin import Engine

CLI = [sys.executable, "-m", "picorigin"]


def _index(folder: Path, db: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "index", str(folder), "--db", str(db), "-w", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err.decode()


def _resized(path: Path, tmp: Path) -> Path:
    with Image.open(path) as image:
        smaller = image.resize((image.width * 2 // 3, image.height * 2 // 3))
    out = tmp / f"resized-{path.parent.name}-{path.name}"
    smaller.save(out, quality=70)
    return out


def _assert_all_found(engine: Engine, paths: list[Path], tmp: Path) -> None:
    for path in paths:
        exact = engine.search(path, fast=True, kinds=["exact"]).matches
        assert exact, f"{path.name} not found as an exact copy"
        near = engine.search(_resized(path, tmp), fast=True).matches
        assert exact[0].id in {m.id for m in near if m.kind == "near_duplicate"}, path.name


def test_two_indexers_at_once_lose_nothing(tmp_path):
    shared = [f"shared{i}" for i in range(4)]
    a = distinct_pictures(tmp_path / "a", [f"a{i}" for i in range(10)] + shared, seed=1)
    b = distinct_pictures(tmp_path / "b", [f"b{i}" for i in range(10)] + shared, seed=2)
    # the shared names hold the same bytes in both folders (seed differs, so rewrite them)
    for name in shared:
        (tmp_path / "b" / f"{name}.jpg").write_bytes((tmp_path / "a" / f"{name}.jpg").read_bytes())
    db = tmp_path / "db"
    first, second = _index(tmp_path / "a", db), _index(tmp_path / "b", db)
    for process in (first, second):
        _finish(process)
    with Engine(db) as engine:
        assert engine.stats()["images"] == 24
        assert engine.missing_signals() == {}  # every stage holds every image
        _assert_all_found(engine, a + b, tmp_path)
        crop = tmp_path / "crop.jpg"
        with Image.open(b[3]) as image:
            image.crop((40, 30, 260, 200)).save(crop, quality=90)
        top = engine.search(crop).matches[0]
        assert top.kind == "partial" and top.uri.endswith("b3.jpg")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_running_server_sees_what_another_process_indexes(tmp_path):
    db = tmp_path / "db"
    old = distinct_pictures(tmp_path / "old", ["old0", "old1"], seed=3)
    with Engine(db) as engine:
        engine.index([tmp_path / "old"], workers=1)
    port = _free_port()
    server = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            search = lambda p: client.post("/api/search", files={"file": p.read_bytes()},
                                           data={"fast": "true"}).json()
            assert search(old[0])["matches"][0]["kind"] == "exact"  # the server has loaded
            new = distinct_pictures(tmp_path / "new", [f"new{i}" for i in range(6)], seed=4)
            _finish(_index(tmp_path / "new", db))
            indexed_at = time.monotonic()
            for path in new:
                kinds = {m["kind"] for m in search(path)["matches"]}
                assert "exact" in kinds, path.name
                near = search(_resized(path, tmp_path))["matches"]
                assert any(m["kind"] == "near_duplicate" for m in near), path.name
            assert time.monotonic() - indexed_at < 5  # found at once: no restart, no polling
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    with Engine(db) as engine:  # the server's checkpoints on exit lost nothing either
        _assert_all_found(engine, old + new, tmp_path)


def test_a_writer_killed_at_random_moments_loses_nothing_and_the_reader_never_fails(tmp_path):
    paths = distinct_pictures(tmp_path / "many", [f"p{i:02d}" for i in range(30)], seed=5)
    db = tmp_path / "db"
    with Engine(db) as engine:
        engine.add(paths[0])
    errors: list[BaseException] = []
    searches = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal searches
        with Engine(db) as reader:
            while not stop.is_set():
                try:
                    assert reader.search(paths[0]).matches[0].kind == "exact"
                    searches += 1
                except BaseException as error:  # noqa: BLE001 - any failure is the finding
                    errors.append(error)
                    return

    thread = threading.Thread(target=read)
    thread.start()
    rng = random.Random(7)
    try:
        for _ in range(3):
            writer = _index(tmp_path / "many", db, start_new_session=True)
            time.sleep(rng.uniform(2.0, 5.0))
            os.killpg(writer.pid, signal.SIGKILL)  # the CLI and its worker, mid-batch
            writer.communicate()
        _finish(_index(tmp_path / "many", db))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not errors, errors[0]
    assert searches > 0
    with Engine(db) as engine:
        assert engine.stats()["images"] == 30
        assert engine.stats()["index"]["fingerprints"] == 30
        assert engine.missing_signals() == {}
        _assert_all_found(engine, paths, tmp_path)


def _open_catalog_when_released(path: str, barrier) -> None:
    from picorigin._store.sqlite import SQLiteCatalog

    barrier.wait()
    SQLiteCatalog(Path(path)).close()


def test_processes_opening_one_new_folder_at_once_all_open_it(tmp_path):
    # Switching a new file to WAL needs it to itself, and SQLite refused the switch at once
    # ("database is locked", no busy timeout) to a second process opening the same new file:
    # two `index` runs started together on a new folder, one of them died.
    import multiprocessing

    context = multiprocessing.get_context("fork")
    failed = 0
    for round_ in range(30):
        path = str(tmp_path / f"{round_}.sqlite")
        barrier = context.Barrier(4)
        openers = [context.Process(target=_open_catalog_when_released, args=(path, barrier))
                   for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join(60)
        failed += sum(opener.exitcode != 0 for opener in openers)
    assert failed == 0
