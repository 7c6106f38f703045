"""HTML extraction: images from every place a page can show them, with their page signals."""

from __future__ import annotations

from picorigin._provenance.extract import (
    MAX_IMAGES,
    MAX_LINKS,
    PageExtractor,
    extract,
    normalize_url,
    parse_srcset,
)

BASE = "http://site.test/articles/story.html"

ARTICLE = """<!doctype html>
<html><head>
<title>  A  cat
 story </title>
<meta name="author" content="Jane Photographer">
<meta property="article:author" content="https://site.test/jane">
<meta property="article:published_time" content="2019-05-01T08:00:00Z">
<meta property="og:image" content="/img/cat-og.jpg">
<meta name="twitter:image" content="https://cdn.test/cat-tw.png">
<link rel="license" href="https://creativecommons.org/licenses/by/4.0/">
</head><body>
<figure>
  <img src="../img/cat-450.jpg" alt="A cat on a chair"
       srcset="/img/cat-450.jpg 450w, /img/cat-1200.jpg 1200w, /img/cat-600.jpg 600w">
  <figcaption>The cat, <b>photographed</b> in May.</figcaption>
</figure>
<picture>
  <source srcset="/img/dog.webp 1x, /img/dog@2x.webp 2x" type="image/webp">
  <img src="/img/dog.jpg" alt="A dog">
</picture>
<img data-src="/img/lazy.jpg" alt="">
<img src="data:image/png;base64,AAAA">
<a href="/img/full/cat-original.JPG">full size</a>
<a href="other.html#comments">more</a>
<a href="mailto:jane@site.test">mail</a>
<a href="https://elsewhere.test/page?x=1" rel="nofollow">not followed</a>
<a href="https://elsewhere.test/page?x=2">followed</a>
<time datetime="2020-01-01">later</time>
</body></html>"""


def urls(page):
    return [image.url for image in page.images]


def test_images_come_from_img_srcset_picture_meta_and_links():
    page = extract(ARTICLE, BASE)
    assert urls(page) == [
        "http://site.test/img/cat-450.jpg",
        "http://site.test/img/cat-1200.jpg",     # srcset candidates, largest first
        "http://site.test/img/cat-600.jpg",
        "http://site.test/img/dog@2x.webp",
        "http://site.test/img/dog.webp",
        "http://site.test/img/dog.jpg",
        "http://site.test/img/lazy.jpg",
        "http://site.test/img/full/cat-original.JPG",
        "http://site.test/img/cat-og.jpg",
        "https://cdn.test/cat-tw.png",
    ]
    by_url = {image.url: image for image in page.images}
    assert by_url["http://site.test/img/cat-450.jpg"].via == ["img", "srcset"]
    assert by_url["http://site.test/img/dog.webp"].via == ["picture"]
    assert by_url["http://site.test/img/cat-og.jpg"].via == ["og:image"]
    assert by_url["https://cdn.test/cat-tw.png"].via == ["twitter:image"]
    assert by_url["http://site.test/img/full/cat-original.JPG"].via == ["link"]


def test_alt_and_caption_travel_with_each_image():
    page = extract(ARTICLE, BASE)
    by_url = {image.url: image for image in page.images}
    cat = by_url["http://site.test/img/cat-1200.jpg"]
    assert cat.alt == "A cat on a chair"
    assert cat.caption == "The cat, photographed in May."
    # The <picture>'s <img> names its <source>s; nothing outside a <figure> gets a caption.
    assert by_url["http://site.test/img/dog@2x.webp"].alt == "A dog"
    assert by_url["http://site.test/img/dog.jpg"].caption is None
    assert by_url["http://site.test/img/lazy.jpg"].alt is None


def test_page_signals():
    page = extract(ARTICLE, BASE)
    assert page.title == "A cat story"
    assert (page.author, page.author_source) == ("Jane Photographer", "page:meta author")
    assert page.license == "https://creativecommons.org/licenses/by/4.0/"
    assert page.published == "2019-05-01T08:00:00Z"      # the meta beats the later <time>
    sighting = page.sighting(page.images[1])
    assert sighting == {
        "page_url": BASE, "page_title": "A cat story", "alt": "A cat on a chair",
        "caption": "The cat, photographed in May.", "author": "Jane Photographer",
        "author_source": "page:meta author", "license": "https://creativecommons.org/licenses/by/4.0/",
        "published": "2019-05-01T08:00:00Z",
    }


def test_links_are_normalised_deduplicated_and_respect_nofollow():
    page = extract(ARTICLE, BASE)
    assert page.links == [
        "http://site.test/articles/other.html",
        "https://elsewhere.test/page?x=2",
    ]
    assert not page.nofollow and not page.noimageindex


def test_fallback_signals_rel_author_time_and_base():
    html = """<html><head><base href="https://cdn.test/assets/">
    <meta name="robots" content="noindex, NOFOLLOW"></head><body>
    <p>By <a rel="author" href="/people/ann">Ann Author</a></p>
    <time datetime="2018-03-04">March</time><img src="pic.png" title="titled">
    <figure><img src="a.jpg"><figcaption>unclosed figure"""
    page = extract(html, BASE)
    assert (page.author, page.author_source) == ("Ann Author", "page:rel=author")
    assert page.published == "2018-03-04"
    assert urls(page) == ["https://cdn.test/assets/pic.png", "https://cdn.test/assets/a.jpg"]
    assert page.images[0].alt == "titled"
    assert page.images[1].caption == "unclosed figure"
    assert page.nofollow and not page.noimageindex
    assert page.title is None


def test_parse_srcset_orders_candidates_and_keeps_commas_in_urls():
    assert parse_srcset("a.jpg 1x, b.jpg 3x,c.jpg 2x") == ["b.jpg", "c.jpg", "a.jpg"]
    assert parse_srcset("s.jpg 100w, l.jpg 900w , m.jpg 400w") == ["l.jpg", "m.jpg", "s.jpg"]
    assert parse_srcset("/img,v=2/x.jpg 2x, /y.jpg") == ["/img,v=2/x.jpg", "/y.jpg"]
    assert parse_srcset("only.jpg") == ["only.jpg"]
    assert parse_srcset(" , ") == []


def test_normalize_url():
    assert normalize_url("HTTP://Site.TEST:80/a/../b?q=1#frag") == "http://site.test/b?q=1"
    assert normalize_url("https://site.test:8443") == "https://site.test:8443/"
    assert normalize_url("javascript:alert(1)") is None
    assert normalize_url("//cdn.test/x.png", "https://site.test/") == "https://cdn.test/x.png"
    assert normalize_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
    assert normalize_url("http://site.test:99999/") is None


def test_streaming_in_small_chunks_gives_the_same_page():
    extractor = PageExtractor(BASE)
    for start in range(0, len(ARTICLE), 7):
        extractor.feed(ARTICLE[start : start + 7])
    extractor.close()
    whole = extract(ARTICLE, BASE)
    assert urls(extractor.page) == urls(whole)
    assert extractor.page.sighting(extractor.page.images[0]) == whole.sighting(whole.images[0])


def test_a_huge_page_keeps_bounded_lists():
    html = "".join(f'<img src="/i{n}.jpg" alt="{"x" * 1500}"><a href="/p{n}">p</a>'
                   for n in range(MAX_LINKS + 10))
    page = extract("<title>" + "t" * 100_000 + "</title>" + html, BASE)
    assert len(page.images) == MAX_IMAGES
    assert len(page.links) == MAX_LINKS
    assert len(page.title) <= 1000 and len(page.images[0].alt) <= 1000
