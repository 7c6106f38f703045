"""``index --dask``: a real Dask cluster (``distributed.LocalCluster``, 2 worker processes on
127.0.0.1) analyses, this process commits; a killed worker loses and duplicates nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from helpers import distinct_pictures, run_on_a_terminal
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


def test_a_worker_killed_midway_on_the_command_line(cluster, pictures, tmp_path):
    """The bar of the issue in the small: ``index --dask`` with a worker SIGKILLed midway
    indexes every picture once with every stage, draws the bar and summary as a local run
    does, and a second run skips all."""
    folder, n = str(pictures[0].parent), len(pictures)
    with distributed.Client(cluster, set_as_default=False) as client:
        pids = client.run(os.getpid)
        killed = []

        def kill_one(done, total):
            if done > 0 and not killed:  # a batch is back; the others are still out
                busy = client.processing()
                address = max(busy, key=lambda a: len(busy[a]))
                killed.append(len(busy[address]))  # batches running there go to the other
                os.kill(pids[address], signal.SIGKILL)

        status, out, frames, other = run_on_a_terminal(
            [*CLI, "index", folder, "--db", str(tmp_path / "dask"), "--dask",
             cluster.scheduler_address], on_frame=kill_one)
        assert killed and killed[0] > 0, "no worker was killed while busy: the test proves nothing"
        client.wait_for_workers(2, timeout=60)  # the nanny replaces it, for the next tests
    assert status == 0 and other == "", (status, other)  # nothing but the bar on stderr
    assert out.startswith(f"indexed {n}, skipped 0, failed 0 in ")
    local = run_on_a_terminal([*CLI, "index", folder, "--db", str(tmp_path / "local")])
    assert local[0] == 0 and local[1].startswith(f"indexed {n}, skipped 0, failed 0 in ")
    assert frames == local[2] == [(done, n) for done in range(n + 1)]  # one frame a file
    status, out, frames, other = run_on_a_terminal(
        [*CLI, "index", folder, "--db", str(tmp_path / "dask"), "--dask",
         cluster.scheduler_address])
    assert (status, frames, other) == (0, [(n, n)], "")
    assert out.startswith(f"indexed 0, skipped {n}, failed 0 in ")
    with Engine(tmp_path / "dask") as engine:
        assert engine.stages == ["local", "deep"]
        _assert_each_once(engine, pictures)
        crop = tmp_path / "crop.jpg"
        with Image.open(pictures[7]) as image:
            image.crop((40, 30, 300, 220)).save(crop, quality=90)
        top = engine.search(crop).matches[0]
        assert top.kind == "partial" and top.uri == str(pictures[7].resolve())


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
