"""Issue 18's bar: pages on 127.0.0.1 describe their photos in schema.org structured data; a crawl
records it and a search for a copy of each photo answers its creator and rights, with sources.

One site, a page per way of writing it: two JSON-LD blocks for the two photos of one story (one
shown through ``srcset``, described by its large candidate), a Yoast-style ``@graph`` whose
``NewsArticle`` points at its ``ImageObject`` by ``@id``, a top-level array describing two photos
(one of which says otherwise in its EXIF), a ``NewsArticle`` with an inline ``image``, microdata,
and RDFa.
"""

from __future__ import annotations

import io
import json

import pytest
from helpers import jpeg_bytes, photo
from PIL import Image
from provenance.miniweb import MiniWeb

from picorigin import Engine
from picorigin._provenance.crawl import crawl

CC_BY = "https://creativecommons.org/licenses/by/4.0/"
CC_BY_NC = "https://creativecommons.org/licenses/by-nc/4.0/"


def jsonld(value) -> str:
    return f'<script type="application/ld+json">{json.dumps(value)}</script>'


def with_artist(image: Image.Image, artist: str) -> bytes:
    exif = Image.Exif()
    exif[0x013B] = artist
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.LANCZOS)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    names = ("astronaut", "rocket", "coffee", "chelsea", "immunohistochemistry",
             "hubble_deep_field", "camera", "coins")
    pictures = {name: photo(name) for name in names}
    files = {name: jpeg_bytes(image, 90) for name, image in pictures.items()}
    files["astronaut-small"] = jpeg_bytes(half(pictures["astronaut"]), 85)
    files["chelsea"] = with_artist(pictures["chelsea"], "Exif Person")
    with MiniWeb() as site:
        for name in names:
            site.file(f"/img/{name}.jpg", files[name])
        site.file("/img/astronaut-small.jpg", files["astronaut-small"])
        site.page("/", "".join(f'<a href="/{p}.html">{p}</a> ' for p in
                                ("story", "graph", "array", "news", "micro", "rdfa")))
        site.page("/story.html", f"""<html><head><title>Launch</title>
            <meta name="author" content="Site Editor">
            {jsonld({"@context": "https://schema.org", "@type": "ImageObject",
                     "contentUrl": "/img/astronaut.jpg",
                     "creator": {"@type": "Person", "name": "Ann Astro"},
                     "creditText": "Ann Astro / Space Agency", "license": CC_BY,
                     "acquireLicensePage": "/licensing/astronaut",
                     "copyrightNotice": "(c) 2019 Ann Astro"})}
            {jsonld({"@context": "https://schema.org", "@type": "ImageObject",
                     "contentUrl": "/img/rocket.jpg", "creator": "Rob Rocket",
                     "license": CC_BY_NC})}
            </head><body>
            <img src="/img/astronaut-small.jpg" alt="astronaut"
                 srcset="/img/astronaut-small.jpg 256w, /img/astronaut.jpg 512w">
            <img src="/img/rocket.jpg" alt="rocket"></body></html>""")
        site.page("/graph.html", f"""<html><head><title>Coffee</title>
            {jsonld({"@context": "https://schema.org", "@graph": [
                {"@type": "WebPage", "@id": site.url("/graph.html"),
                 "primaryImageOfPage": {"@id": "#primaryimage"}},
                {"@type": "ImageObject", "@id": "#primaryimage",
                 "url": site.url("/img/coffee.jpg"), "contentUrl": site.url("/img/coffee.jpg"),
                 "creator": {"@type": "Organization", "name": "Coffee Co"},
                 "creditText": "Coffee Co", "copyrightHolder": {"@type": "Organization",
                                                                "name": "Coffee Co"},
                 "license": CC_BY, "acquireLicensePage": site.url("/buy/coffee")},
                {"@type": "NewsArticle", "author": {"@type": "Person", "name": "Writer"},
                 "image": {"@id": "#primaryimage"}}]})}
            </head><body><img src="/img/coffee.jpg"></body></html>""")
        site.page("/array.html", f"""<html><head><title>Two photos</title>
            {jsonld([{"@context": "https://schema.org", "@type": "ImageObject",
                      "contentUrl": "/img/chelsea.jpg", "creator": "Markup Person",
                      "license": CC_BY},
                     {"@context": "https://schema.org", "@type": "ImageObject",
                      "contentUrl": "/img/immunohistochemistry.jpg", "creator": "Ivy Lab",
                      "license": CC_BY_NC, "copyrightNotice": "(c) Ivy Lab"}])}
            </head><body><img src="/img/chelsea.jpg"><img src="/img/immunohistochemistry.jpg">
            </body></html>""")
        site.page("/news.html", f"""<html><head><title>Deep field</title>
            {jsonld({"@context": "https://schema.org", "@type": "NewsArticle",
                     "author": "Reporter", "image": [{
                         "@type": "ImageObject", "url": "/img/hubble_deep_field.jpg",
                         "creator": {"@type": "Organization", "name": "Hubble Team"},
                         "creditText": "Hubble Team", "license": CC_BY,
                         "acquireLicensePage": "/licensing/hubble"}]})}
            </head><body><img src="/img/hubble_deep_field.jpg"></body></html>""")
        site.page("/micro.html", """<html><head><title>Camera</title></head><body>
            <div itemscope itemtype="https://schema.org/ImageObject">
              <img itemprop="contentUrl" src="/img/camera.jpg" alt="camera">
              <span itemprop="creator" itemscope itemtype="https://schema.org/Person">
                <span itemprop="name">Mia Micro</span></span>
              <span itemprop="creditText">Mia Micro Photography</span>
              <link itemprop="license" href="https://creativecommons.org/publicdomain/zero/1.0/">
              <link itemprop="acquireLicensePage" href="/licensing/camera">
            </div></body></html>""")
        site.page("/rdfa.html", """<html><head><title>Coins</title></head><body>
            <div vocab="https://schema.org/" typeof="ImageObject">
              <img property="contentUrl" src="/img/coins.jpg" alt="coins">
              <span property="creator" typeof="Person"><span property="name">Rhea Rdfa</span></span>
              <a property="license" href="https://creativecommons.org/licenses/by-sa/4.0/">BY-SA</a>
            </div></body></html>""")
        engine = Engine(tmp_path_factory.mktemp("rights"),
                        settings={"allow_private_urls": True, "stages": ""})
        report = crawl(engine, [site.url("/")], depth=1, max_pages=20, rate=500.0,
                       allow_private=True)
        yield {"site": site, "engine": engine, "report": report, "pictures": pictures}
        engine.close()


def search_copy(web, name: str) -> dict:
    """Search a resized, recompressed copy of ``name``; its best copy-kind match."""
    copy = jpeg_bytes(half(web["pictures"][name]).resize((200, 200 * web["pictures"][name].height
                                                         // web["pictures"][name].width)), 70)
    result = web["engine"].search(copy, k=5).to_dict()
    assert result["matches"] and result["matches"][0]["kind"] in ("exact", "near_duplicate")
    return result


def claims(match: dict, field: str) -> set[tuple[str, str]]:
    return {(c["value"], c["source"]) for c in match["rights"]["sources"] if c["field"] == field}


def test_the_crawl_reads_every_page(web):
    assert web["report"].failed == []
    assert web["report"].pages == 7
    assert len(web["report"].image_ids) == 9


def test_two_photos_of_one_page_each_get_their_own_creator_and_licence(web):
    site = web["site"]
    astronaut = search_copy(web, "astronaut")["matches"][0]
    assert (astronaut["creator"]["name"], astronaut["creator"]["source"]) == (
        "Ann Astro", "jsonld:creator")
    assert astronaut["creator"]["page_url"] == site.url("/story.html")
    rights = astronaut["rights"]
    assert rights["license"] == CC_BY
    assert rights["acquire_license_page"] == site.url("/licensing/astronaut")
    assert rights["credit"] == "Ann Astro / Space Agency"
    assert rights["copyright_notice"] == "(c) 2019 Ann Astro"
    assert claims(astronaut, "license") == {(CC_BY, "jsonld:license")}
    assert claims(astronaut, "acquire_license_page") == {
        (site.url("/licensing/astronaut"), "jsonld:acquireLicensePage")}
    # The page's own author is kept as a claim, and disagrees: both are listed, not hidden.
    assert claims(astronaut, "creator") == {("Ann Astro", "jsonld:creator"),
                                            ("Site Editor", "page:meta author")}
    assert astronaut["rights"]["conflicts"] == ["creator"]

    rocket = search_copy(web, "rocket")["matches"][0]
    assert (rocket["creator"]["name"], rocket["creator"]["source"]) == (
        "Rob Rocket", "jsonld:creator")
    assert rocket["rights"]["license"] == CC_BY_NC
    assert rocket["rights"]["credit"] is None


def test_the_srcset_sibling_of_a_described_image_shares_its_claims(web):
    # The markup names the 512-px candidate; the 256-px one is the same picture.
    engine, site = web["engine"], web["site"]
    result = search_copy(web, "astronaut")
    for match in result["matches"]:
        if match["kind"] in ("exact", "near_duplicate"):
            sightings = engine.sightings(match["id"])
            assert sightings[0]["rights"]["claims"][0] == {
                "field": "creator", "value": "Ann Astro", "source": "jsonld:creator"}
    uris = {uri for m in result["matches"] for uri in m["uris"]}
    assert {site.url("/img/astronaut.jpg"), site.url("/img/astronaut-small.jpg")} <= uris


def test_a_graph_ties_the_image_object_not_the_article_author(web):
    site = web["site"]
    coffee = search_copy(web, "coffee")["matches"][0]
    assert (coffee["creator"]["name"], coffee["creator"]["source"]) == (
        "Coffee Co", "jsonld:creator")
    assert coffee["rights"]["license"] == CC_BY
    assert coffee["rights"]["acquire_license_page"] == site.url("/buy/coffee")
    assert coffee["rights"]["copyright_holder"] == "Coffee Co"
    assert ("Writer", "jsonld:author") not in claims(coffee, "creator")


def test_an_array_describes_each_image_and_exif_disagreeing_is_kept(web):
    chelsea = search_copy(web, "chelsea")["matches"][0]
    # The file's own Artist wins, and the markup's different creator is listed beside it.
    assert (chelsea["creator"]["name"], chelsea["creator"]["source"]) == (
        "Exif Person", "exif:Artist")
    assert claims(chelsea, "creator") == {("Exif Person", "exif:Artist"),
                                          ("Markup Person", "jsonld:creator")}
    assert "creator" in chelsea["rights"]["conflicts"]
    assert chelsea["rights"]["license"] == CC_BY

    lab = search_copy(web, "immunohistochemistry")["matches"][0]
    assert (lab["creator"]["name"], lab["rights"]["license"]) == ("Ivy Lab", CC_BY_NC)
    assert lab["rights"]["copyright_notice"] == "(c) Ivy Lab"
    assert lab["rights"]["conflicts"] == []


def test_a_news_article_image_is_credited_to_its_creator_not_the_reporter(web):
    site = web["site"]
    hubble = search_copy(web, "hubble_deep_field")["matches"][0]
    assert (hubble["creator"]["name"], hubble["creator"]["source"]) == (
        "Hubble Team", "jsonld:creator")
    assert hubble["rights"]["credit"] == "Hubble Team"
    assert hubble["rights"]["acquire_license_page"] == site.url("/licensing/hubble")
    assert ("Reporter", "jsonld:author") not in claims(hubble, "creator")


def test_microdata_and_rdfa_give_their_claims_with_their_syntax(web):
    site = web["site"]
    camera = search_copy(web, "camera")["matches"][0]
    assert (camera["creator"]["name"], camera["creator"]["source"]) == (
        "Mia Micro", "microdata:creator")
    assert camera["rights"]["credit"] == "Mia Micro Photography"
    assert claims(camera, "license") == {
        ("https://creativecommons.org/publicdomain/zero/1.0/", "microdata:license")}
    assert claims(camera, "acquire_license_page") == {
        (site.url("/licensing/camera"), "microdata:acquireLicensePage")}

    coins = search_copy(web, "coins")["matches"][0]
    assert (coins["creator"]["name"], coins["creator"]["source"]) == ("Rhea Rdfa", "rdfa:creator")
    assert claims(coins, "license") == {
        ("https://creativecommons.org/licenses/by-sa/4.0/", "rdfa:license")}


def test_the_likely_original_counts_the_claims(web):
    result = search_copy(web, "astronaut")
    evidence = " ".join(result["likely_original"]["evidence"])
    assert "credit and rights stated (" in evidence and "jsonld:license" in evidence
