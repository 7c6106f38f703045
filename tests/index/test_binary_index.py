import numpy as np
import pytest

from picorigin._index.faiss_binary import FaissBinaryIndex
from picorigin._index.memory import MemoryBinaryIndex

BACKENDS = [FaissBinaryIndex, MemoryBinaryIndex]


def _codes(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def _flip(code, bits):
    out = np.unpackbits(code.copy())
    out[:bits] ^= 1
    return np.packbits(out)


@pytest.mark.parametrize("backend", BACKENDS)
def test_radius_search_is_inclusive_and_exact(backend):
    index = backend(256)
    codes = _codes(50)
    index.add(np.arange(100, 150), codes)
    query = np.stack([_flip(codes[3], 10), _flip(codes[7], 11)])
    hits = index.search(query, 10)
    assert hits == [(0, 103, 10)]
    assert len(index) == 50


@pytest.mark.parametrize("backend", BACKENDS)
def test_remove_then_search(backend):
    index = backend(256)
    codes = _codes(20)
    index.add(np.arange(20), codes)
    assert index.remove(np.array([5, 999])) == 1
    assert len(index) == 19
    assert index.search(codes[5:6], 0) == []
    assert index.search(codes[6:7], 0) == [(0, 6, 0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_save_and_load_round_trip(backend, tmp_path):
    index = backend(256)
    codes = _codes(30)
    index.add(np.arange(30), codes)
    path = tmp_path / "index.bin"
    index.save(path)
    loaded = backend.load(path, 256)
    assert len(loaded) == 30
    assert loaded.search(codes[:3], 0) == [(0, 0, 0), (1, 1, 0), (2, 2, 0)]


def test_faiss_agrees_with_the_reference_on_random_data():
    codes = _codes(2000, seed=1)
    queries = np.stack([_flip(codes[i], i % 40) for i in range(0, 2000, 100)])
    results = []
    for backend in BACKENDS:
        index = backend(256)
        index.add(np.arange(2000), codes)
        index.remove(np.arange(0, 2000, 7))
        results.append(sorted(index.search(queries, 30)))
    assert results[0] == results[1]
    assert len(results[0]) > 5


def test_empty_index_answers_nothing():
    for backend in BACKENDS:
        assert backend(256).search(_codes(1), 256) == []


def test_bits_must_be_whole_bytes():
    with pytest.raises(ValueError):
        MemoryBinaryIndex(12)
