"""The API on strips and specks (1x640, 2x2000, 6x5000 ...) with every stage on: 200 or 201,
never the 500 that ORB's pyramid once caused."""

from __future__ import annotations

import pytest
import httpx
from helpers import extreme_folder

from picorigin import Engine
from picorigin.server import create_app


@pytest.fixture(scope="module")
def live(tmp_path_factory, photo_dir, serve_app):
    root = tmp_path_factory.mktemp("extreme-api")
    files = extreme_folder(root, photo_dir)
    with Engine(root / "db", settings={"stages": "local,deep"}) as engine, \
            serve_app(create_app(engine)) as url:
        yield url, files


def test_search_add_and_compare_each_file(live):
    url, files = live
    astronaut = next(p for p in files if p.name == "astronaut.jpg").read_bytes()
    with httpx.Client(base_url=url, timeout=60) as client:
        for path in files:
            data = path.read_bytes()
            added = client.post("/api/images", files={"file": (path.name, data)})
            assert added.status_code == 201, (path.name, added.text)
            found = client.post("/api/search", files={"file": (path.name, data)})
            assert found.status_code == 200, (path.name, found.text)
            assert found.json()["matches"][0]["id"] == added.json()["id"]
            compared = client.post("/api/compare", files={"a": (path.name, data),
                                                          "b": ("astronaut.jpg", astronaut)})
            assert compared.status_code == 200, (path.name, compared.text)
            assert isinstance(compared.json()["matched"], bool)
            thumbnail = client.get(f"/api/images/{added.json()['id']}/thumbnail")
            assert thumbnail.status_code in (200, 404), path.name
