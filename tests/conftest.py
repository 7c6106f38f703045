"""Shared fixtures: real photos from scikit-image's sample data, written as files."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import PHOTOS, UNKNOWN, photo


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory) -> Path:
    """A folder with each of PHOTOS as a JPEG."""
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        photo(name).save(folder / f"{name}.jpg", quality=90)
    return folder


@pytest.fixture(scope="session")
def unknown_dir(tmp_path_factory) -> Path:
    """A folder with photos that are never indexed."""
    folder = tmp_path_factory.mktemp("unknown")
    for name in UNKNOWN:
        photo(name).save(folder / f"{name}.jpg", quality=90)
    return folder


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server (Debian's package, run as a non-root user) for the session."""
    import pgserver

    if pgserver.binaries() is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; `make test` "
                    "installs it)")
    server = pgserver.Server()
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn(postgres_server):
    """The DSN of a fresh, empty PostgreSQL database, dropped after the test."""
    dsn = postgres_server.new_database()
    yield dsn
    postgres_server.drop_database(dsn)


@pytest.fixture(scope="session")
def milvus_lite(tmp_path_factory):
    """A real Milvus Lite file for the session (its server starts once: a connection is held
    open throughout). Yields a function giving a locator, ``milvus-lite:///...?prefix=tN``,
    with a fresh collection prefix each call, so tests never see each other's collections."""
    import itertools

    from picorigin._index import milvus

    path = tmp_path_factory.mktemp("milvus") / "index.db"
    held = milvus.connect(milvus.Target(str(path), True))
    numbers = itertools.count()
    yield lambda: f"milvus-lite://{path}?prefix=t{next(numbers)}"
    milvus.release(held)


@pytest.fixture
def milvus_connection(milvus_lite, tmp_path):
    """A connection to the session's Milvus Lite, with collections of a fresh prefix."""
    from picorigin._index import milvus

    connection = milvus.connect(milvus.parse_target(milvus_lite(), tmp_path))
    yield connection
    milvus.release(connection)
