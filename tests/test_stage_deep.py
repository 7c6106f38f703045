"""DeepStage: stored in the catalog, searched with FAISS; label and colour filters; crash safety."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
from helpers import close_stage, open_stage, photo
from PIL import Image

from picorigin._errors import SettingError, StageUnavailable
from picorigin._features import colour
from picorigin._stages.deep import DIM, DeepSignal, DeepStage, calibrated, label_classes

RED = colour.compute(Image.new("RGB", (20, 20), (210, 30, 30)))
BLUE = colour.compute(Image.new("RGB", (20, 20), (30, 60, 200)))


def _signals(n: int, seed: int = 0, labels=((281, 0.8), (282, 0.1))) -> list[DeepSignal]:
    """Synthetic signals (no network needed): random unit descriptors."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [DeepSignal(v, tuple(labels), RED if i % 2 else BLUE) for i, v in enumerate(vectors)]


def _ids(hits: list[dict]) -> list[int]:
    return [hit["id"] for hit in hits]


IDS = range(0, 130)


@pytest.fixture
def stage(tmp_path):
    opened, catalog = open_stage(DeepStage, tmp_path, IDS)
    yield opened
    close_stage(opened, catalog)


def test_add_search_remove(stage):
    signals = _signals(30)
    stage.add(list(range(100, 130)), signals)
    hits = stage.search(signals[7], 5)
    assert hits[0]["id"] == 107 and hits[0]["kind"] == "similar"
    assert hits[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert all(0.0 <= hit["score"] <= 1.0 for hit in hits)
    assert [hit["score"] for hit in hits] == sorted((hit["score"] for hit in hits), reverse=True)
    assert hits[0]["labels"][0]["name"] == "tabby" and hits[0]["palette"][0]["hex"].startswith("#")
    json.dumps(hits)  # JSON-able as it is
    stage.catalog.remove_image(107)
    assert 107 not in _ids(stage.search(signals[7], 30))
    assert stage.stats()["images"] == 29


def test_candidates_and_min_score(stage):
    signals = _signals(20)
    stage.add(list(range(20)), signals)
    assert set(_ids(stage.search(signals[0], 10, candidates=[3, 4, 5]))) == {3, 4, 5}
    strict = stage.search(signals[0], 10, min_score=0.99)
    assert _ids(strict) == [0]


def test_label_filter(stage):
    cats = _signals(4, seed=1, labels=((285, 0.7), (281, 0.2)))  # Egyptian cat, tabby
    dogs = _signals(4, seed=2, labels=((207, 0.6), (208, 0.3)))  # golden and Labrador retriever
    espresso = _signals(2, seed=3, labels=((967, 0.9), (968, 0.05)))
    stage.add(list(range(4)), cats)
    stage.add(list(range(10, 14)), dogs)
    stage.add([20, 21], espresso)
    assert set(_ids(stage.search(cats[0], 20, label="dog"))) == {10, 11, 12, 13}
    assert set(_ids(stage.search(cats[0], 20, label="Cats"))) == {0, 1, 2, 3}
    assert set(_ids(stage.search(cats[0], 20, label="golden retriever"))) == {10, 11, 12, 13}
    assert set(_ids(stage.search(cats[0], 20, label="espresso"))) == {20, 21}
    assert stage.search(cats[0], 20, label="cup") == []  # 0.05 < the 0.2 mass needed
    assert stage.search(cats[0], 20, label="no such thing") == []


def test_label_classes_names_and_groups():
    assert len(label_classes("dog")) == 118 and label_classes("dogs") == label_classes("dog")
    assert label_classes("squirrel") == {335, 382}  # fox squirrel, squirrel monkey
    assert 948 in label_classes("apple") and 281 in label_classes("cat")


def test_colour_filter(stage):
    signals = _signals(10)  # odd ids red, even blue
    stage.add(list(range(10)), signals)
    reds = stage.search(signals[0], 10, colour="red")
    assert set(_ids(reds)) == {1, 3, 5, 7, 9} and all(h["colour_match"] > 0.5 for h in reds)
    assert set(_ids(stage.search(signals[0], 10, colour="#1e3cc8"))) == {0, 2, 4, 6, 8}
    with pytest.raises(SettingError):
        stage.search(signals[0], 10, colour="not-a-colour")


def test_everything_committed_survives_a_crash(tmp_path):
    signals = _signals(50)
    first, catalog = open_stage(DeepStage, tmp_path, IDS)
    first.add(list(range(30)), signals[:30])
    first.search(signals[0], 1)  # load the index
    first.save(force=True)
    first.add(list(range(30, 50)), signals[30:])  # committed, never checkpointed
    catalog.remove_image(5)
    catalog.close()  # no stage.close(): as if the process died here
    again, catalog = open_stage(DeepStage, tmp_path)
    assert _ids(again.search(signals[40], 1)) == [40]
    assert 5 not in _ids(again.search(signals[5], 50))
    assert again.stats()["images"] == 49
    close_stage(again, catalog)


def test_missing_or_corrupt_checkpoint_is_rebuilt(tmp_path):
    signals = _signals(12)
    stage, catalog = open_stage(DeepStage, tmp_path, IDS)
    stage.add(list(range(12)), signals)
    stage.search(signals[0], 1)
    close_stage(stage, catalog)
    (checkpoint,) = (tmp_path / "indexes").glob("deep-*.ckpt")
    checkpoint.write_bytes(b"not an index")
    stage, catalog = open_stage(DeepStage, tmp_path)
    assert _ids(stage.search(signals[3], 1)) == [3]
    close_stage(stage, catalog)
    for path in (tmp_path / "indexes").glob("deep-*.ckpt"):
        path.unlink()
    stage, catalog = open_stage(DeepStage, tmp_path)
    assert _ids(stage.search(signals[4], 1)) == [4]
    close_stage(stage, catalog)


def test_a_reader_sees_a_writers_commits_and_checkpoints(tmp_path):
    signals = _signals(20)
    writer, writer_catalog = open_stage(DeepStage, tmp_path, IDS)
    reader, reader_catalog = open_stage(DeepStage, tmp_path)
    writer.add(list(range(10)), signals[:10])
    assert _ids(reader.search(signals[3], 1)) == [3]
    writer.add(list(range(10, 20)), signals[10:])
    writer.search(signals[0], 1)
    writer.save(force=True)  # prunes the log the reader has not applied yet
    writer_catalog.remove_image(3)
    assert _ids(reader.search(signals[15], 1)) == [15]
    assert 3 not in _ids(reader.search(signals[3], 20))
    close_stage(writer, writer_catalog)
    close_stage(reader, reader_catalog)


def test_stats_and_sizes(stage):
    assert stage.stats()["images"] == 0
    stage.add([1, 2], _signals(2))
    stage.search(_signals(1)[0], 1)
    stats = stage.stats()
    assert stats["images"] == 2 and stats["index"] == "flat"
    assert stats["bytes_in_ram"] > 2 * DIM * 4


def test_calibration_is_monotone_and_bounded():
    scores = calibrated(np.linspace(-1, 1, 41))
    assert np.all(np.diff(scores) > 0) and scores[0] < 0.01 and scores[-1] > 0.99


# -- with the real network -----------------------------------------------------------------


@pytest.fixture(scope="module")
def usable():
    try:
        DeepStage.check()
    except StageUnavailable as error:
        pytest.skip(f"deep model unavailable: {error}")


def _jpeg_variant(image: Image.Image) -> Image.Image:
    width, height = image.size
    image = image.crop((width // 10, 0, width, height - height // 10))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=55)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_real_photos_end_to_end(usable, tmp_path):
    names = ("coffee", "chelsea", "rocket", "astronaut", "immunohistochemistry")
    signals = DeepStage.compute_batch([photo(n) for n in names])
    assert pickle.loads(pickle.dumps(signals[0])).labels == signals[0].labels  # crosses processes
    stage, catalog = open_stage(DeepStage, tmp_path, IDS)
    stage.add(list(range(len(names))), signals)
    query = DeepStage.compute(_jpeg_variant(photo("chelsea")))
    hits = stage.search(query, 3)
    assert hits[0]["id"] == 1 and hits[0]["score"] > 0.9
    assert hits[1]["score"] < hits[0]["score"]
    assert stage.search(query, 3, label="cat")[0]["id"] == 1
    assert _ids(stage.search(query, 5, label="espresso")) == [0]
    described = DeepStage.describe(query)
    assert "cat" in described["labels"][0]["name"]
    assert described["palette"] and json.dumps(described)
    assert stage.details([0, 42]) == {0: {"labels": stage.search(
        signals[0], 1)[0]["labels"], "palette": colour.to_json(signals[0].palette)}}
    close_stage(stage, catalog)
