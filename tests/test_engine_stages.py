"""The engine with its stages: partial copies with boxes, similar images, labels, filters."""

import pytest
from helpers import PHOTOS, jpeg_bytes, photo

from picorigin import Engine, StageUnavailable


@pytest.fixture(scope="module")
def engine(tmp_path_factory, photo_dir):
    engine = Engine(tmp_path_factory.mktemp("db"))
    if "deep" not in engine.stages:
        pytest.fail(f"the deep stage should run in the test environment: {engine.stages_off}")
    engine.index([photo_dir], workers=1)
    yield engine
    engine.close()


def test_all_stages_run(engine):
    assert engine.stages == ["local", "deep"]
    assert engine.search(jpeg_bytes(photo("coffee"))).stages == [
        "exact", "fingerprint", "local", "deep",
    ]


def test_a_crop_is_partial_with_the_region_it_came_from(engine):
    original = photo("astronaut")  # 512 x 512
    crop = original.crop((120, 40, 400, 330))
    result = engine.search(jpeg_bytes(crop, 85))
    top = result.matches[0]
    assert top.kind == "partial" and top.uri.endswith("astronaut.jpg")
    x0, y0, x1, y1 = top.extra["match_box"]
    assert abs(x0 - 120) < 12 and abs(y0 - 40) < 12 and abs(x1 - 400) < 12 and abs(y1 - 330) < 12
    assert top.extra["query_box"][2] >= crop.width - 12
    assert 0.25 < top.extra["match_overlap"] < 0.4
    assert abs(top.extra["rotation"]) < 2 and abs(top.extra["scale"] - 1) < 0.05
    assert top.larger_than_query


def test_a_mirrored_crop_is_found_and_called_mirrored(engine):
    from PIL import ImageOps

    crop = ImageOps.mirror(photo("coffee").crop((50, 20, 450, 330)))
    top = engine.search(jpeg_bytes(crop)).matches[0]
    assert top.kind == "partial" and top.uri.endswith("coffee.jpg")
    assert top.extra["mirror"] is True


def test_unknown_photo_gets_similar_images_but_no_copy(engine):
    result = engine.search(jpeg_bytes(photo("camera")))
    assert result.copies == []
    assert result.extra["labels"] and result.extra["labels"][0]["p"] > 0
    assert all(m.kind == "similar" for m in result.matches)


def test_copies_come_before_similar_and_never_twice(engine):
    result = engine.search(jpeg_bytes(photo("chelsea"), 40), k=len(PHOTOS))
    kinds = [m.kind for m in result.matches]
    assert kinds[0] == "near_duplicate"
    assert kinds == sorted(kinds, key=["exact", "near_duplicate", "partial", "similar"].index)
    ids = [m.id for m in result.matches]
    assert len(ids) == len(set(ids))
    assert "labels" in result.matches[0].extra  # copies carry their labels too


def test_best_guess_labels_on_real_photos(engine):
    coffee = engine.search(jpeg_bytes(photo("coffee"))).extra["labels"]
    assert coffee[0]["name"] == "espresso"
    cat = engine.search(jpeg_bytes(photo("chelsea"))).extra["labels"]
    assert "cat" in cat[0]["name"]


def test_label_filter(engine):
    result = engine.search(jpeg_bytes(photo("chelsea"), 40), label="espresso")
    assert [m.uri.rsplit("/", 1)[-1] for m in result.matches] == ["coffee.jpg"]
    assert result.matches[0].kind == "similar"


def test_fast_path_is_fingerprint_only(engine):
    crop = photo("astronaut").crop((120, 40, 400, 330))
    result = engine.search(jpeg_bytes(crop), fast=True)
    assert result.stages == ["exact", "fingerprint"]
    assert result.matches == []
    assert engine.search(jpeg_bytes(photo("rocket"), 30), fast=True).matches[0].kind == "near_duplicate"


def test_removed_images_leave_every_stage(tmp_path, photo_dir):
    with Engine(tmp_path / "db") as engine:
        engine.index([photo_dir], workers=1)
        crop = jpeg_bytes(photo("rocket").crop((100, 50, 500, 400)))
        image_id = engine.search(crop).matches[0].id
        engine.remove(image_id)
        result = engine.search(crop)
        assert image_id not in {m.id for m in result.matches}


def test_without_the_deep_extra_search_works_and_says_so(tmp_path, photo_dir, monkeypatch):
    from picorigin._features import deep

    def unavailable():
        raise StageUnavailable("the deep stage needs onnxruntime: pip install 'picorigin[deep]'")

    monkeypatch.setattr(deep, "ensure_model", unavailable)
    with Engine(tmp_path / "db") as engine:
        assert engine.stages == ["local"]
        engine.index([photo_dir], workers=1)
        result = engine.search(jpeg_bytes(photo("coffee"), 30))
        assert result.matches[0].kind == "near_duplicate"
        assert "pip install" in result.extra["stages_off"]["deep"]
        with pytest.raises(StageUnavailable):
            engine.search(jpeg_bytes(photo("coffee")), label="cup")


def test_reindex_fills_a_stage_enabled_later(tmp_path, photo_dir):
    with Engine(tmp_path / "db", settings={"stages": ""}) as engine:
        engine.index([photo_dir], workers=1)
    with Engine(tmp_path / "db") as engine:
        assert engine.missing_signals() == {
            name: sorted(engine._catalog.all_ids()) for name in ("local", "deep")
        }
        assert engine.stats()["stages"]["local"]["missing"] == len(PHOTOS)
        crop = jpeg_bytes(photo("rocket").crop((100, 50, 500, 400)))
        assert engine.search(crop).copies == []
        report = engine.reindex()
        assert (report.indexed, report.failed) == (len(PHOTOS), [])
        assert engine.missing_signals() == {}
        assert engine.search(crop).matches[0].kind == "partial"


def test_batched_analysis_matches_one_at_a_time(photo_dir, tmp_path):
    import numpy as np

    from picorigin._ingest.analyse import analyse, analyse_batch
    from picorigin._settings import resolve_settings

    settings = resolve_settings({})
    paths = [str(photo_dir / f"{name}.jpg") for name in PHOTOS[:3]]
    (tmp_path / "bad.jpg").write_bytes(b"no image")
    batch = analyse_batch([*paths, str(tmp_path / "bad.jpg")], settings, stages=("local", "deep"))
    assert batch[-1].reason and all(r.pending is None for r in batch[:-1])
    for path, batched in zip(paths, batch):
        alone = analyse(path, settings, stages=("local", "deep"))
        a, b = alone.signals["deep"].embedding, batched.signals["deep"].embedding
        assert float(np.dot(a, b)) > 0.99
        assert np.array_equal(alone.signals["fingerprint"].code, batched.signals["fingerprint"].code)
        assert set(batched.signals) == {"fingerprint", "local", "deep"}


def test_local_confirm_verifies_only_real_copies(engine):
    from picorigin._imaging import decode

    local = engine.stage("local")
    images = engine.list_images(limit=50)["images"]
    ids = {record["uris"][0].rsplit("/", 1)[-1]: record["id"] for record in images}
    crop = decode(jpeg_bytes(photo("rocket").crop((200, 100, 520, 360))), working_side=800)
    signal = local.compute(crop.image, (crop.width, crop.height), query=True)
    hits = local.confirm(signal, [ids["rocket.jpg"], ids["coffee.jpg"]], min_inliers=8)
    assert [h["id"] for h in hits] == [ids["rocket.jpg"]]
    assert hits[0]["kind"] == "partial" and hits[0]["inliers"] >= 8


def test_a_photo_in_a_screenshot_is_partial_with_its_box(engine):
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (750, 1334), "white")
    draw = ImageDraw.Draw(page)
    draw.rectangle((0, 0, 750, 130), fill=(246, 246, 246))
    draw.text((30, 50), "gallery.example", fill="black")
    for y in range(760, 1240, 36):
        draw.text((30, y), "lorem ipsum dolor sit amet consectetur " * 2, fill=(30, 30, 30))
    shown = photo("chelsea").resize((750, 524))
    page.paste(shown, (0, 170))
    top = engine.search(jpeg_bytes(page, 80)).copies[0]
    assert top.kind == "partial" and top.uri.endswith("chelsea.jpg")
    assert all(abs(a - b) <= 12 for a, b in zip(top.extra["query_box"], (0, 170, 750, 694)))
    assert top.extra["match_overlap"] > 0.9
    assert top.extra["query_overlap"] == pytest.approx(524 / 1334, abs=0.03)


def test_a_crop_too_plain_for_keypoints_is_located_by_its_pixels(engine):
    # The right edge of chelsea.jpg: defocused background, no ORB corners to match.
    strip = photo("chelsea").crop((338, 0, 451, 300))
    top = engine.search(jpeg_bytes(strip, 90)).copies[0]
    assert top.kind == "partial" and top.uri.endswith("chelsea.jpg")
    assert all(abs(a - b) <= 6 for a, b in zip(top.extra["match_box"], (338, 0, 451, 300)))
