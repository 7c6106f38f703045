"""The int8 graph: exact int8 arithmetic on every CPU, and the load-time check against float."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
from helpers import photo

from picorigin._errors import StageUnavailable
from picorigin._features import deep

onnx = pytest.importorskip("onnx")
numpy_helper = onnx.numpy_helper
INT16_MAX = 32767


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    """A model folder with the float graph and a freshly quantised int8 graph."""
    try:
        source = deep.ensure_model()
    except StageUnavailable as error:
        pytest.skip(f"deep model unavailable: {error}")
    if source.name != deep.MODEL_FILE:
        pytest.skip("only the int8 graph is installed here")
    pytest.importorskip("skimage")
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(source, folder / deep.MODEL_FILE)
    deep.quantize_onnx(folder / deep.MODEL_FILE, folder / deep.QUANTIZED_FILE)
    return folder / deep.MODEL_FILE, folder / deep.QUANTIZED_FILE


def _vpmaddubsw(activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """x86 ``VPMADDUBSW`` then a 32-bit sum, as int8 GEMMs run without VNNI.

    Parameters
    ----------
    activations : ndarray of uint8, shape (n, k)
    weights : ndarray of int8, shape (k, m); k even

    Returns
    -------
    ndarray of int64, shape (n, m)
        Each adjacent pair of products ``a[2i] w[2i] + a[2i+1] w[2i+1]`` saturated to int16,
        then all pairs summed (the instruction's and the kernel's order).
    """
    a = activations.astype(np.int64)
    w = weights.astype(np.int64)
    pairs = a[:, 0::2, None] * w[None, 0::2] + a[:, 1::2, None] * w[None, 1::2]
    return np.clip(pairs, -INT16_MAX - 1, INT16_MAX).sum(axis=1)


def _quantised_weights(path) -> dict[str, np.ndarray]:
    """The int8 weight of each quantised Conv/Gemm, by node name, as (out, in * kh * kw)."""
    model = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {output: node for node in model.graph.node for output in node.output}
    out = {}
    for node in model.graph.node:
        source = producer.get(node.input[1]) if node.op_type in ("Conv", "Gemm") else None
        if source is not None and source.op_type == "DequantizeLinear":
            weight = init[source.input[0]]
            out[node.name] = weight.reshape(weight.shape[0], -1)
    return out


def test_no_weight_pair_can_saturate_a_16_bit_sum(graphs):
    weights = _quantised_weights(graphs[1])
    assert len(weights) >= 40  # all but the few convolutions kept in float
    for name, weight in weights.items():
        assert weight.dtype == np.int8, name
        # the worst any uint8 input can do to any pair of weights
        assert 255 * 2 * int(np.abs(weight.astype(np.int64)).max()) <= INT16_MAX, name


def test_eight_bit_weights_saturate_where_seven_bit_ones_cannot(graphs):
    name = "/_blocks.15/_project_conv/Conv"  # 1152 -> 320, a 1x1 convolution: a plain GEMM
    seven = _quantised_weights(graphs[1])[name].T  # (k, m)
    # the same weights at 8 bits, as the older graph had them: per channel, |w| <= 127
    eight = np.rint(seven * (127 / np.abs(seven).max(axis=0))).astype(np.int8)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (64, seven.shape[0]), dtype=np.uint8)]
    for weight in (seven, eight):  # the adversarial input: 255 where the weight is positive
        inputs.append(np.where(weight.T > 0, 255, 0).astype(np.uint8))
    for activations in inputs:
        exact = activations.astype(np.int64) @ seven.astype(np.int64)
        np.testing.assert_array_equal(_vpmaddubsw(activations, seven), exact)
    activations = inputs[-1]
    exact = activations.astype(np.int64) @ eight.astype(np.int64)
    wrong = _vpmaddubsw(activations, eight) != exact
    assert wrong.any()  # the bug the 7-bit weights remove


def test_int8_graph_agrees_with_the_float_one(graphs):
    float_graph, int8_graph = graphs
    names = ("coffee", "chelsea", "rocket", "astronaut", "immunohistochemistry")
    batch = np.stack([deep.preprocess(photo(n)) for n in names])
    float_features, float_logits = deep.run_network(batch, graph=float_graph)
    int8_features, int8_logits = deep.run_network(batch, graph=int8_graph)
    cosine = (deep.embed(float_features) * deep.embed(int8_features)).sum(axis=1)
    assert cosine.min() > 0.95
    assert float_logits[:2].argmax(1).tolist() == int8_logits[:2].argmax(1).tolist()


def test_check_set_holds_the_float_graphs_answers(graphs):
    cosine, labels = deep.check_graph(graphs[0])
    assert cosine > 0.9999 and labels
    assert [deep.class_names()[i] for i in deep._check_set()[2]] == ["espresso", "Egyptian cat"]
    # the bundled pixels are what preprocess makes of the scikit-image photos
    np.testing.assert_array_equal(deep.check_batch(),
                                  np.stack([deep.preprocess(photo(n)) for n in ("coffee",
                                                                                "chelsea")]))


def test_int8_graph_is_used_when_it_passes_the_check(graphs, monkeypatch):
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(graphs[0].parent))
    cosine, labels = deep.check_graph(graphs[1])
    assert cosine >= deep.CHECK_MIN_COSINE and labels
    assert deep.ensure_model(int8=True) == graphs[1]
    assert deep.ensure_model() == graphs[0]


def _broken_copy(source, target) -> None:
    """An int8 graph that computes something else: half the head's channels zeroed, as a
    saturating kernel might mangle them."""
    model = onnx.load(str(source))
    for tensor in model.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype == np.int8 and array.ndim == 4 and array.shape[:2] == (1280, 320):
            array = array.copy()
            array[::2] = 0
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    onnx.save(model, str(target))


def test_a_disagreeing_int8_graph_falls_back_to_the_float_one(graphs, tmp_path, monkeypatch,
                                                              caplog):
    _broken_copy(graphs[1], tmp_path / deep.QUANTIZED_FILE)
    cosine, _ = deep.check_graph(tmp_path / deep.QUANTIZED_FILE)
    assert cosine < deep.CHECK_MIN_COSINE
    monkeypatch.setenv("PICORIGIN_MODEL_DIR", str(tmp_path))
    # without the float graph there is nothing right to run: a clear error, not wrong answers
    with pytest.raises(StageUnavailable, match="wrong answers on this CPU"):
        deep.ensure_model(int8=True)
    shutil.copy(graphs[0], tmp_path / deep.MODEL_FILE)
    with caplog.at_level(logging.WARNING, logger="picorigin"):
        assert deep.ensure_model(int8=True) == tmp_path / deep.MODEL_FILE
        assert deep.ensure_model(int8=True) == tmp_path / deep.MODEL_FILE
    warned = [r for r in caplog.records if "disagrees with the float graph" in r.message]
    assert len(warned) == 1  # logged once, not on every call
