"""The binary-index contract, held by every backend: FAISS, the NumPy reference, and Milvus
(a BINARY_VECTOR collection with the HAMMING metric, in a real Milvus Lite)."""

import numpy as np
import pytest

from picorigin._index.faiss_binary import FaissBinaryIndex
from picorigin._index.memory import MemoryBinaryIndex
from picorigin._index.milvus import MilvusBinaryIndex

KINDS = ["faiss", "memory", "milvus"]


@pytest.fixture
def make(request):
    """``make(bits)``: an empty index of the kind the test is parametrised with."""
    kind = request.param
    if kind != "milvus":
        return {"faiss": FaissBinaryIndex, "memory": MemoryBinaryIndex}[kind]
    connection = request.getfixturevalue("milvus_connection")
    names = iter(range(100))
    return lambda bits: MilvusBinaryIndex(bits, connection, f"codes{next(names)}")


def _codes(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _flip(code, bits):
    out = np.unpackbits(code.copy())
    out[:bits] ^= 1
    return np.packbits(out)


@pytest.mark.parametrize("make", KINDS, indirect=True)
def test_radius_search_is_inclusive_and_exact(make):
    index = make(256)
    codes = _codes(50)
    index.add(np.arange(100, 150), codes)
    query = np.stack([_flip(codes[3], 10), _flip(codes[7], 11)])
    hits = index.search(query, 10)
    assert hits == [(0, 103, 10)]
    assert len(index) == 50


@pytest.mark.parametrize("make", KINDS, indirect=True)
def test_remove_then_search(make):
    index = make(256)
    codes = _codes(20)
    index.add(np.arange(20), codes)
    assert index.remove(np.array([5, 999])) == 1
    assert len(index) == 19
    assert index.search(codes[5:6], 0) == []
    assert index.search(codes[6:7], 0) == [(0, 6, 0)]


@pytest.mark.parametrize("make", ["faiss", "memory"], indirect=True)
def test_save_and_load_round_trip(make, tmp_path):
    # (a Milvus collection persists itself: see test_a_milvus_collection_outlives_its_client)
    index = make(256)
    codes = _codes(30)
    index.add(np.arange(30), codes)
    path = tmp_path / "index.bin"
    index.save(path)
    loaded = type(index).load(path, 256)
    assert len(loaded) == 30
    assert loaded.search(codes[:3], 0) == [(0, 0, 0), (1, 1, 0), (2, 2, 0)]


@pytest.mark.parametrize("make", ["faiss", "milvus"], indirect=True)
def test_agrees_with_the_reference_on_random_data(make):
    codes = _codes(2000, seed=1)
    queries = np.stack([_flip(codes[i], i % 40) for i in range(0, 2000, 100)])
    results = []
    for index in (make(256), MemoryBinaryIndex(256)):
        index.add(np.arange(2000), codes)
        index.remove(np.arange(0, 2000, 7))
        results.append(sorted(index.search(queries, 30)))
    assert results[0] == results[1]
    assert len(results[0]) > 5


@pytest.mark.parametrize("make", KINDS, indirect=True)
def test_empty_index_answers_nothing(make):
    assert make(256).search(_codes(1), 256) == []


def test_bits_must_be_whole_bytes():
    with pytest.raises(ValueError):
        MemoryBinaryIndex(12)
