"""Pictures to watch, their edited copies and unrelated images, written as files."""

from __future__ import annotations

import pytest
from helpers import distinct_pictures, photo
from watch.pictures import WATCHED, copies, unrelated


@pytest.fixture(scope="session")
def watched_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("watched")
    for name in WATCHED:
        photo(name).save(folder / f"{name}.jpg", quality=92)
    return folder


@pytest.fixture(scope="session")
def copies_dir(tmp_path_factory):
    """Every copy and unrelated image as files, plus two textured pictures."""
    folder = tmp_path_factory.mktemp("copies")
    for name, (_, data) in copies().items():
        (folder / f"{name}.jpg").write_bytes(data)
    for name, data in unrelated().items():
        (folder / f"{name}.jpg").write_bytes(data)
    distinct_pictures(folder, ["texture-1", "texture-2"])
    return folder
