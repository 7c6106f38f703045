"""``index --dask``: a real Dask cluster (``distributed.LocalCluster``, 2 worker processes on
127.0.0.1) analyses, this process commits; a killed worker loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest
from helpers import distinct_pictures
from PIL import Image

from picorigin import Engine, SettingError

distributed = pytest.importorskip("distributed")  # the dask extra; `make test` installs it

CLI = [sys.executable, "-m", "picorigin"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    return distinct_pictures(folder, [f"p{i:02d}" for i in range(30)], seed=5)


def _assert_each_once(engine: Engine, paths) -> None:
    assert engine.stats()["images"] == len(paths) and engine.stats()["locations"] == len(paths)
    assert engine.missing_signals() == {}  # every stage holds every image
    for path in paths:
        matches = engine.search(path, fast=True, kinds=["exact"]).matches
        assert [m.uri for m in matches] == [str(path.resolve())]


def test_a_cluster_indexes_every_stage_and_a_second_run_skips_all(cluster, pictures, tmp_path):
    folder = pictures[0].parent
    command = [*CLI, "index", str(folder), "--db", str(tmp_path / "db"), "--dask",
               cluster.scheduler_address]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "indexed 30, skipped 0, failed 0" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "indexed 0, skipped 30, failed 0" in second.stdout
    with Engine(tmp_path / "db") as engine:
        assert engine.stages == ["local", "deep"]
        _assert_each_once(engine, pictures)
        crop = tmp_path / "crop.jpg"
        with Image.open(pictures[7]) as image:
            image.crop((40, 30, 300, 220)).save(crop, quality=90)
        top = engine.search(crop).matches[0]
        assert top.kind == "partial" and top.uri == str(pictures[7].resolve())


def test_a_worker_killed_midway_loses_nothing_and_duplicates_nothing(cluster, pictures, tmp_path):
    pids = [nanny.process.process.pid for nanny in cluster.workers.values()]
    killed = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 6 and not killed.is_set():
            killed.set()
            os.kill(pids[0], signal.SIGKILL)  # batches running there go to the other

    with Engine(tmp_path / "db") as engine:
        report = engine.index([pictures[0].parent], progress=progress,
                              ingest=cluster.scheduler_address)
        assert killed.is_set(), "the worker was never killed: the test proves nothing"
        assert report.indexed == 30 and report.skipped == 0 and not report.failed
        assert seen[-1] == (30, 30) and [d for d, _ in seen] == list(range(31))
        _assert_each_once(engine, pictures)


def test_a_bad_file_fails_alone_and_a_bad_address_is_one_clear_error(cluster, tmp_path):
    paths = distinct_pictures(tmp_path / "mixed", ["a", "b", "c", "d"], seed=8)
    (tmp_path / "mixed" / "broken.jpg").write_bytes(b"\xff\xd8not a jpeg")
    with Engine(tmp_path / "db", settings={"stages": "", "ingest": "dask://"
                                           + cluster.scheduler_address[len("tcp://"):]}) as engine:
        report = engine.index([tmp_path / "mixed"])
        assert report.indexed == 4 and [s for s, _ in report.failed] == [
            str(tmp_path / "mixed" / "broken.jpg")]
        assert engine.stats()["images"] == len(paths)
        with pytest.raises(SettingError, match="not a Dask scheduler address"):
            engine.index([tmp_path / "mixed" / "new.jpg"], ingest="http://x")
    done = subprocess.run([*CLI, "index", str(paths[0]), "--db", str(tmp_path / "db2"),
                           "--dask", "tcp://127.0.0.1:9"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "cannot reach the Dask scheduler" in done.stderr
    assert "Traceback" not in done.stderr
