"""Milvus indexes beyond the shared contracts: locators and index types, the missing extra, the
sparse index against the inverted file, and collections that outlive their clients (a real
Milvus Lite; see tests/index/test_binary_index.py and tests/test_faiss_dense.py for the rest)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from picorigin import Engine, SettingError
from picorigin._index import milvus
from picorigin._index.inverted import InvertedFile
from picorigin._index.milvus import MilvusBinaryIndex, MilvusSparseIndex, Target


def test_locators_name_a_lite_file_or_a_server(tmp_path):
    assert milvus.parse_target("", tmp_path) is None
    lite = milvus.parse_target("milvus-lite://index.db", tmp_path)
    assert lite == Target(str(tmp_path / "index.db"), True)  # relative: in the data folder
    assert milvus.parse_target("milvus-lite:///srv/a.db?prefix=photos", tmp_path) == \
        Target("/srv/a.db", True, "photos")
    server = milvus.parse_target("milvus://ada:s3cret@db.example:19531/pics?prefix=p2", tmp_path)
    assert (server.uri, server.lite, server.prefix, server.token, server.db_name) == \
        ("http://db.example:19531", False, "p2", "ada:s3cret", "pics")
    assert str(server) == "milvus://db.example:19531/pics" and "s3cret" not in repr(server)
    assert milvus.parse_target("milvus://localhost", tmp_path).uri == "http://localhost:19530"
    for wrong, message in [("redis://x", "not a kind of index"),
                           ("milvus-lite://index.sqlite", "named \\*.db"),
                           ("milvus-lite://a?prefix=9x", "not a Milvus collection name"),
                           ("milvus:///nohost", "needs a host")]:
        with pytest.raises(SettingError, match=message):
            milvus.parse_target(wrong, tmp_path)


def test_index_types_are_parsed_and_what_lite_cannot_build_is_refused():
    spec = milvus.parse_index_spec("HNSW M=32 ef=64", "milvus_dense_index", lite=False)
    assert (spec.type, spec.build, spec.search) == \
        ("HNSW", {"M": 32, "efConstruction": 200}, {"ef": 64})
    spec = milvus.parse_index_spec("bin_ivf_flat nlist=4096", "milvus_binary_index", lite=False)
    assert (spec.type, spec.build, spec.search) == ("BIN_IVF_FLAT", {"nlist": 4096},
                                                    {"nprobe": 32})
    with pytest.raises(SettingError, match="Milvus Lite builds only FLAT, IVF_FLAT"):
        milvus.parse_index_spec("HNSW", "milvus_dense_index", lite=True)
    with pytest.raises(SettingError, match="not a parameter of FLAT"):
        milvus.parse_index_spec("FLAT nlist=3", "milvus_dense_index", lite=False)
    with pytest.raises(SettingError, match="not one of BIN_FLAT, BIN_IVF_FLAT"):
        milvus.parse_index_spec("HNSW", "milvus_binary_index", lite=False)


def test_a_bad_index_setting_stops_the_engine_at_open(tmp_path, milvus_lite):
    with pytest.raises(SettingError, match="Milvus Lite builds only"):
        Engine(tmp_path, settings={"index": milvus_lite(), "milvus_dense_index": "HNSW"})


def test_without_the_extra_the_error_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed
    with pytest.raises(SettingError, match=r"pip install 'picorigin\[milvus\]'") as caught:
        Engine(tmp_path, settings={"index": "milvus-lite://index.db", "stages": ""})
    assert "\n" not in str(caught.value)


def test_a_milvus_collection_outlives_its_client(milvus_lite, tmp_path):
    locator = milvus_lite()
    codes = np.random.default_rng(3).integers(0, 256, (40, 32), dtype=np.uint8)
    first = milvus.connect(milvus.parse_target(locator, tmp_path))
    index = MilvusBinaryIndex(256, first)
    index.add(np.arange(40), codes)
    identity = index.identity
    milvus.release(first)
    again = milvus.connect(milvus.parse_target(locator, tmp_path))
    reopened = MilvusBinaryIndex(256, again)
    assert reopened.identity == identity and len(reopened) == 40
    assert reopened.search(codes[7:8], 0) == [(0, 7, 0)]
    assert reopened.ids() == set(range(40))
    milvus.release(again)


def _documents(n: int, words: int, seed: int) -> list[np.ndarray]:
    """Images as visual words: Zipf-distributed like real ones (common words are common)."""
    rng = np.random.default_rng(seed)
    return [(rng.zipf(1.3, size=int(rng.integers(200, 800))) - 1) % words for _ in range(n)]


def test_the_sparse_index_reproduces_the_inverted_file_ranking(milvus_connection):
    # 600 images, so the 100-image shortlist is a real cut; queries are parts of an image
    # with other words mixed in (a crop pasted into another picture).
    n_words = 4096
    documents = _documents(600, n_words, seed=1)
    seen_in = np.zeros(n_words)
    for words in documents:
        seen_in[np.unique(words)] += 1
    idf = np.log(600 / np.maximum(seen_in, 1)).astype(np.float32)  # as a vocabulary's
    inverted = InvertedFile(idf)
    sparse = MilvusSparseIndex(idf, milvus_connection, "words")
    pairs = [(i + 1, words) for i, words in enumerate(documents)]
    inverted.update([], pairs)
    sparse.update([], pairs)
    assert len(sparse) == 600 and sparse.ids() == set(range(1, 601))
    # re-scored from the stored words (as the local stage does, from the catalog) or from the
    # vectors Milvus returns: the same answer
    words = dict(pairs)
    looked_up = MilvusSparseIndex(idf, milvus_connection, "words",
                                  lookup=lambda ids: {i: words[i] for i in ids if i in words})
    top1, recall, score_gap = [], [], []
    for q in range(40):
        source = documents[q * 15]
        part = source[: len(source) // 3]
        query = np.concatenate([part, _documents(1, n_words, seed=100 + q)[0][: len(part)]])
        want_ids, want_scores = inverted.query(query, 20)
        got_ids, got_scores = sparse.query(query, 20)
        again_ids, again_scores = looked_up.query(query, 20)
        assert again_ids.tolist() == got_ids.tolist()
        np.testing.assert_allclose(again_scores, got_scores, atol=1e-6)
        top1.append(got_ids[0] == want_ids[0] == q * 15 + 1)
        recall.append(len(set(want_ids) & set(got_ids)) / len(want_ids))
        common = np.intersect1d(want_ids, got_ids)
        score_gap += [abs(got_scores[list(got_ids).index(i)] - want_scores[list(want_ids).index(i)])
                      for i in common]
    assert all(top1)
    assert np.mean(recall) >= 0.95  # measured 0.97; the shortlist's cut costs the rest
    assert max(score_gap) < 2e-3  # the same score (the inverted file keeps float16 weights)
    # removal and replacement
    assert sparse.remove(1) and not sparse.remove(1)
    assert 1 not in sparse.query(documents[0], 5)[0]
    sparse.add(1, documents[0])
    assert sparse.query(documents[0], 1)[0].tolist() == [1]
    assert sparse.query(np.array([], np.int64), 5)[0].size == 0
