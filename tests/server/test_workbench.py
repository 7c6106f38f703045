"""The API behind the provenance workbench: sort and filter a search, compare with an indexed
image by id, keep an upload for a compare link. Against ``history_server``: one photo, four
edited copies, sightings on two hosts from 2019 to 2024."""

from __future__ import annotations

import pytest

from picorigin._results import SORTS

COPIES = ("original", "crop", "edited", "recoloured", "upscale")


def search(server, **options):
    with server.client() as client:
        response = client.post("/api/search", files={"file": ("q.jpg", server.query)},
                               data={key: str(value) for key, value in options.items()})
    assert response.status_code == 200, response.text
    return response.json()


def order(server, answer):
    names = {v: k for k, v in server.photos.items()}
    return [names[m["id"]] for m in answer["matches"]]


def test_every_copy_is_found_with_its_first_sighting(history_server):
    answer = search(history_server)
    assert sorted(order(history_server, answer)) == sorted(COPIES)
    first = {m["id"]: m["first_seen"] for m in answer["matches"]}
    assert first[history_server.photos["original"]].startswith("2019-03-01")
    assert first[history_server.photos["upscale"]].startswith("2022-11-30")
    assert answer["likely_original"]["id"] == history_server.photos["original"]
    assert len(answer["upload"]) == 24


def test_sorts_order_as_named(history_server):
    assert order(history_server, search(history_server, sort="oldest")) == [
        "original", "crop", "edited", "recoloured", "upscale"]
    assert order(history_server, search(history_server, sort="newest")) == [
        "upscale", "recoloured", "edited", "crop", "original"]
    biggest = search(history_server, sort="biggest")
    assert order(history_server, biggest) == ["original", "recoloured", "edited", "crop", "upscale"]
    assert [m["upscaled"] for m in biggest["matches"]] == [False] * 4 + [True]
    changed = search(history_server, sort="changed")["matches"]
    scores = [m["score"] for m in changed]
    assert scores == sorted(scores) and scores[0] < scores[-1]
    best = search(history_server)["matches"]
    assert [m["id"] for m in best] != [m["id"] for m in changed]


def test_filters_cut_the_list(history_server):
    assert order(history_server, search(history_server, domain="127.0.0.1")) == ["original"]
    news = order(history_server, search(history_server, domain="localhost/news", sort="oldest"))
    assert news == ["crop", "edited"]
    # A folder is a folder: "/new" is not a prefix of "/news/...".
    assert search(history_server, domain="localhost/new")["matches"] == []
    larger = order(history_server, search(history_server, larger_only="true", sort="biggest"))
    assert larger == ["original", "recoloured", "edited"]  # the upscale is not genuinely larger


@pytest.mark.parametrize("options, message", [
    ({"sort": "largest"}, "unknown sort"),
    ({"domain": "http://"}, "domain must be"),
])
def test_bad_options_are_400(history_server, options, message):
    with history_server.client() as client:
        response = client.post("/api/search", files={"file": ("q.jpg", history_server.query)},
                               data=options)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_compare_by_id_reads_the_indexed_file(history_server):
    with history_server.client() as client:
        response = client.post("/api/compare", files={"a": ("q.jpg", history_server.query)},
                               data={"b_id": str(history_server.photos["recoloured"])})
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["matched"] and result["b_from"] == "location"
        assert result["b_uri"].endswith("/blog/recoloured.jpg")
        assert (result["a_width"], result["a_height"]) == (300, 200)
        assert (result["b_width"], result["b_height"]) == (440, 293)
        assert result["colour_shift"]["changed"] is True
        # The match is redder than the query (mean is query minus match).
        assert result["colour_shift"]["mean"][0] < -10
        # The kept upload names the query in a second compare, and in a link.
        edited = client.post("/api/compare", json={
            "a_upload": result["a_upload"], "b_id": history_server.photos["edited"]}).json()
        assert edited["matched"] and len(edited["changed"]) >= 1
        x0, y0, x1, y1 = edited["changed"][0]["b_box"]  # the sticker, in the edited copy
        assert 270 <= x0 <= 300 and 170 <= y0 <= 200 and 380 <= x1 <= 420
        image = client.get(f"/api/uploads/{result['a_upload']}")
        assert image.status_code == 200 and image.content == history_server.query
        assert image.headers["content-type"] == "image/jpeg"
        page = client.get(f"/compare?q={result['a_upload']}&b={history_server.photos['edited']}")
        assert page.status_code == 200 and 'data-page="compare"' in page.text
        assert f'data-upload="{result["a_upload"]}"' in page.text


def test_compare_by_id_falls_back_to_the_thumbnail(history_server, tmp_path):
    from helpers import jpeg_bytes, photo
    from PIL import Image

    engine = history_server.engine
    picture = photo("chelsea").resize((360, 240), Image.Resampling.LANCZOS)
    gone = engine.add(jpeg_bytes(picture, 80), uri="http://127.0.0.1:9/nowhere/chelsea.jpg")
    try:
        result = engine.compare_indexed(history_server.query, gone)
        assert result["matched"] and result["b_from"] == "thumbnail" and result["b_uri"] is None
        assert (result["b_width"], result["b_height"]) == (360, 240)
        assert result["b_box"][2] > 300  # boxes in full-size pixels, not the thumbnail's
    finally:
        engine.remove(gone)


@pytest.mark.parametrize("body, status, message", [
    ({"a_upload": "0" * 24, "b_id": 1}, 404, "no longer kept"),
    ({"a_upload": "../../etc/passwd", "b_id": 1}, 400, "24-character id"),
    ({"a_upload": "0" * 24, "b_id": "x"}, 400, "b_id must be a whole number"),
    ({"a_upload": "0" * 24, "b_id": -1}, 400, "b_id must be between"),
])
def test_compare_by_id_refuses_bad_input(history_server, body, status, message):
    with history_server.client() as client:
        if body.get("b_id") == 1:
            body = {**body, "b_id": history_server.photos["crop"]}
        response = client.post("/api/compare", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]["message"]


def test_compare_with_an_unknown_id_is_404(history_server):
    with history_server.client() as client:
        response = client.post("/api/compare", files={"a": ("q.jpg", history_server.query)},
                               data={"b_id": "999999"})
    assert response.status_code == 404


@pytest.mark.parametrize("query", ["b=1", "q=zz&b=1", "q=" + "0" * 24, "b=1&q=" + "0" * 24 + "&url=http://x/"])
def test_compare_page_refuses_bad_links(history_server, query):
    with history_server.client() as client:
        response = client.get(f"/compare?{query}")
    assert response.status_code in (400, 422), response.text


def test_sorts_are_documented_in_openapi(history_server):
    with history_server.client() as client:
        schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/search"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["sort"]["enum"] == list(SORTS)
