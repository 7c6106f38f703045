"""Requests that once answered 500: ids and offsets past SQLite's 64-bit integers, a ``k`` of
Infinity or NaN, JSON nested 100,000 deep; and every body field given values of every JSON type.
Each must get a 4xx with the one JSON error shape."""

from __future__ import annotations

import io
import itertools

import httpx
import pytest
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin import Engine
from picorigin.server import create_app

HUGE = "9223372036854775808"  # 2**63: one past SQLite's largest integer


@pytest.fixture(scope="module")
def client(tmp_path_factory, serve_app):
    with Engine(tmp_path_factory.mktemp("bad-requests")) as engine, \
            serve_app(create_app(engine)) as url, \
            httpx.Client(base_url=url, timeout=60) as http:
        http.engine = engine
        http.image_id = engine.add(jpeg_bytes(photo("coffee")))
        yield http


def client_error(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert set(body) == {"error"} and body["error"]["status"] == response.status_code
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.mark.parametrize("number", [HUGE, "99999999999999999999999999", "-1", "1e3", "0x10"])
def test_ids_out_of_range(client, number):
    for method, path in (("GET", f"/api/images/{number}"), ("DELETE", f"/api/images/{number}"),
                         ("GET", f"/api/images/{number}/thumbnail")):
        client_error(client.request(method, path))
    page = client.get(f"/images/{number}")
    assert 400 <= page.status_code < 500
    assert client.engine.stats()["images"] == 1


@pytest.mark.parametrize("path", ["/api/images", "/collection"])
@pytest.mark.parametrize("offset", [HUGE, "1" + "0" * 40, "-1", "nan"])
def test_offsets_out_of_range(client, path, offset):
    response = client.get(path, params={"offset": offset})
    assert 400 <= response.status_code < 500, response.text[:300]
    if path.startswith("/api"):
        client_error(response)


def test_the_largest_offset_and_id_are_answered(client):
    largest = str(2**63 - 1)
    assert client.get("/api/images", params={"offset": largest}).json()["images"] == []
    assert client.get(f"/api/images/{largest}").status_code == 404
    assert client.get("/collection", params={"offset": largest}).status_code == 200


@pytest.mark.parametrize("k", ["Infinity", "-Infinity", "NaN", "1e400", "-5", "0", "2.5",
                               "1e30", str(10**40), "true", "\"7x\"", "[3]", "{}"])
def test_k_of_every_kind_in_json(client, k):
    body = '{"url": "http://127.0.0.1:9/x.jpg", "k": %s}' % k
    response = client.post("/api/search", content=body,
                           headers={"content-type": "application/json"})
    assert "k must" in client_error(response)


@pytest.mark.parametrize("k", ["inf", "nan", "-1", "1e400", "2.5", " "])
def test_k_of_every_kind_in_a_form(client, k):
    response = client.post("/api/search", data={"k": k},
                           files={"file": ("q.jpg", jpeg_bytes(photo("coffee")))})
    if k == " ":
        assert response.status_code == 200  # blank: the default
    else:
        assert "k must" in client_error(response)


@pytest.mark.parametrize("depth", [1000, 100_000])
@pytest.mark.parametrize("path", ["/api/search", "/api/images", "/api/compare"])
def test_deeply_nested_json(client, path, depth):
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth,
                 '{"url": ' + "[" * depth + "]" * depth + "}"):
        response = client.post(path, content=body, headers={"content-type": "application/json"})
        client_error(response)


ODD_VALUES = [None, True, -1, 2**64, 1.5, 1e308, "", "x" * 5000, "\u0000💥", [], {"b": 1}]


@pytest.mark.parametrize("path, fields", [
    ("/api/search", ("url", "k", "kinds", "label", "colour", "fast")),
    ("/api/images", ("url", "page_url", "page_title", "creator", "title", "uri")),
    ("/api/compare", ("a", "b")),
])
def test_every_field_with_every_json_type(client, path, fields):
    base = {"url": "http://127.0.0.1:9/x.jpg"} if path != "/api/compare" else {
        "a": "http://127.0.0.1:9/a.jpg", "b": "http://127.0.0.1:9/b.jpg"}
    for field, value in itertools.product(fields, ODD_VALUES):
        response = client.post(path, json={**base, field: value})
        assert response.status_code < 500, (field, value, response.text[:300])
        client_error(response)  # the URLs are private: refused when all else passes
    assert client.engine.stats()["images"] == 1


def test_an_upload_too_dear_to_decode_is_413(client):
    """194 KB that decode to 10000 x 10000 16-bit pixels: refused from the header."""
    buffer = io.BytesIO()
    Image.new("I;16", (10_000, 10_000)).save(buffer, "PNG")
    for path in ("/api/search", "/api/images"):
        response = client.post(path, files={"file": ("wide.png", buffer.getvalue())})
        assert response.status_code == 413
        assert "MiB allowed per image" in client_error(response)


def test_no_answer_shows_a_server_path(tmp_path_factory, serve_app, photo_dir):
    """Stats, listings, records, search results and pages name local files by file name only."""
    root = tmp_path_factory.mktemp("secret-folder-name")
    with Engine(root / "data") as engine, serve_app(create_app(engine)) as url, \
            httpx.Client(base_url=url, timeout=60) as client:
        engine.index([str(photo_dir)], workers=1)
        image_id = engine.search(str(photo_dir / "rocket.jpg"), k=1).matches[0].id
        uploaded = client.post("/api/images", files={"file": ("mine.jpg", jpeg_bytes(
            photo("rocket").rotate(3)))}).json()
        answers = {
            "stats": client.get("/api/stats"),
            "list": client.get("/api/images"),
            "record": client.get(f"/api/images/{image_id}"),
            "search": client.post("/api/search", files={"file": ("q.jpg", (
                photo_dir / "rocket.jpg").read_bytes())}),
            "page": client.get(f"/images/{image_id}"),
            "collection": client.get("/collection"),
            "home": client.get("/"),
        }
        for name, response in answers.items():
            assert response.status_code == 200, name
            assert str(photo_dir) not in response.text and str(root) not in response.text, name
        record = answers["record"].json()
        assert record["uris"] == ["rocket.jpg"]
        assert [loc["uri"] for loc in record["locations"]] == ["rocket.jpg"]
        assert answers["stats"].json()["data_folder"] == "data"
        assert answers["search"].json()["matches"][0]["uri"] == "rocket.jpg"
        upload_uri = uploaded["image"]["uris"][0]
        assert upload_uri.startswith("upload:") and upload_uri.endswith("/mine.jpg")


@pytest.mark.parametrize("given, shown", [
    ({"uri": "/home/me/pics/a.jpg"}, {"uri": "a.jpg"}),
    ({"uris": ["C:\\Users\\me\\b.png", "https://x.org/p/b.png", "upload:ab12/c.png"]},
     {"uris": ["b.png", "https://x.org/p/b.png", "upload:ab12/c.png"]}),
    ({"data_folder": "/srv/picorigin-data"}, {"data_folder": "picorigin-data"}),
    ({"evidence": ["first seen 2026-01-01 on /home/me/my photos/a.jpg", "seen on https://x.org/a/b"]},
     {"evidence": ["first seen 2026-01-01 on a.jpg", "seen on https://x.org/a/b"]}),
    ({"metadata": {"title": "/not/a/location"}}, {"metadata": {"title": "/not/a/location"}}),
])
def test_public_cuts_paths_to_names(given, shown):
    from picorigin.server._api import public

    assert public(given) == shown


def test_uploads_dropped_midway_leave_the_server_answering(server):
    import socket
    from urllib.parse import urlsplit

    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    image = jpeg_bytes(photo("coffee"))
    boundary = "picorigin-drop"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"q.jpg\""
            "\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    body_length = len(head) + len(image) + len(f"\r\n--{boundary}--\r\n")
    for _ in range(20):  # each sends a third of the image, then hangs up
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall((f"POST /api/search HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                          f"Content-Length: {body_length}\r\n\r\n").encode()
                         + head + image[: len(image) // 3])
    with server.client() as client:
        answer = client.post("/api/search", files={"file": ("q.jpg", image)}, timeout=20)
        assert answer.status_code == 200 and answer.json()["matches"][0]["kind"] == "exact"
