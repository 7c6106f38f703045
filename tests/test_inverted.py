"""Vocabulary tree and tf-idf inverted file: training, quantisation, add/delete, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import photo

from picorigin._features import local
from picorigin._index.inverted import InvertedFile, Vocabulary, tfidf, train_vocabulary


@pytest.fixture(scope="module")
def descriptor_sets():
    names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
    return {name: local.compute(photo(name)).descriptors for name in names}


@pytest.fixture(scope="module")
def vocabulary(descriptor_sets):
    return train_vocabulary(list(descriptor_sets.values()), branching=4, depth=3, seed=1)


def test_training_builds_a_full_tree_with_idf(vocabulary):
    assert vocabulary.n_words == 64
    assert vocabulary.centers.shape == (4 + 16 + 64, 32)
    assert vocabulary.valid[:4].all()
    assert vocabulary.idf.shape == (64,) and (vocabulary.idf >= 0).all()
    # idf = ln(5 images / images with the word): 0 for words every image has.
    assert vocabulary.idf.max() <= np.log(5) + 1e-6 and (vocabulary.idf == 0).any()
    assert vocabulary.idf.max() > 0


def test_quantize_walks_to_the_nearest_leaf(vocabulary):
    leaves = vocabulary.centers[-64:]
    valid = np.flatnonzero(vocabulary.valid[-64:])
    words = vocabulary.quantize(leaves[valid])
    # A leaf centre may sit in a sibling's cell higher up, but most land on themselves.
    assert np.mean(words == valid) > 0.8
    assert vocabulary.quantize(np.zeros((0, 32), np.uint8)).shape == (0,)
    assert vocabulary.quantize(leaves[valid], level=1).max() < 4


def test_training_is_reproducible(descriptor_sets, vocabulary):
    again = train_vocabulary(list(descriptor_sets.values()), branching=4, depth=3, seed=1)
    assert again.digest() == vocabulary.digest()


def test_vocabulary_round_trip(tmp_path, vocabulary):
    path = tmp_path / "v.npz"
    vocabulary.save(path)
    loaded = Vocabulary.load(path)
    assert loaded.branching == 4 and loaded.depth == 3
    assert np.array_equal(loaded.centers, vocabulary.centers)
    assert np.array_equal(loaded.valid, vocabulary.valid)
    # idf is stored as float16: same words, near-identical weights.
    assert np.allclose(loaded.idf, vocabulary.idf, atol=2e-3)


def test_default_vocabulary_ships_and_is_small():
    from picorigin._stages.local import default_vocabulary_path

    path = default_vocabulary_path()
    with path.open("rb") as file:
        vocabulary = Vocabulary.load(file)
    assert vocabulary.n_words >= 10_000
    assert len(path.read_bytes()) <= 2_000_000
    assert "Debian" in vocabulary.source


def test_tfidf_is_l1_normalised():
    idf = np.array([0.0, 1.0, 2.0, 1.0], np.float32)
    words, weights = tfidf(np.array([0, 1, 1, 2]), idf)
    assert words.tolist() == [1, 2]  # word 0 weighs nothing
    assert weights.tolist() == pytest.approx([0.5, 0.5])


def _index(vocabulary, descriptor_sets):
    inverted = InvertedFile(vocabulary.idf)
    for i, descriptors in enumerate(descriptor_sets.values()):
        inverted.add(i + 10, vocabulary.quantize(descriptors))
    return inverted


def test_query_ranks_the_same_image_first(vocabulary, descriptor_sets):
    inverted = _index(vocabulary, descriptor_sets)
    for i, descriptors in enumerate(descriptor_sets.values()):
        ids, scores = inverted.query(vocabulary.quantize(descriptors), 3)
        assert ids[0] == i + 10 and scores[0] == pytest.approx(1.0, abs=1e-2)
        assert (np.diff(scores) <= 0).all()


def test_remove_and_readd(vocabulary, descriptor_sets):
    inverted = _index(vocabulary, descriptor_sets)
    coffee = vocabulary.quantize(descriptor_sets["coffee"])
    assert inverted.remove(11) and not inverted.remove(11)
    assert 11 not in inverted and len(inverted) == 4
    assert 11 not in inverted.query(coffee, 5)[0]
    inverted.add(11, coffee)
    assert inverted.query(coffee, 1)[0][0] == 11
    # Re-adding an id replaces its entry rather than doubling it.
    inverted.add(11, coffee)
    assert len(inverted) == 5
    ids, scores = inverted.query(coffee, 5)
    assert list(ids).count(11) == 1


def test_compaction_keeps_results(vocabulary, descriptor_sets):
    inverted = _index(vocabulary, descriptor_sets)
    inverted.remove(12)
    query = vocabulary.quantize(descriptor_sets["rocket"])
    before = inverted.query(query, 5)
    assert inverted.dirty
    inverted.compact()
    assert not inverted.dirty
    after = inverted.query(query, 5)
    assert before[0].tolist() == after[0].tolist()
    assert np.allclose(before[1], after[1], atol=1e-3)  # float16 storage after compaction


def test_max_postings_keeps_the_rare_words(vocabulary, descriptor_sets):
    inverted = _index(vocabulary, descriptor_sets)
    inverted.compact()
    query = vocabulary.quantize(descriptor_sets["chelsea"])
    ids, _ = inverted.query(query, 1, max_postings=50)
    assert ids[0] == 12


def test_save_and_load(tmp_path, vocabulary, descriptor_sets):
    inverted = _index(vocabulary, descriptor_sets)
    inverted.remove(13)
    path = tmp_path / "inv.npz"
    inverted.save(path, "stamp-7")
    loaded, stamp = InvertedFile.load(path, vocabulary.idf)
    assert stamp == "stamp-7"
    assert sorted(loaded.ids()) == [10, 11, 12, 14]
    query = vocabulary.quantize(descriptor_sets["astronaut"])
    assert loaded.query(query, 5)[0].tolist() == inverted.query(query, 5)[0].tolist()
    with pytest.raises(ValueError):
        InvertedFile.load(path, np.ones(10, np.float32))


def test_empty_queries():
    inverted = InvertedFile(np.ones(16, np.float32))
    assert inverted.query(np.array([1, 2]), 5)[0].size == 0
    inverted.add(1, np.array([1, 2, 3]))
    assert inverted.query(np.array([], np.int64), 5)[0].size == 0
    assert inverted.query(np.array([9]), 5)[0].size == 0
