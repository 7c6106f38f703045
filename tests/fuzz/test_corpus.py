"""Replay every file of the fuzzing corpus (``make fuzz`` writes it) through its target.

Seeds, inputs that reached new code, and past findings (``crash-*``, each fixed since) must
all end in a result or one of picorigin's own errors; the API's in a 4xx or 2xx (or 502, a
URL that could not be fetched), never 500, from a real server on 127.0.0.1.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz import targets

CASES = sorted(p for p in targets.CORPUS.glob("*/*") if p.is_file())


def _ids(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_corpus_covers_every_target() -> None:
    for name in targets.SEEDS:
        assert any(p.parent.name == name for p in CASES), f"no corpus for {name}"
    assert sum(p.stat().st_size for p in CASES) < 1_000_000


@pytest.mark.parametrize("path", [p for p in CASES if p.parent.name != "api"], ids=_ids)
def test_replay(path: Path) -> None:
    targets.LOCAL_TARGETS[path.parent.name](path.read_bytes())


@pytest.fixture(scope="module")
def api_client(tmp_path_factory):
    with targets.api_server(tmp_path_factory.mktemp("fuzz-api")) as client:
        yield client


@pytest.mark.parametrize("path", [p for p in CASES if p.parent.name == "api"], ids=_ids)
def test_replay_api(path: Path, api_client) -> None:
    targets.api_target(api_client)(path.read_bytes())


def test_unknown_marked_section_is_a_comment() -> None:
    # The first finding: Python 3.11's HTMLParser raised AssertionError on "<![fj".
    page = targets.extract("<p>a<![fj x]><img src=b.jpg><![", "https://example.org/")
    assert [ref.url for ref in page.images] == ["https://example.org/b.jpg"]

