"""Structured data in a page (JSON-LD, microdata, RDFa) tied to the images it describes."""

from __future__ import annotations

import json
import time

from picorigin._provenance.extract import PageExtractor, extract
from picorigin._provenance.structured import MAX_IMAGES

BASE = "http://site.test/story/page.html"


def jsonld(value) -> str:
    return f'<script type="application/ld+json">{json.dumps(value)}</script>'


def rights_of(page) -> dict[str, list[tuple[str, str, str]]]:
    return {ref.url: [(c["field"], c["value"], c["source"]) for c in ref.rights]
            for ref in page.images}


def test_picture_sources_and_srcset_candidates_share_the_claims_of_the_one_named():
    html = f"""{jsonld({"@type": "ImageObject", "thumbnailUrl": "/img/dog-small.webp",
                        "creator": "Dee Dog"})}
    {jsonld({"@type": "schema:ImageObject", "contentUrl": "http://site.test/img/cat-1200.jpg",
             "creator": [{"@type": "Person", "name": "Cat One"}, "Cat Two"]})}
    <picture><source srcset="/img/dog-small.webp 1x, /img/dog-big.webp 2x">
      <img src="/img/dog.jpg"></picture>
    <img src="/img/cat-600.jpg" srcset="/img/cat-600.jpg 600w, /img/cat-1200.jpg 1200w">
    <img src="/img/other.jpg">"""
    found = rights_of(extract(html, BASE))
    dog = [("creator", "Dee Dog", "jsonld:creator")]
    cats = [("creator", "Cat One", "jsonld:creator"), ("creator", "Cat Two", "jsonld:creator")]
    assert found == {
        "http://site.test/img/dog-big.webp": dog, "http://site.test/img/dog-small.webp": dog,
        "http://site.test/img/dog.jpg": dog,
        "http://site.test/img/cat-600.jpg": cats, "http://site.test/img/cat-1200.jpg": cats,
        "http://site.test/img/other.jpg": [],
    }


def test_a_broken_block_costs_only_itself_and_the_sighting_carries_the_claims():
    html = f"""<script type="application/ld+json">{{"@type": "ImageObject", oops</script>
    <script type="application/ld+json">
      // a comment some sites leave in
      {{"@type": "Photograph", "image": "/a.jpg", "creator": "Pat",
        "dateCreated": "2020-05-01", "license": {{"@type": "CreativeWork",
                                                  "url": "https://license.test/a"}}}}
    </script><img src="/a.jpg" alt="a">"""
    page = extract(html, BASE)
    (ref,) = page.images
    assert page.sighting(ref)["rights"] == {"claims": [
        {"field": "creator", "value": "Pat", "source": "jsonld:creator"},
        {"field": "license", "value": "https://license.test/a", "source": "jsonld:license"},
        {"field": "date_created", "value": "2020-05-01", "source": "jsonld:dateCreated"},
    ]}


def test_an_image_only_the_markup_names_is_still_an_image_of_the_page():
    page = extract(jsonld({"@type": "ImageObject", "contentUrl": "/lazy/hero.jpg",
                           "creditText": "Hero Studio"}) + "<p>no img element</p>", BASE)
    (ref,) = page.images
    assert (ref.url, ref.via) == ("http://site.test/lazy/hero.jpg", ["jsonld"])
    assert ref.rights == [{"field": "credit", "value": "Hero Studio",
                           "source": "jsonld:creditText"}]


def test_pages_without_structured_data_or_claims_have_no_rights():
    page = extract('<meta property="og:image" content="/a.jpg"><img src="/b.jpg">', BASE)
    assert [ref.rights for ref in page.images] == [[], []]
    assert all("rights" not in page.sighting(ref) for ref in page.images)
    # Described, but not one of the claims recorded: nothing to keep.
    page = extract(jsonld({"@type": "ImageObject", "contentUrl": "/b.jpg", "width": 10})
                   + '<img src="/b.jpg">', BASE)
    assert page.images[0].rights == []


def test_streamed_in_pieces_the_page_gives_the_same_claims():
    html = (jsonld({"@type": "ImageObject", "contentUrl": "/a.jpg", "creator": "Pat"})
            + '<div itemscope itemtype="https://schema.org/ImageObject">'
              '<img itemprop="contentUrl" src="/b.jpg"><span itemprop="creator">Mo</span></div>')
    extractor = PageExtractor(BASE)
    for start in range(0, len(html), 7):
        extractor.feed(html[start:start + 7])
    extractor.close()
    assert rights_of(extractor.page) == rights_of(extract(html, BASE)) == {
        "http://site.test/a.jpg": [("creator", "Pat", "jsonld:creator")],
        "http://site.test/b.jpg": [("creator", "Mo", "microdata:creator")],
    }


def test_hostile_structured_data_is_bounded():
    deep = "[" * 50_000 + "]" * 50_000                  # deeper than json's recursion limit
    many = [{"@type": "ImageObject", "contentUrl": f"/i/{n}.jpg", "creator": "X" * 2000}
            for n in range(MAX_IMAGES + 300)]
    nested: dict = {"@type": "ImageObject", "contentUrl": "/nested.jpg", "creator": "Deep"}
    for _ in range(200):
        nested = {"@type": "Thing", "about": nested}
    html = (f'<script type="application/ld+json">{deep}</script>' + jsonld(many)
            + jsonld(nested) + '<img src="/i/0.jpg">')
    started = time.perf_counter()
    page = extract(html, BASE)
    assert time.perf_counter() - started < 10
    described = [ref for ref in page.images if ref.rights]
    assert len(described) <= MAX_IMAGES
    assert len(page.images[0].rights[0]["value"]) == 1000      # a claim's text is capped
    assert "http://site.test/nested.jpg" not in {ref.url for ref in page.images}
