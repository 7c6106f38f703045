"""LocalStage: crops, paste-ins, screenshots and mirrored copies; its index kept in step with the
catalog."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import close_stage, jpeg_bytes, open_stage, photo
from PIL import Image, ImageOps

from picorigin._imaging import decode
from picorigin._stages.local import LocalStage

NAMES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def signal(image: Image.Image, *, query: bool = False):
    """Decode as the engine does (reduced working image + original size), then compute."""
    decoded = decode(jpeg_bytes(image, 92), working_side=LocalStage.working_side)
    return LocalStage.compute(decoded.image, (decoded.width, decoded.height), query=query)


@pytest.fixture(scope="module")
def originals():
    # Enlarged so that decoding reduces them: boxes must come back in original pixels.
    return {i + 1: photo(name).resize((photo(name).width * 3, photo(name).height * 3))
            for i, name in enumerate(NAMES)}


@pytest.fixture(scope="module")
def signals(originals):
    return {key: signal(image) for key, image in originals.items()}


@pytest.fixture()
def stage(tmp_path, signals):
    stage, catalog = open_stage(LocalStage, tmp_path, signals)
    stage.add(list(signals), list(signals.values()))
    yield stage
    close_stage(stage, catalog)


def test_crop_is_found_with_boxes_in_original_pixels(stage, originals):
    astronaut = originals[1]  # 1536 x 1536
    box = (300, 600, 1100, 1400)
    hits = stage.search(signal(astronaut.crop(box), query=True), 5)
    assert [h["id"] for h in hits] == [1]
    hit = hits[0]
    assert hit["kind"] == "partial"
    assert hit["match_box"] == pytest.approx(list(box), abs=12)
    assert hit["query_box"] == pytest.approx([0, 0, 800, 800], abs=8)
    assert hit["match_overlap"] == pytest.approx(800 * 800 / 1536**2, abs=0.02)
    assert not hit["mirror"] and hit["inliers"] >= 12 and 0 < hit["score"] < 1
    assert len(hit["transform"]) == 3 and all(len(row) == 3 for row in hit["transform"])


def test_mirrored_screenshot_like_copy(stage, originals):
    canvas = Image.new("RGB", (1400, 1000), "white")
    canvas.paste(ImageOps.mirror(originals[3]).resize((900, 600)), (250, 200))
    hits = stage.search(signal(canvas, query=True), 5)
    assert hits and hits[0]["id"] == 3 and hits[0]["mirror"]
    assert hits[0]["kind"] == "partial"
    assert hits[0]["query_box"] == pytest.approx([250, 200, 1150, 800], abs=10)


def test_rotated_copy(stage, originals):
    rotated = originals[4].rotate(12, Image.Resampling.BICUBIC)
    hits = stage.search(signal(rotated, query=True), 5)
    assert hits[0]["id"] == 4 and hits[0]["rotation"] == pytest.approx(12, abs=1.5)


def test_unknown_photos_find_nothing(stage):
    for name in ("camera", "coins", "moon"):
        assert stage.search(signal(photo(name), query=True), 5) == []


def test_remove(stage, originals):
    query = signal(originals[2].crop((0, 0, 900, 700)), query=True)
    assert stage.search(query, 5)[0]["id"] == 2
    stage.catalog.remove_image(2)
    assert all(h["id"] != 2 for h in stage.search(query, 5))
    assert stage.stats()["images"] == 5


def test_candidates_restrict_verification(stage, originals):
    query = signal(originals[1], query=True)
    assert [h["id"] for h in stage.search(query, 5, candidates=[1, 2])] == [1]
    assert stage.search(query, 5, candidates=[2, 3]) == []


def test_checkpoint_and_reopen(tmp_path, signals, originals):
    query = signal(originals[5].crop((200, 200, 1200, 1200)), query=True)
    first, catalog = open_stage(LocalStage, tmp_path, [5])
    first.add([5], [signals[5]])
    first.search(query, 1)  # loads the index
    close_stage(first, catalog)
    assert len(list((tmp_path / "indexes").glob("local-*.ckpt"))) == 1
    second, catalog = open_stage(LocalStage, tmp_path)
    assert [h["id"] for h in second.search(query, 3)] == [5]
    assert second.store.stats()["checkpoint"] > 0  # loaded, not rebuilt
    close_stage(second, catalog)


def test_commits_survive_a_crash(tmp_path, signals, originals):
    first, catalog = open_stage(LocalStage, tmp_path, [1, 6])
    first.add([1], [signals[1]])
    first.search(signal(originals[1], query=True), 1)  # loads the index
    first.save(force=True)  # a checkpoint holding image 1 only
    first.add([6], [signals[6]])
    catalog.close()  # the process dies: no checkpoint for image 6
    second, catalog = open_stage(LocalStage, tmp_path)
    hits = second.search(signal(originals[6].crop((0, 0, 1500, 1300)), query=True), 3)
    assert [h["id"] for h in hits] == [6]
    assert second.stats()["images"] == 2
    close_stage(second, catalog)


def test_stats(stage):
    stats = stage.stats()
    assert stats["images"] == len(NAMES)
    assert stats["entries"] == len(NAMES)  # in the inverted file
    assert stats["bytes_in_ram"] > stats["bytes_per_image_in_ram"] > 0
    assert stats["vocabulary"]["words"] >= 10_000 and not stats["vocabulary"]["trained_here"]


def test_train_vocabulary_requantizes(tmp_path, signals, originals):
    stage, catalog = open_stage(LocalStage, tmp_path, signals)
    stage.add(list(signals), list(signals.values()))
    before = stage.stats()["vocabulary"]["digest"]
    report = stage.train_vocabulary(branching=6, depth=3)
    assert report["words"] == 216 and report["images"] == len(NAMES)
    assert stage.stats()["vocabulary"]["digest"] == report["vocabulary"] != before
    hits = stage.search(signal(originals[4].crop((100, 100, 1000, 900)), query=True), 3)
    assert hits[0]["id"] == 4
    close_stage(stage, catalog)
    reopened, catalog = open_stage(LocalStage, tmp_path)
    assert reopened.stats()["vocabulary"]["trained_here"]
    assert reopened.stats()["vocabulary"]["digest"] == report["vocabulary"]
    assert reopened.search(signal(originals[2].crop((0, 0, 900, 700)), query=True), 3)[0]["id"] == 2
    close_stage(reopened, catalog)


def _opencv_pair() -> tuple[Path, Path] | None:
    candidates = [os.environ.get("PICORIGIN_OPENCV_DATA", ""),
                  str(Path(__file__).parent / "data"),
                  "/usr/share/doc/opencv-doc/examples/data",
                  str(Path("~/.cache/picorigin-bench/local-opencv-doc/root/usr/share/doc/"
                           "opencv-doc/examples/data").expanduser())]
    for folder in candidates:
        if folder and (Path(folder) / "box_in_scene.png").exists():
            return Path(folder) / "box.png", Path(folder) / "box_in_scene.png"
    return None


@pytest.mark.skipif(_opencv_pair() is None,
                    reason="OpenCV's box.png / box_in_scene.png absent (tests/data or opencv-doc)")
def test_real_object_in_a_cluttered_scene(tmp_path):
    box, scene = _opencv_pair()
    stage, catalog = open_stage(LocalStage, tmp_path, [1])
    stage.add([1], [signal(Image.open(box).convert("RGB"))])
    hits = stage.search(signal(Image.open(scene).convert("RGB"), query=True), 3)
    close_stage(stage, catalog)
    assert hits and hits[0]["id"] == 1 and hits[0]["kind"] == "partial"
    # The box's outline in the scene, read off the picture by eye.
    x0, y0, x1, y1 = hits[0]["query_box"]
    assert abs(x0 - 100) < 20 and abs(y0 - 160) < 20 and abs(x1 - 272) < 25 and abs(y1 - 300) < 25
    assert hits[0]["match_overlap"] > 0.8
    assert np.isfinite(hits[0]["rotation"])
