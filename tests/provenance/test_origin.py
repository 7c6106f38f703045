"""Origin analysis: detail (upscale detection), pages, creator, larger versions, likely original."""

from __future__ import annotations

import io

import pytest
from helpers import PHOTOS, jpeg_bytes, photo
from PIL import Image

from picorigin._provenance.origin import (
    annotate,
    compute_detail,
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


@pytest.mark.parametrize("name", PHOTOS[:4])
def test_genuine_photos_carry_full_detail(name):
    image = photo(name)
    assert compute_detail(image) == 1.0
    assert compute_detail(halve(image)) == 1.0
    assert compute_detail(reopen(jpeg_bytes(image, 30))) == 1.0     # compression is not upscaling


@pytest.mark.parametrize("name", PHOTOS[:4])
def test_upscales_carry_the_detail_of_their_source(name):
    image = photo(name)
    # The measure errs towards less detail past the true factor (see origin's module notes).
    assert compute_detail(enlarge(halve(image), 2)) <= 0.5
    assert compute_detail(reopen(jpeg_bytes(enlarge(halve(image), 2), 85))) <= 0.5
    assert compute_detail(enlarge(halve(image), 2, Image.NEAREST)) <= 0.5
    assert compute_detail(enlarge(image, 4, Image.LANCZOS)) == 0.25


def test_detail_of_tiny_and_flat_images_is_full():
    assert compute_detail(Image.new("RGB", (20, 20), "red")) == 1.0
    assert compute_detail(Image.new("L", (600, 400), 128)) == 1.0


def test_jpeg_quality_reads_the_quantisation_tables():
    image = photo("coffee")
    for quality in (30, 75, 95):
        assert jpeg_quality(jpeg_bytes(image, quality)) == pytest.approx(quality, abs=1)
    png = io.BytesIO()
    image.save(png, "PNG")
    assert jpeg_quality(png.getvalue()) is None
    assert jpeg_quality(b"not an image") is None


def record(id, width, height, *, detail=1.0, metadata=None, locations=(), quality=None,
           byte_size=10_000, uri=None):
    return {
        "id": id, "uri": uri or f"http://x.test/{id}.jpg", "width": width, "height": height,
        "format": "JPEG", "byte_size": byte_size, "metadata": metadata or {},
        "signals": {"detail": detail, **({"jpeg_quality": quality} if quality else {})},
        "locations": list(locations),
    }


def seen(page, uri, first, last=None, **extra):
    return {"uri": uri, "page_url": page, "page_title": f"title of {page}", "alt": None,
            "first_seen": first, "last_seen": last or first, "removed_at": None, **extra}


def test_an_upscale_is_not_a_larger_version():
    image = photo("coffee")                                   # 600 x 400
    small = halve(image)
    measured = {
        "original": compute_detail(image),
        "upscale": compute_detail(reopen(jpeg_bytes(enlarge(small, 4), 90))),
    }
    original = record(1, 600, 400, detail=measured["original"])
    upscale = record(2, 1200, 800, detail=measured["upscale"])
    assert effective_side(original) == 600
    assert effective_side(upscale) <= 345                    # carries the 300-px copy's detail
    query = {"width": 300, "height": 200, "detail": 1.0}
    assert is_upscale(upscale, query) and is_upscale(upscale, original)
    assert not is_upscale(original, query)
    both = [{"id": 1, "kind": "near_duplicate"}, {"id": 2, "kind": "near_duplicate"}]
    out = annotate(query, both, {1: original, 2: upscale})["matches"]
    assert (out[1]["larger_than_query"], out[1]["upscaled"]) == (True, False)
    assert (out[2]["larger_than_query"], out[2]["upscaled"]) == (False, True)


def test_likely_original_prefers_genuine_resolution_over_an_upscale():
    original = record(1, 600, 400, metadata={"camera": "Canon EOS 5D"})
    upscale = record(2, 1200, 800, detail=0.25)
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
