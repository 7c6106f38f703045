"""The HTTP API against a real uvicorn server on 127.0.0.1 over a real Engine."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin import Engine, SettingError
from picorigin.server import create_app, is_loopback
from picorigin.server import _app as app_module
from picorigin.server._api import public

CAP = 20_000_000  # the default upload cap


def copy_of(name: str, side: int = 200, quality: int = 60) -> bytes:
    """A smaller, recompressed copy of a sample photo: a near-duplicate of the indexed one."""
    return jpeg_bytes(photo(name).resize((side, side * 3 // 4)), quality)


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["status"] == response.status_code
    assert body["error"]["message"]
    return body["error"]["message"]


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 17 kB PNG that decodes to 12000 x 12000 pixels (144 MP, over max_pixels)."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, "PNG")
    return buffer.getvalue()


def add(client, server, data: bytes, name: str = "new.jpg", **fields) -> dict:
    response = client.post("/api/images", files={"file": (name, data, "image/jpeg")},
                           data=fields, headers=server.key_headers)
    assert response.status_code == 201, response.text
    return response.json()


# -- health, stats, docs ------------------------------------------------------------------------


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_stats_counts_the_collection(client, server):
    stats = client.get("/api/stats").json()
    assert stats["images"] == server.engine.stats()["images"] >= len(server.photos)
    assert stats["server"] == {"max_upload_bytes": CAP, "api_key_required": True}


def test_docs_page_is_served_from_local_files(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/static/swagger/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    script = client.get("/static/swagger/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000


def test_openapi_lists_every_endpoint(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/search"]) == {"post"}
    assert set(paths["/api/images"]) == {"get", "post"}
    assert set(paths["/api/images/{image_id}"]) == {"get", "delete"}
    assert set(paths["/api/images/{image_id}/thumbnail"]) == {"get"}
    assert set(paths["/api/compare"]) == {"post"}
    assert set(paths["/api/stats"]) == {"get"}
    body = paths["/api/search"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)


# -- search -------------------------------------------------------------------------------------


def test_search_upload_finds_the_larger_original(client, server):
    response = client.post("/api/search", files={"file": ("q.jpg", copy_of("astronaut"))})
    assert response.status_code == 200, response.text
    result = response.json()
    top = result["matches"][0]
    assert top["id"] == server.photos["astronaut"]
    assert top["kind"] == "near_duplicate"
    assert top["larger_than_query"] is True
    assert (top["width"], top["height"]) == (512, 512)
    assert (result["width"], result["height"]) == (200, 150)


def test_search_answers_like_search_json(client, server):
    query = copy_of("coffee")
    expected = server.engine.search(query).to_dict()
    got = client.post("/api/search", files={"file": ("q.jpg", query)}).json()
    assert len(got.pop("upload")) == 24  # only the API keeps uploads (for compare links)
    assert set(got) == set(expected)
    del got["elapsed_ms"], expected["elapsed_ms"]
    assert got == public(expected)  # the same, but for server paths cut to file names


def test_search_options_fast_label_and_colour(client, server):
    crop = jpeg_bytes(photo("astronaut").crop((120, 40, 400, 330)))
    full = client.post("/api/search", files={"file": ("q.jpg", crop)}).json()
    assert full["matches"][0]["kind"] == "partial"
    assert full["labels"]
    fast = client.post("/api/search", params={"fast": "true"}, files={"file": ("q.jpg", crop)})
    assert fast.json()["stages"] == ["exact", "fingerprint"]
    assert fast.json()["matches"] == []
    labelled = client.post("/api/search", files={"file": ("q.jpg", copy_of("chelsea"))},
                           data={"label": "espresso"}).json()
    assert {m["id"] for m in labelled["matches"]} == {server.photos["coffee"]}
    bad = client.post("/api/search", files={"file": ("q.jpg", crop)}, data={"colour": "nocolour"})
    assert bad.status_code == 400 and "colour" in bad.json()["error"]["message"].lower()


def test_search_exact_copy(client, server, photo_dir):
    data = (photo_dir / "rocket.jpg").read_bytes()
    top = client.post("/api/search", files={"file": ("rocket.jpg", data)}).json()["matches"][0]
    assert (top["id"], top["kind"], top["larger_than_query"]) == (server.photos["rocket"], "exact", False)


def test_search_by_url(client, server, image_host):
    response = client.post("/api/search", json={"url": f"{image_host}/chelsea.jpg"})
    assert response.status_code == 200, response.text
    top = response.json()["matches"][0]
    assert (top["id"], top["kind"]) == (server.photos["chelsea"], "exact")


def test_search_by_url_in_a_form(client, server, image_host):
    response = client.post("/api/search", data={"url": f"{image_host}/chelsea.jpg"})
    assert response.json()["matches"][0]["id"] == server.photos["chelsea"]


def test_search_options_k_and_kinds(client, photo_dir):
    data = (photo_dir / "coffee.jpg").read_bytes()
    only_near = client.post("/api/search", params={"kinds": "near_duplicate"},
                            files={"file": ("c.jpg", data)}).json()["matches"]
    assert all(m["kind"] == "near_duplicate" for m in only_near)
    exact = client.post("/api/search", data={"kinds": "exact,near-duplicate", "k": "1"},
                        files={"file": ("c.jpg", data)}).json()["matches"]
    assert [m["kind"] for m in exact] == ["exact"]
    as_json = client.post("/api/search", json={"url": "http://127.0.0.1:9/x.jpg", "kinds": ["bogus"]})
    assert as_json.status_code == 400
    assert "bogus" in error_of(as_json)


@pytest.mark.parametrize("k", ["0", "201", "ten"])
def test_search_refuses_a_bad_k(client, k):
    response = client.post("/api/search", data={"k": k}, files={"file": ("q.jpg", copy_of("rocket"))})
    assert response.status_code == 400
    assert "k must" in error_of(response)


def test_search_without_an_image(client):
    response = client.post("/api/search", json={})
    assert response.status_code == 400
    assert "no image given" in error_of(response)
    response = client.post("/api/search", content=b"raw bytes", headers={"content-type": "image/jpeg"})
    assert response.status_code == 415
    assert "multipart/form-data" in error_of(response)
    response = client.post("/api/search", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "../catalog.sqlite",
                                 "ftp://example.com/a.jpg", "http://", "http://[::1/a.jpg",
                                 "C:\\Windows\\win.ini"])
def test_search_never_reads_a_path(client, url):
    response = client.post("/api/search", json={"url": url})
    assert response.status_code == 400
    assert "http" in error_of(response)


def test_a_file_field_holding_a_path_is_not_read(client):
    response = client.post("/api/search", data={"file": "/etc/hostname"})
    assert response.status_code == 400


# -- bad uploads --------------------------------------------------------------------------------


def test_not_an_image(client):
    response = client.post("/api/search", files={"file": ("a.jpg", b"just some text, not pixels")})
    assert response.status_code == 415
    assert "not an image" in error_of(response)


def test_truncated_jpeg(client):
    data = jpeg_bytes(photo("astronaut"))
    response = client.post("/api/search", files={"file": ("cut.jpg", data[: len(data) // 2])})
    assert response.status_code == 422
    assert "truncated" in error_of(response)


def test_empty_upload(client):
    response = client.post("/api/search", files={"file": ("empty.jpg", b"")})
    assert response.status_code == 400
    assert "empty" in error_of(response)


def test_upload_over_the_cap(client):
    response = client.post("/api/search", files={"file": ("big.jpg", b"\xff" * (CAP + 1))})
    assert response.status_code == 413
    assert "20,000,000 bytes" in error_of(response)


def test_body_declared_over_the_cap_is_refused_unread(client):
    response = client.post("/api/search", content=b"\0" * (CAP + 100_000),
                           headers={"content-type": "multipart/form-data; boundary=x"})
    assert response.status_code == 413
    error_of(response)


def test_streamed_body_growing_over_the_cap(client):
    # No Content-Length (chunked): the server has to count while reading.
    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(25):
            yield b"\xff" * 1_000_000
        yield b"\r\n--b--\r\n"

    response = client.post("/api/search", content=body(),
                           headers={"content-type": "multipart/form-data; boundary=b"})
    assert response.status_code == 413
    error_of(response)
    assert client.get("/healthz").status_code == 200  # and the server is still fine


def test_decompression_bomb(client, bomb):
    response = client.post("/api/search", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 413
    assert "max_pixels" in error_of(response)


def test_a_smaller_cap(small_cap_server):
    with small_cap_server.client() as c:
        response = c.post("/api/search", files={"file": ("q.jpg", jpeg_bytes(photo("coffee")))})
        assert response.status_code == 413
        assert "1,000 bytes" in error_of(response)
        assert c.post("/api/search", files={"file": ("q.jpg", b"x" * 900)}).status_code == 415


# -- the collection -----------------------------------------------------------------------------


def test_write_without_a_key_is_refused(client, server):
    before = server.engine.stats()["images"]
    files = {"file": ("n.jpg", jpeg_bytes(photo("moon")))}
    missing = client.post("/api/images", files=files)
    assert missing.status_code == 401
    assert "API key" in error_of(missing)
    wrong = client.post("/api/images", files=files, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401
    assert "wrong API key" in error_of(wrong)
    bearer_wrong = client.post("/api/images", files=files, headers={"Authorization": "Bearer guess"})
    assert bearer_wrong.status_code == 401
    assert client.delete(f"/api/images/{server.photos['rocket']}").status_code == 401
    # A big upload without a key still gets to read the 401 (not a reset connection).
    big = client.post("/api/images", files={"file": ("big.jpg", b"\xff" * 15_000_000)})
    assert big.status_code == 401
    assert server.engine.stats()["images"] == before


def test_cross_origin_write_is_refused(client, server):
    response = client.post("/api/images", files={"file": ("n.jpg", jpeg_bytes(photo("moon")))},
                           headers={**server.key_headers, "Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "cross-origin" in error_of(response)
    sandboxed = client.delete(f"/api/images/{server.photos['rocket']}",
                              headers={**server.key_headers, "Origin": "null"})
    assert sandboxed.status_code == 403
    same = client.get("/api/stats").json()["images"]
    assert same == server.engine.stats()["images"]


def test_add_get_list_thumbnail_delete(client, server):
    data = jpeg_bytes(photo("coins"))
    added = add(client, server, data, "coins.jpg", creator="Ada Lovelace", title="Coins",
                page_url="https://example.com/coins")
    image_id = added["id"]
    assert added["image"]["id"] == image_id

    info = client.get(f"/api/images/{image_id}").json()
    assert info["creator"] == {"name": "Ada Lovelace", "source": "supplied", "image_id": image_id}
    assert info["metadata"]["title"] == "Coins"
    assert (info["width"], info["height"]) == (384, 303)
    [location] = info["locations"]
    assert location["page_url"] == "https://example.com/coins"
    assert location["uri"].startswith("upload:") and location["uri"].endswith("/coins.jpg")

    listed = client.get("/api/images", params={"q": "Lovelace"}).json()
    assert listed["total"] == 1
    assert [i["id"] for i in listed["images"]] == [image_id]

    thumb = client.get(f"/api/images/{image_id}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.format == "JPEG"
        assert max(image.size) <= 384

    found = client.post("/api/search", files={"file": ("q.jpg", data)}).json()["matches"][0]
    assert (found["id"], found["kind"]) == (image_id, "exact")

    bearer = {"Authorization": f"Bearer {server.api_key}"}
    deleted = client.delete(f"/api/images/{image_id}", headers=bearer)
    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": image_id}
    assert client.get(f"/api/images/{image_id}").status_code == 404
    assert client.get(f"/api/images/{image_id}/thumbnail").status_code == 404
    again = client.delete(f"/api/images/{image_id}", headers=bearer)
    assert again.status_code == 404
    assert str(image_id) in error_of(again)


def test_add_by_url(client, server, image_host):
    url = f"{image_host}/hubble_deep_field.jpg"
    response = client.post("/api/images", json={"url": url, "creator": "NASA"},
                           headers=server.key_headers)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"] == server.photos["hubble_deep_field"]  # same bytes: a new location only
    assert url in body["image"]["uris"]


def test_add_refuses_a_non_web_uri(client, server):
    response = client.post("/api/images", files={"file": ("a.jpg", jpeg_bytes(photo("moon")))},
                           data={"uri": "/etc/passwd"}, headers=server.key_headers)
    assert response.status_code == 400
    assert "uri must be" in error_of(response)


def test_add_a_bad_upload(client, server, bomb):
    response = client.post("/api/images", files={"file": ("b.png", bomb)}, headers=server.key_headers)
    assert response.status_code == 413
    response = client.post("/api/images", files={"file": ("t.txt", b"hello")}, headers=server.key_headers)
    assert response.status_code == 415


def test_list_pages(client, server):
    total = server.engine.stats()["images"]
    first = client.get("/api/images", params={"limit": 2}).json()
    assert first["total"] == total
    assert len(first["images"]) == 2
    rest = client.get("/api/images", params={"offset": 2, "limit": 500}).json()
    ids = [i["id"] for i in first["images"] + rest["images"]]
    assert len(ids) == len(set(ids)) == total
    assert client.get("/api/images", params={"limit": 0}).status_code == 422
    assert client.get("/api/images", params={"offset": -1}).status_code == 422


def test_unknown_ids(client):
    response = client.get("/api/images/987654")
    assert response.status_code == 404
    assert "987654" in error_of(response)
    response = client.get("/api/images/not-a-number")
    assert response.status_code == 422
    error_of(response)
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    error_of(response)


def test_compare(client, server):
    a, b = copy_of("astronaut"), jpeg_bytes(photo("astronaut"))
    response = client.post("/api/compare", files={"a": ("a.jpg", a), "b": ("b.jpg", b)})
    if callable(getattr(server.engine, "compare", None)):
        assert response.status_code == 200, response.text
        assert isinstance(response.json(), dict)
    else:
        assert response.status_code == 501
        assert "compare" in error_of(response)


# -- private addresses --------------------------------------------------------------------------


def test_private_address_is_refused(strict_server, image_host):
    with strict_server.client() as client:
        url = f"{image_host}/astronaut.jpg"
        search = client.post("/api/search", json={"url": url})
        assert search.status_code == 400
        assert "private" in error_of(search).lower() or "loopback" in error_of(search).lower()
        added = client.post("/api/images", json={"url": url})
        assert added.status_code == 400
        assert strict_server.engine.stats()["images"] == len(strict_server.photos)


def test_no_key_needed_when_the_server_has_none(strict_server):
    with strict_server.client() as client:
        response = client.post("/api/images", files={"file": ("m.jpg", jpeg_bytes(photo("moon")))})
        assert response.status_code == 201
        image_id = response.json()["id"]
        assert client.delete(f"/api/images/{image_id}").status_code == 200


# -- HTML pages ---------------------------------------------------------------------------------


def test_pages_render(client, server):
    for path in ("/", "/collection", "/collection?q=astronaut&offset=0",
                 f"/images/{server.photos['astronaut']}"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in response.headers["content-security-policy"]
    page = client.get(f"/images/{server.photos['astronaut']}").text
    assert "astronaut.jpg" in page
    missing = client.get("/images/987654", headers={"Accept": "text/html"})
    assert missing.status_code == 404
    assert "no indexed image has id 987654" in missing.text


def test_recorded_text_is_escaped(client, server):
    added = add(client, server, jpeg_bytes(photo("camera").rotate(7)), "x.jpg",
                creator="<script>alert(1)</script>", page_url="https://example.com/<b>")
    page = client.get(f"/images/{added['id']}").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    client.delete(f"/api/images/{added['id']}", headers=server.key_headers)


# -- concurrency --------------------------------------------------------------------------------


def test_searches_while_adding(server):
    """Concurrent searches all succeed, and find the right image, while images are being added."""
    queries = {name: copy_of(name, 160) for name in ("astronaut", "coffee", "chelsea", "rocket")}
    stop = threading.Event()
    added_ids: list[int] = []

    def ingest():
        with server.client() as c:
            for angle in range(1, 40):
                if stop.is_set():
                    break
                data = jpeg_bytes(photo("moon").rotate(angle * 9))
                r = c.post("/api/images", files={"file": (f"m{angle}.jpg", data)},
                           headers=server.key_headers)
                assert r.status_code == 201, r.text
                added_ids.append(r.json()["id"])

    def search(name):
        with server.client() as c:
            r = c.post("/api/search", files={"file": ("q.jpg", queries[name])})
            return name, r.status_code, r.json()

    writer = threading.Thread(target=ingest)
    writer.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(search, list(queries) * 6))
    finally:
        stop.set()
        writer.join()
    for name, status, body in answers:
        assert status == 200
        assert body["matches"][0]["id"] == server.photos[name]
    assert added_ids
    with server.client() as c:
        for image_id in added_ids:
            c.delete(f"/api/images/{image_id}", headers=server.key_headers)


def test_create_app_refuses_bad_settings(server):
    with pytest.raises(SettingError):
        create_app(server.engine, max_upload_bytes=0)
    with pytest.raises(SettingError):
        create_app(server.engine, api_key=" ")


# -- serving ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True),
                                            ("::1", True), ("0.0.0.0", False),
                                            ("192.168.1.4", False), ("example.com", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_beyond_loopback_makes_up_a_key(monkeypatch, tmp_path):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    said = []
    with Engine(tmp_path / "d") as engine:
        app_module.serve(engine, host="0.0.0.0", port=8123, announce=said.append)
        key = served["app"].state.api_key
        assert key and any(key in line for line in said)
        assert served["host"] == "0.0.0.0" and served["port"] == 8123
        app_module.serve(engine, announce=said.append)
        assert served["app"].state.api_key is None and served["host"] == "127.0.0.1"
