"""Origin analysis: larger versions and upscales, pages, creator, likely original."""

from __future__ import annotations

import io

import pytest
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin._provenance import enlarged
from picorigin._provenance.origin import (
    annotate,
    creator,
    effective_side,
    group_copies,
    is_upscale,
    jpeg_quality,
    likely_original,
    pages,
    rights,
)


def reopen(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def halve(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


def enlarge(image: Image.Image, factor: float, kernel=Image.BICUBIC) -> Image.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)), kernel)


def test_jpeg_quality_reads_the_quantisation_tables():
    image = photo("coffee")
    for quality in (30, 75, 95):
        assert jpeg_quality(jpeg_bytes(image, quality)) == pytest.approx(quality, abs=1)
    png = io.BytesIO()
    image.save(png, "PNG")
    assert jpeg_quality(png.getvalue()) is None
    assert jpeg_quality(b"not an image") is None


def record(id, width, height, *, traces=None, metadata=None, locations=(), quality=None,
           byte_size=10_000, uri=None):
    """An image record; ``traces``: its enlargement traces (``enlarged.measure``'s output)."""
    return {
        "id": id, "uri": uri or f"http://x.test/{id}.jpg", "width": width, "height": height,
        "format": "JPEG", "byte_size": byte_size, "metadata": metadata or {},
        "signals": {**(traces or {"jpeg_grids": []}),
                    **({"jpeg_quality": quality} if quality else {})},
        "locations": list(locations),
    }


def seen(page, uri, first, last=None, **extra):
    return {"uri": uri, "page_url": page, "page_title": f"title of {page}", "alt": None,
            "first_seen": first, "last_seen": last or first, "removed_at": None, **extra}


def test_an_upscale_is_not_a_larger_version():
    image = photo("coffee")                                   # 600 x 400
    small = reopen(jpeg_bytes(halve(image), 85))              # the query's file, decoded
    traces = {
        "original": enlarged.measure(reopen(jpeg_bytes(image, 95))),
        "upscale": enlarged.measure(reopen(jpeg_bytes(enlarge(small, 4), 90))),
    }
    original = record(1, 600, 400, traces=traces["original"])
    upscale = record(2, 1200, 800, traces=traces["upscale"])
    query = {"width": 300, "height": 200, **enlarged.measure(small)}
    assert is_upscale(upscale, query) and not is_upscale(original, query)
    assert is_upscale(upscale, original)   # the grid's 2nd harmonic: no more than 600 px either
    assert effective_side(original, [query, upscale]) == 600
    assert effective_side(upscale, [query, original]) == 300  # carries the query's detail
    both = [{"id": 1, "kind": "near_duplicate"}, {"id": 2, "kind": "near_duplicate"}]
    found = annotate(query, both, {1: original, 2: upscale})
    out = found["matches"]
    assert (out[1]["larger_than_query"], out[1]["upscaled"]) == (True, False)
    assert (out[2]["larger_than_query"], out[2]["upscaled"]) == (False, True)
    assert found["query_upscaled"] is False


def test_a_copy_smaller_than_the_query_is_never_its_upscale():
    # Whatever its traces say: a copy is an upscale only of copies smaller than itself.
    grid = {"jpeg_grids": [[16.0, 3.0]], "nearest_factor": 2}
    small, query = record(1, 300, 200, traces=grid), {"width": 600, "height": 400}
    assert not is_upscale(small, query)
    assert not is_upscale(record(2, 640, 427, traces=grid), query)      # within 15 %
    out = annotate(query, [{"id": 1, "kind": "near_duplicate"}], {1: small})
    assert (out["matches"][1]["upscaled"], out["matches"][1]["larger_than_query"]) == (
        False, False)


def test_the_query_can_be_the_upscale():
    # The query (600 px) carries the grid of a 300-px JPEG: it is an enlargement of that copy,
    # which is not an upscale of anything; the original is larger than the query.
    query = {"width": 600, "height": 400, "jpeg_grids": [[16.0, 1.9]]}
    small, original = record(1, 300, 200), record(2, 1200, 800)
    found = annotate(query, [{"id": 1, "kind": "near_duplicate"},
                             {"id": 2, "kind": "near_duplicate"}], {1: small, 2: original})
    assert found["query_upscaled"] is True
    assert (found["matches"][1]["upscaled"], found["matches"][1]["larger_than_query"]) == (
        False, False)
    assert (found["matches"][2]["upscaled"], found["matches"][2]["larger_than_query"]) == (
        False, True)


def test_an_upscale_of_a_copy_larger_than_the_query_is_still_larger():
    # 2400 px enlarged 2x from the 1200-px copy: an upscale, yet it holds more than the query.
    query = {"width": 300, "height": 200}
    copy, upscale = record(1, 1200, 800), record(2, 2400, 1600, traces={
        "jpeg_grids_smooth": [[16.0, 1.0]]})
    found = annotate(query, [{"id": 1, "kind": "near_duplicate"},
                             {"id": 2, "kind": "near_duplicate"}], {1: copy, 2: upscale})
    assert (found["matches"][2]["upscaled"], found["matches"][2]["larger_than_query"]) == (
        True, True)
    assert effective_side(upscale, [query, copy]) == 1200


def test_unmeasured_records_make_no_upscale_claim():
    bare = {"id": 1, "width": 1200, "height": 800, "signals": {"detail": 0.25}}
    assert not is_upscale(bare, {"width": 300, "height": 200})
    assert effective_side(bare) == 1200


def test_likely_original_prefers_genuine_resolution_over_an_upscale():
    original = record(1, 600, 400, metadata={"camera": "Canon EOS 5D"})
    upscale = record(2, 1200, 800, traces={"jpeg_grids": [[32.0, 1.6]]})   # 4x of 300 px
    small = record(3, 300, 200)
    result = likely_original([upscale, small, original])
    assert result["id"] == 1 and result["decided_by"] == "largest genuine resolution"
    assert result["evidence"][0].startswith("largest genuine resolution (600x400")
    assert "camera EXIF present (Canon EOS 5D)" in result["evidence"]
    assert result["uri"] == "http://x.test/1.jpg"


def test_likely_original_rejects_crops_then_reads_exif_dates_and_compression():
    full = record(1, 600, 400)
    crop = record(2, 700, 700)                               # bigger, but its aspect is off
    same = record(3, 600, 400, metadata={"date_taken": "2018:06:01 10:00:00"})
    result = likely_original([full, crop, same])
    assert (result["id"], result["decided_by"]) == (3, "camera EXIF")
    assert result["evidence"][0] == "camera EXIF present (taken 2018:06:01 10:00:00)"

    crawled = "2024-01-01T00:00:00+00:00"
    early = record(4, 600, 400, locations=[seen("http://a.test/", "u4", crawled,
                                                published="2017-03-03")])
    late = record(5, 600, 400, locations=[seen("http://b.test/", "u5", crawled)])
    result = likely_original([late, early])
    assert (result["id"], result["decided_by"]) == (4, "earliest sighting")
    assert result["evidence"][0] == "earliest sighting (published 2017-03-03 on http://a.test/)"

    worse, better = record(6, 600, 400, quality=70), record(7, 600, 400, quality=92)
    result = likely_original([worse, better])
    assert (result["id"], result["decided_by"]) == (7, "least recompressed")
    assert "least recompressed (JPEG quality 92)" in result["evidence"]
    assert likely_original([]) is None
    assert likely_original([full])["decided_by"] == "only copy"


def test_pages_lists_every_sighting_of_every_copy_oldest_first():
    a = record(1, 600, 400, locations=[
        seen("http://a.test/story", "http://a.test/1.jpg", "2024-02-01T00:00:00+00:00"),
        {"uri": "/local/file.jpg", "page_url": "", "first_seen": "2020-01-01T00:00:00+00:00"},
    ])
    b = record(2, 300, 200, locations=[
        seen("http://b.test/blog", "http://b.test/2.jpg", "2024-01-01T00:00:00+00:00",
             "2024-03-01T00:00:00+00:00", removed_at="2024-03-02T00:00:00+00:00"),
        seen("http://a.test/story", "http://a.test/1.jpg", "2024-02-01T00:00:00+00:00"),
    ])
    listed = pages([a, b])
    assert [(p["page_url"], p["image_id"]) for p in listed] == [
        ("http://b.test/blog", 2), ("http://a.test/story", 1)]
    assert listed[0] == {
        "page_url": "http://b.test/blog", "image_url": "http://b.test/2.jpg", "image_id": 2,
        "title": "title of http://b.test/blog", "alt": None,
        "first_seen": "2024-01-01T00:00:00+00:00", "last_seen": "2024-03-01T00:00:00+00:00",
        "removed": True,
    }


def test_creator_prefers_the_files_own_metadata_and_says_where_it_came_from():
    page_only = record(1, 300, 200,
                       locations=[seen("http://b.test/", "u", "2024-01-01", author="Blogger")])
    credited = record(2, 300, 200, metadata={"credit": "Agency"})
    signed = record(3, 600, 400,
                    metadata={"creator": "Jane", "sources": {"creator": "exif:Artist"}})
    assert creator([page_only, credited, signed]) == {
        "name": "Jane", "source": "exif:Artist", "image_id": 3}
    assert creator([page_only, credited])["source"] == "metadata:credit"
    assert creator([page_only]) == {"name": "Blogger", "source": "page:author", "image_id": 1,
                                    "page_url": "http://b.test/"}
    assert creator([record(4, 1, 1)]) is None


def test_group_copies_chains_copy_relations():
    groups = group_copies([(1, 2), (3, 4), (2, 5), (4, 3)], ids=[9])
    assert groups == [{1, 2, 5}, {3, 4}, {9}]


def test_annotate_shares_group_pages_and_leaves_similar_matches_alone():
    original = record(1, 600, 400, metadata={"creator": "Jane"},
                      locations=[seen("http://a.test/", "http://a.test/1.jpg", "2024-01-01")])
    copy = record(2, 300, 200,
                  locations=[seen("http://b.test/", "http://b.test/2.jpg", "2024-01-02")])
    other = record(3, 640, 480,
                   locations=[seen("http://c.test/", "http://c.test/3.jpg", "2024-01-03")])
    out = annotate({"width": 300, "height": 200},
                   [{"id": 2, "kind": "exact"}, {"id": 1, "kind": "near_duplicate"},
                    {"id": 3, "kind": "similar"}],
                   {1: original, 2: copy, 3: other})
    assert out["likely_original"]["id"] == 1
    group = [p["page_url"] for p in out["matches"][2]["pages"]]
    assert group == ["http://a.test/", "http://b.test/"]
    assert out["matches"][1]["pages"] == out["matches"][2]["pages"]
    assert out["matches"][1]["creator"]["name"] == "Jane" == out["matches"][2]["creator"]["name"]
    assert [p["page_url"] for p in out["matches"][3]["pages"]] == ["http://c.test/"]
    assert out["matches"][3]["larger_than_query"] is False
    assert annotate({"width": 1, "height": 1}, [], {})["likely_original"] is None


def claim(field, value, source):
    return {"field": field, "value": value, "source": source}


def test_rights_lists_every_claim_and_names_the_fields_that_disagree():
    signed = record(1, 600, 400, metadata={
        "creator": "Ann", "creator_source": "exif:Artist", "copyright": "(c) Ann",
        "copyright_source": "exif:Copyright", "web_statement": "https://license.test/by/",
        "web_statement_source": "xmp:xmpRights:WebStatement", "licensor": "Agency",
        "licensor_source": "xmp:plus:Licensor", "licensor_url": "https://agency.test/buy",
        "licensor_url_source": "xmp:plus:LicensorURL"},
        locations=[seen("http://b.test/", "http://b.test/1.jpg", "2024-01-02",
                        license="https://license.test/nc", author="Blogger",
                        author_source="page:meta author",
                        rights={"claims": [claim("creator", "Bea", "jsonld:creator"),
                                           claim("license", "https://license.test/by",
                                                 "jsonld:license"),
                                           claim("credit", "Bea / Agency",
                                                 "jsonld:creditText")]})])
    out = rights([signed])
    assert (out["license"], out["acquire_license_page"], out["copyright_notice"],
            out["credit"]) == ("https://license.test/by/", "https://agency.test/buy",
                               "(c) Ann", "Bea / Agency")
    assert [(c["field"], c["source"]) for c in out["sources"]] == [
        ("creator", "exif:Artist"), ("copyright_notice", "exif:Copyright"),
        ("license", "xmp:xmpRights:WebStatement"), ("licensor", "xmp:plus:Licensor"),
        ("acquire_license_page", "xmp:plus:LicensorURL"),
        ("creator", "jsonld:creator"), ("license", "jsonld:license"),
        ("credit", "jsonld:creditText"), ("license", "page:rel=license"),
        ("creator", "page:meta author")]
    assert out["sources"][5]["page_url"] == "http://b.test/" and out["sources"][0]["image_id"] == 1
    # ".../by/" and ".../by" are one licence; the page's rel=license names another.
    assert out["conflicts"] == ["creator", "license"]
    assert rights([record(2, 1, 1)]) == {
        "license": None, "acquire_license_page": None, "copyright_notice": None,
        "credit": None, "copyright_holder": None, "usage_terms": None,
        "sources": [], "conflicts": []}


def test_creator_reads_structured_data_before_credit_and_the_licensor_before_page_authors():
    page = [seen("http://b.test/", "u", "2024-01-01", author="Writer",
                 rights={"claims": [claim("credit", "Studio", "jsonld:creditText")]})]
    marked = record(1, 300, 200, locations=[seen(
        "http://a.test/", "u", "2024-01-01",
        rights={"claims": [claim("creator", "Mo", "microdata:creator")]})])
    licensed = record(2, 300, 200, metadata={"licensor": "Agency",
                                             "licensor_source": "xmp:plus:Licensor"},
                      locations=page)
    credited = record(3, 300, 200, locations=page)
    assert creator([licensed, marked]) == {"name": "Mo", "source": "microdata:creator",
                                           "image_id": 1, "page_url": "http://a.test/"}
    assert creator([licensed])["source"] == "jsonld:creditText"
    assert creator([record(4, 1, 1, metadata=licensed["metadata"])]) == {
        "name": "Agency", "source": "xmp:plus:Licensor", "image_id": 4}
    assert creator([credited])["name"] == "Studio"


def test_likely_original_counts_credit_and_rights_claims():
    crawled = "2024-01-01T00:00:00+00:00"
    bare = record(1, 600, 400, locations=[seen("http://b.test/", "u1", crawled)])
    credited = record(2, 600, 400, locations=[seen(
        "http://a.test/", "u2", crawled,
        rights={"claims": [claim("creator", "Ann", "jsonld:creator"),
                           claim("license", "https://license.test/", "jsonld:license")]})])
    result = likely_original([bare, credited])
    assert (result["id"], result["decided_by"]) == (2, "credit and rights stated")
    assert result["evidence"][0] == (
        "credit and rights stated (2 claims: jsonld:creator, jsonld:license)")
    out = annotate({"width": 600, "height": 400},
                   [{"id": 1, "kind": "exact"}, {"id": 2, "kind": "near_duplicate"}],
                   {1: bare, 2: credited})
    assert out["matches"][1]["rights"] == out["matches"][2]["rights"]
    assert out["matches"][1]["rights"]["license"] == "https://license.test/"
