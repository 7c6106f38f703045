"""The FAISS dense index: exact while small, IVF-SQ8 when large; add, remove, filter, persist.
The contract both dense backends keep (add replaces, remove, fewer than k, allowed ids) runs
against Milvus too (a FLOAT_VECTOR collection, FLAT, inner product, in a real Milvus Lite)."""

from __future__ import annotations

import numpy as np
import pytest

from picorigin._index.faiss_dense import DenseIndex
from picorigin._index.milvus import MilvusDenseIndex

DIM = 64


@pytest.fixture(params=["faiss", "milvus"])
def make(request):
    """``make()``: an empty dense index of DIM dimensions, of each backend."""
    if request.param == "faiss":
        return lambda: DenseIndex(DIM)
    connection = request.getfixturevalue("milvus_connection")
    names = iter(range(100))
    return lambda: MilvusDenseIndex(DIM, connection, f"dense{next(names)}")


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 centres: closer to real descriptors than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, DIM))
    return _unit(centres[rng.integers(0, 40, n)] + 0.6 * rng.standard_normal((n, DIM)))


def _exact(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]]


def test_empty_index_returns_nothing(make):
    index = make()
    similarities, ids = index.search(_clustered(2), 5)
    assert ids.shape == (2, 5) and (ids == -1).all() and np.isneginf(similarities).all()


def test_flat_search_is_exact_and_add_replaces(make):
    vectors = _clustered(300)
    ids = np.arange(300, dtype=np.int64) * 7 + 3
    index = make()
    index.add(ids, vectors)
    assert index.kind in ("flat", "milvus FLAT") and len(index) == 300
    similarities, found = index.search(vectors[:20], 10)
    np.testing.assert_array_equal(found, _exact(vectors, ids, vectors[:20], 10))
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-5)
    # adding an id again replaces its vector
    index.add(ids[:1], vectors[1:2])
    assert len(index) == 300
    _, found = index.search(vectors[1:2], 2)
    assert set(found[0]) == {ids[0], ids[1]}


def test_remove_and_fewer_than_k(make):
    vectors = _clustered(5)
    index = make()
    index.add(np.arange(5), vectors)
    assert index.remove(np.array([1, 3, 99])) == 2
    similarities, found = index.search(vectors[1:2], 4)
    assert sorted(found[0][:3]) == [0, 2, 4] and found[0][3] == -1
    assert np.isneginf(similarities[0][3])


def test_allowed_ids_restrict_the_answer(make):
    vectors = _clustered(400)
    ids = np.arange(400, dtype=np.int64)
    index = make()
    index.add(ids, vectors)
    allowed = np.array([5, 50, 150, 250, 12345])  # one id that is not stored
    _, found = index.search(vectors[:3], 10, allowed=allowed)
    assert set(found[found >= 0]) <= {5, 50, 150, 250}
    np.testing.assert_array_equal(found[:, :4], _exact(vectors[allowed[:4]], allowed[:4],
                                                       vectors[:3], 4))


def test_becomes_ivf_when_large_and_keeps_recall():
    vectors, queries = np.split(_clustered(6100, seed=1), [6000])
    ids = np.arange(6000, dtype=np.int64) + 1000
    index = DenseIndex(DIM, flat_max=1000, nprobe=16)
    index.add(ids[:800], vectors[:800])
    assert index.kind == "flat"
    index.add(ids[800:], vectors[800:])
    assert index.kind == "ivf" and len(index) == 6000
    _, found = index.search(queries, 10)
    truth = _exact(vectors, ids, queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)])
    assert recall >= 0.9
    # removal and filtering work on the IVF layout too
    assert index.remove(ids[:10]) == 10
    _, found = index.search(vectors[:10], 10)
    assert not set(found.ravel()) & set(ids[:10])
    _, found = index.search(vectors[20:21], 3, allowed=ids[20:23])
    assert set(found[0]) == set(ids[20:23])


def test_items_return_what_was_stored():
    vectors = _clustered(50)
    index = DenseIndex(DIM)
    index.add(np.arange(50) * 2, vectors)
    index.remove(np.array([0, 2]))
    ids, stored = index.items()
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], np.arange(2, 50) * 2)
    np.testing.assert_allclose(stored[order], vectors[2:], atol=1e-6)


@pytest.mark.parametrize("n, flat_max", [(200, 1000), (3000, 500)])
def test_save_and_load_give_the_same_answers(tmp_path, n, flat_max):
    vectors = _clustered(n)
    index = DenseIndex(DIM, flat_max=flat_max, nprobe=8)
    index.add(np.arange(n), vectors)
    index.save(tmp_path / "dense.faiss")
    loaded = DenseIndex.load(tmp_path / "dense.faiss", flat_max=flat_max, nprobe=8)
    assert loaded.kind == index.kind and len(loaded) == n
    before = index.search(vectors[:10], 5)
    after = loaded.search(vectors[:10], 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0])
    assert loaded.memory_bytes() > 0
    loaded.remove(np.array([0]))  # a loaded IVF index still removes (hashtable direct map)
    assert len(loaded) == n - 1


def test_nprobe_is_tuned_to_the_collection():
    vectors, queries = np.split(_clustered(8100, seed=3), [8000])
    index = DenseIndex(DIM, flat_max=2000)
    index.add(np.arange(8000), vectors)
    assert index.kind == "ivf" and 8 <= index.nprobe <= index._index.nlist
    _, found = index.search(queries, 10)
    truth = _exact(vectors, np.arange(8000), queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]) >= 0.9
    # structureless vectors need many more probes than clustered ones for the same recall
    noise = _unit(np.random.default_rng(5).standard_normal((8000, DIM)))
    hard = DenseIndex(DIM, flat_max=2000)
    hard.add(np.arange(8000), noise)
    assert hard.nprobe > index.nprobe
