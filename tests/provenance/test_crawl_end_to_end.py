"""The issue's bar: crawl a generated mini-web on 127.0.0.1, then search with one copy.

Two servers stand for two sites. Site A has a story page with the larger original (EXIF and IPTC
creator, camera EXIF; shown through ``srcset`` and ``og:image``), a gallery page with a smaller
copy, an index linking straight to the original file, and a ``/private/`` area that robots.txt
forbids. Site B reuses the photo: the small copy on a blog, a heavily recompressed copy, a crop,
and an upscale of the small copy (bigger in pixels, no more detail).
"""

from __future__ import annotations

import io
import struct

import pytest
from helpers import jpeg_bytes, photo
from PIL import Image
from provenance.miniweb import MiniWeb

from picorigin import Engine
from picorigin._provenance.crawl import crawl

CREATOR = "Jane Photographer"


def iptc_segment(**datasets: str) -> bytes:
    """A JPEG APP13 (Photoshop IRB) segment holding IPTC IIM record-2 datasets."""
    numbers = {"by_line": 80, "credit": 110, "copyright": 116}
    iim = b"".join(b"\x1c\x02" + bytes([numbers[key]]) + struct.pack(">H", len(value.encode()))
                   + value.encode() for key, value in datasets.items())
    if len(iim) % 2:
        iim += b"\x00"
    block = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(iim)) + iim
    body = b"Photoshop 3.0\x00" + block
    return b"\xff\xed" + struct.pack(">H", len(body) + 2) + body


def original_jpeg(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x013B] = CREATOR                      # Artist
    exif[0x8298] = f"(c) 2018 {CREATOR}"        # Copyright
    exif[0x010F] = "Canon"                      # Make
    exif[0x0110] = "Canon EOS 5D Mark IV"       # Model
    exif.get_ifd(0x8769)[0x9003] = "2018:06:01 10:00:00"   # DateTimeOriginal
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    data = buffer.getvalue()
    return data[:2] + iptc_segment(by_line=CREATOR, credit="Example Agency") + data[2:]


def resized(image: Image.Image, width: int) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    coffee = photo("coffee")                                        # 600 x 400
    small = resized(coffee, 300)
    files = {
        "original": original_jpeg(coffee),
        "medium": jpeg_bytes(resized(coffee, 450), 80),
        "small": jpeg_bytes(small, 75),
        "recompressed": jpeg_bytes(Image.open(io.BytesIO(
            jpeg_bytes(resized(coffee, 450), 80))), 35),
        # Enlarged from the small file (a lossless source would leave no trace to find).
        "upscaled": jpeg_bytes(Image.open(io.BytesIO(jpeg_bytes(small, 75))).convert("RGB")
                               .resize((1200, 800), Image.BICUBIC), 90),
        "crop": jpeg_bytes(coffee.crop((60, 40, 540, 360)), 85),
        "leak": jpeg_bytes(resized(coffee, 500), 60),
        "cat": jpeg_bytes(photo("chelsea"), 85),
        "rocket": jpeg_bytes(photo("rocket"), 85),
        "query": jpeg_bytes(resized(coffee, 400), 85),
    }
    with MiniWeb() as a, MiniWeb() as b:
        a.robots("User-agent: *\nDisallow: /private/\n")
        a.page("/", f"""<html><head><title>Jane's photo site</title></head><body>
            <a href="/story.html">Story</a> <a href="/gallery.html">Gallery</a>
            <a href="/private/drafts.html">Drafts</a> <a href="{b.url('/blog.html')}">Friend</a>
            <a href="/img/coffee-600.jpg">Download the full-size coffee</a></body></html>""")
        a.page("/story.html", """<html><head><title>Morning coffee</title>
            <meta name="author" content="Jane Photographer">
            <meta property="article:published_time" content="2018-06-02T09:00:00+00:00">
            <meta property="og:image" content="/img/coffee-600.jpg">
            <link rel="license" href="https://creativecommons.org/licenses/by/4.0/"></head><body>
            <figure><img src="/img/coffee-450.jpg" alt="A cup of coffee"
                srcset="/img/coffee-450.jpg 450w, /img/coffee-600.jpg 600w">
            <figcaption>Coffee, first thing.</figcaption></figure>
            <img src="/private/coffee-hidden.jpg" alt="hidden"></body></html>""")
        a.page("/gallery.html", """<html><head><title>Gallery</title></head><body>
            <img src="/img/gallery/coffee-300.jpg" alt="coffee thumbnail">
            <img src="/img/gallery/cat.jpg" alt="a cat"></body></html>""")
        a.page("/private/drafts.html", '<img src="/private/coffee-leak.jpg">')
        a.file("/img/coffee-600.jpg", files["original"])
        a.file("/img/coffee-450.jpg", files["medium"])
        a.file("/img/gallery/coffee-300.jpg", files["small"])
        a.file("/img/gallery/cat.jpg", files["cat"])
        a.file("/private/coffee-hidden.jpg", files["leak"])
        a.file("/private/coffee-leak.jpg", files["leak"])
        b.page("/blog.html", f"""<html><head><title>A blog</title>
            <meta name="author" content="Blog Author"></head><body>
            <img src="{a.url('/img/gallery/coffee-300.jpg')}" alt="borrowed coffee">
            <a href="/hd.html">HD version!</a> <a href="/crops.html">Crops</a></body></html>""")
        b.page("/hd.html", """<html><head><title>Coffee in HD</title></head><body>
            <img src="/media/coffee-hd.jpg" alt="coffee HD">
            <img src="/media/coffee-small-q35.jpg" alt="coffee"></body></html>""")
        b.page("/crops.html", """<html><head><title>Crops</title></head><body>
            <img src="/media/coffee-crop.jpg"><img src="/media/rocket.jpg"></body></html>""")
        b.file("/media/coffee-hd.jpg", files["upscaled"])
        b.file("/media/coffee-small-q35.jpg", files["recompressed"])
        b.file("/media/coffee-crop.jpg", files["crop"])
        b.file("/media/rocket.jpg", files["rocket"])

        engine = Engine(tmp_path_factory.mktemp("data"), settings={"allow_private_urls": True})
        report = crawl(engine, [a.url("/")], depth=2, max_pages=50, allow=[b.netloc],
                       rate=200.0, concurrency=4, allow_private=True)
        yield {"a": a, "b": b, "engine": engine, "report": report, "files": files}
        engine.close()


def image_id(web, name):
    """The catalog id of one served file, found by its exact bytes."""
    result = web["engine"].search(web["files"][name], k=20, kinds=["exact"])
    assert result.matches, f"{name} was not indexed"
    return result.matches[0].id


def test_the_crawl_reads_every_allowed_page_and_nothing_forbidden(web):
    a, report = web["a"], web["report"]
    assert report.failed == []
    assert report.pages == 6     # A: index, story, gallery; B: blog, hd, crops
    assert sorted(report.blocked) == sorted([a.url("/private/drafts.html"),
                                             a.url("/private/coffee-hidden.jpg")])
    assert not [path for path in a.requests if path.startswith("/private/")]
    assert len(report.image_ids) == 8


def test_every_sighting_is_recorded_with_its_page_signals(web):
    a, b, engine = web["a"], web["b"], web["engine"]
    original = {s["page_url"]: s for s in engine.sightings(image_id(web, "original"))}
    assert set(original) == {a.url("/"), a.url("/story.html")}
    story = original[a.url("/story.html")]
    assert story["uri"] == a.url("/img/coffee-600.jpg")
    assert (story["page_title"], story["alt"], story["caption"]) == (
        "Morning coffee", "A cup of coffee", "Coffee, first thing.")
    assert (story["author"], story["published"]) == (CREATOR, "2018-06-02T09:00:00+00:00")
    assert story["license"] == "https://creativecommons.org/licenses/by/4.0/"
    assert story["first_seen"] and story["last_seen"]
    small = {s["page_url"]: s for s in engine.sightings(image_id(web, "small"))}
    assert set(small) == {a.url("/gallery.html"), b.url("/blog.html")}
    assert small[b.url("/blog.html")]["author"] == "Blog Author"
    metadata = engine.info(image_id(web, "original"))["metadata"]
    assert metadata["creator"] == CREATOR and metadata["camera"] == "Canon EOS 5D Mark IV"


def test_a_recrawl_refreshes_sightings_and_notices_removed_images(web, tmp_path):
    a, engine = web["a"], web["engine"]
    gallery = a.routes["/gallery.html"]
    a.page("/gallery.html", '<title>Gallery</title><img src="/img/gallery/cat.jpg" alt="a cat">')
    try:
        report = crawl(engine, [a.url("/gallery.html")], depth=0, rate=200.0,
                       allow_private=True, state_path=tmp_path / "crawl.sqlite")
        assert report.removed == 0            # a fresh frontier knows no earlier sightings
        report = crawl(engine, [a.url("/gallery.html")], depth=0, rate=200.0,
                       allow_private=True)     # the shared frontier saw coffee-300 here before
        assert report.removed == 1
        small = {s["page_url"]: s for s in engine.sightings(image_id(web, "small"))}
        assert small[a.url("/gallery.html")]["removed_at"]
        cat = engine.sightings(image_id(web, "cat"))[0]
        assert cat["last_seen"] >= cat["first_seen"]
    finally:
        a.routes["/gallery.html"] = gallery


def test_a_search_with_one_copy_answers_where_who_which_is_larger_and_which_is_original(web):
    """The contract of issue 5 for `search --json`; needs the engine to attach provenance."""
    a, b, engine = web["a"], web["b"], web["engine"]
    ids = {name: image_id(web, name)
           for name in ("original", "medium", "small", "recompressed", "upscaled")}
    result = engine.search(web["files"]["query"], k=20).to_dict()
    matches = {m["id"]: m for m in result["matches"]}
    assert set(ids.values()) <= set(matches)
    assert image_id(web, "cat") not in matches and image_id(web, "rocket") not in matches

    expected_pages = {a.url("/"), a.url("/story.html"), a.url("/gallery.html"),
                      b.url("/blog.html"), b.url("/hd.html")}
    for name, match_id in ids.items():
        match = matches[match_id]
        listed = {page["page_url"] for page in match["pages"]}
        assert expected_pages <= listed, name
        assert not [p for p in listed if "/private/" in p]
        for page in match["pages"]:
            assert {"page_url", "image_url", "title", "alt", "first_seen", "last_seen"} <= set(page)
        assert match["creator"] == {"name": CREATOR, "source": "exif:Artist"} | {
            k: v for k, v in match["creator"].items() if k not in ("name", "source")}

    assert matches[ids["original"]]["larger_than_query"] is True
    assert matches[ids["original"]]["upscaled"] is False
    assert matches[ids["small"]]["larger_than_query"] is False
    # The 1200 x 800 upscale of the 300-px copy is bigger in pixels but not higher resolution.
    assert matches[ids["upscaled"]]["upscaled"] is True
    assert matches[ids["upscaled"]]["larger_than_query"] is False

    original = result["likely_original"]
    assert original["id"] == ids["original"]
    assert original["uri"] == a.url("/img/coffee-600.jpg")
    assert original["evidence"][0].startswith("largest genuine resolution (600x400")
    assert any(e.startswith("camera EXIF present") for e in original["evidence"])
