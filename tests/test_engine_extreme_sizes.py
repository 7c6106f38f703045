"""Indexing, searching and comparing a folder that mixes photos with strips and specks, with
every stage on: the strips once stopped ``index`` with a ``cv2.error`` traceback after 4 of 25."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import extreme_folder
from PIL import Image

from picorigin import Engine
from picorigin._cli import cli


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


@pytest.fixture(scope="module")
def collection(tmp_path_factory, photo_dir):
    root = tmp_path_factory.mktemp("extreme")
    files = extreme_folder(root, photo_dir)
    with Engine(root / "db", settings={"stages": "local,deep"}) as engine:
        assert set(engine.stats()["stages"]) == {"local", "deep"}  # every stage really on
        report = engine.index([str(root / "mixed")], workers=1)
        yield engine, files, report


def test_every_image_is_indexed(collection):
    engine, files, report = collection
    assert report.failed == [] and report.indexed == len(files) == 25
    assert engine.stats()["images"] == 25
    assert all(facts["missing"] == 0 for facts in engine.stats()["stages"].values())


def test_each_image_finds_itself(collection):
    engine, files, _ = collection
    for path in files:
        result = engine.search(str(path), k=5)
        assert result.matches[0].kind == "exact", path.name
        assert result.matches[0].uri == str(path)
        assert (result.width, result.height) == size_of(path)


def test_each_image_compares(collection):
    engine, files, _ = collection
    astronaut = next(p for p in files if p.name == "astronaut.jpg")
    for path in files:
        for a, b in ((path, path), (path, astronaut)):
            result = engine.compare(str(a), str(b))
            assert isinstance(result["matched"], bool) and result["inliers"] >= 0
        if min(size_of(path)) <= 8 and path.name != "noise_3x3.png":
            assert not engine.compare(str(path), str(path))["matched"]  # no keypoints at all


def test_cli_indexes_the_folder_with_worker_processes(tmp_path, photo_dir):
    files = extreme_folder(tmp_path, photo_dir)
    runner = CliRunner()
    db = tmp_path / "db"
    result = runner.invoke(cli, ["index", str(tmp_path / "mixed"), "--db", str(db), "-w", "2",
                                 "-s", "stages=local,deep"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "indexed 25, skipped 0, failed 0" in result.output
    thin = [str(p) for p in files if p.name.startswith(("noise_6x5000", "strip_8x4000"))]
    result = runner.invoke(cli, ["search", "--db", str(db), "-s", "stages=local,deep", *thin],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.count("exact") == 2
