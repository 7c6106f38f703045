"""Take images, links and page signals out of an HTML page, with bounded memory.

The crawler feeds the page to :class:`PageExtractor` chunk by chunk as it arrives (stdlib
``html.parser``: no dependency, and streaming keeps a huge page from being held whole), then reads
a :class:`Page`. Every list and text kept is capped, so a hostile page costs at most a few MB,
plus the structured-data pass below (lxml over at most ``MAX_STRUCTURED_CHARS``: a 2.8 MB page
with microdata raised peak memory by 29 MB).

What is taken:

- images: ``<img src>`` (and the common lazy-loading ``data-src``), every ``srcset`` candidate
  (largest first), ``<picture><source srcset>``, ``og:image`` / ``twitter:image``, and ``<a href>``
  links whose path ends in an image extension;
- per image: alt text (``alt``, else ``title``), the ``<figcaption>`` of the enclosing ``<figure>``;
- per page: title, author (``meta name=author`` > ``meta property=article:author`` >
  ``rel=author``), licence (``rel=license``), published date (``article:published_time`` >
  ``meta name=date`` / ``itemprop=datePublished`` > the first ``<time datetime>``), links to
  follow, and the ``meta name=robots`` directives ``nofollow`` / ``noimageindex`` / ``none``;
- per image, from the page's structured data (schema.org ``ImageObject`` / ``Photograph`` in
  JSON-LD, microdata or RDFa, read by ``extruct``; see :mod:`.structured`): creator, credit,
  copyright notice and holder, licence, licence page and date created, each claim with its
  source. An ``ImageObject`` is tied to the image it describes by its ``contentUrl``, ``url`` or
  ``thumbnailUrl``, and to every other candidate of the same ``<img srcset>`` or ``<picture>``
  (the same picture at other sizes); a ``contentUrl`` the markup names but no element shows is
  taken as an image of the page too.

The structured-data pass needs the page whole: the first ``MAX_STRUCTURED_CHARS`` of its text are
kept, and parsed (lxml) only when the page has a JSON-LD block, an ``itemscope`` or an RDFa
``typeof`` / ``vocab``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageRef",
    "Page",
    "PageExtractor",
    "extract",
    "normalize_url",
    "parse_srcset",
]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".avif",
     ".heic", ".heif", ".jxl"}
)

# Caps that bound memory whatever the page holds.
MAX_IMAGES = 500
MAX_LINKS = 2000
MAX_TEXT = 1000          # characters kept of a title, caption, alt or author
MAX_URL = 4096
MAX_STRUCTURED_CHARS = 2_000_000   # text kept for the structured-data pass (lxml parses it)
MAX_CLAIMS = 64                    # rights claims kept per image

_SPACE = re.compile(r"\s+")


def normalize_url(url: str, base: str | None = None) -> str | None:
    """Resolve ``url`` against ``base`` and return it in one canonical http(s) form.

    Lower-cases scheme and host, drops the default port and the fragment, keeps the query.
    Returns ``None`` for anything that is not http(s) (``data:``, ``javascript:``, ``mailto:``)
    or is absurdly long.
    """
    url = url.strip()
    if not url or len(url) > MAX_URL:
        return None
    try:
        parts = urlsplit(urljoin(base, url) if base else url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:                                   # IPv6 literal
        host = f"[{host}]"
    if port is not None and port != (80 if scheme == "http" else 443):
        host = f"{host}:{port}"
    path = parts.path or "/"
    if "/." in path:                                  # "a/../b" and "./" the same page as "b"
        path = urlsplit(urljoin("http://h/", path)).path
    return urlunsplit((scheme, host, path, parts.query, ""))


def _looks_like_image(url: str) -> bool:
    return posixpath.splitext(urlsplit(url).path.lower())[1] in IMAGE_EXTENSIONS


def parse_srcset(value: str) -> list[str]:
    """Return the URLs of a ``srcset`` attribute, largest candidate first.

    Follows the HTML parsing rules closely enough for real pages: candidates are separated by
    commas, a URL runs to the next whitespace (so commas inside it survive), and the descriptor is
    ``<n>w`` or ``<n>x`` (none means ``1x``). Width descriptors rank before density ones.
    """
    candidates: list[tuple[int, float, int, str]] = []
    position, n = 0, len(value)
    while position < n and len(candidates) < 64:
        while position < n and (value[position].isspace() or value[position] == ","):
            position += 1
        start = position
        while position < n and not value[position].isspace():
            position += 1
        url = value[start:position]
        descriptor = ""
        if url.endswith(","):
            url = url.rstrip(",")
        else:
            start = position
            while position < n and value[position] != ",":
                position += 1
            descriptor = value[start:position].strip().lower()
        if not url:
            continue
        kind, size = 0, 1.0                            # 0: density, 1: width
        try:
            if descriptor.endswith("w"):
                kind, size = 1, float(descriptor[:-1])
            elif descriptor.endswith("x"):
                size = float(descriptor[:-1])
        except ValueError:
            pass
        candidates.append((kind, size, -len(candidates), url))
    candidates.sort(reverse=True)
    return [url for _, _, _, url in candidates]


@dataclass
class ImageRef:
    """One image found on a page.

    ``via`` says where it was found: ``img``, ``srcset``, ``picture``, ``og:image``,
    ``twitter:image`` or ``link`` (several when the same URL was found several ways).
    """

    url: str
    via: list[str] = field(default_factory=list)
    alt: str | None = None
    caption: str | None = None
    # What the page's structured data claims about this image: {"field", "value", "source"}.
    rights: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Page:
    """What one HTML page says: its images, its links and its signals."""

    url: str
    title: str | None = None
    author: str | None = None
    # "page:meta author", "page:article:author" or "page:rel=author"
    author_source: str | None = None
    license: str | None = None
    published: str | None = None
    images: list[ImageRef] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    nofollow: bool = False
    noimageindex: bool = False

    def sighting(self, image: ImageRef) -> dict:
        """The sighting of ``image`` on this page, as ``Engine.add(..., sighting=...)`` takes it.

        ``author_source`` says which signal named the author; ``rights`` holds the structured
        data's claims about this image (``{"claims": [{"field", "value", "source"}, ...]}``).
        """
        fields = {
            "page_url": self.url, "page_title": self.title, "alt": image.alt,
            "caption": image.caption, "author": self.author, "author_source": self.author_source,
            "license": self.license, "published": self.published,
        }
        if image.rights:
            fields["rights"] = {"claims": [dict(claim) for claim in image.rights]}
        return {key: value for key, value in fields.items() if value is not None}


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = _SPACE.sub(" ", text).strip()[:MAX_TEXT]
    return text or None


class PageExtractor(HTMLParser):
    """Streaming extractor: ``feed()`` chunks of decoded text, then ``close()`` and read ``page``.

    Parameters
    ----------
    url : str
        The page's own (final, after redirects) URL; relative references resolve against it,
        or against ``<base href>`` when the page has one.
    """

    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page(url=url)
        self._base = url
        self._saw_base = False
        self._by_url: dict[str, ImageRef] = {}
        self._seen_links: set[str] = set()
        self._meta: dict[str, str] = {}
        self._rel_author: str | None = None
        self._first_time: str | None = None
        self._title: list[str] | None = None
        self._author_text: list[str] | None = None
        self._figures: list[dict] = []        # open <figure>s: {"images": [...], "caption": [...]}
        self._in_caption = 0
        self._pictures: list[list[ImageRef]] = []   # open <picture>s: their images
        # URL -> every URL shown by the same <img srcset> or <picture> (one picture, many sizes)
        self._siblings: dict[str, set[str]] = {}
        self._text: list[str] = []
        self._text_size = 0
        self._syntaxes: set[str] = set()           # structured-data syntaxes the page uses

    def feed(self, data: str) -> None:
        if self._text_size < MAX_STRUCTURED_CHARS:
            kept = data[:MAX_STRUCTURED_CHARS - self._text_size]
            self._text.append(kept)
            self._text_size += len(kept)
        super().feed(data)

    def parse_marked_section(self, i: int, report: int = 1) -> int:
        # Python < 3.13 raises AssertionError on an unknown marked section (``<![x[...``, found
        # by make fuzz); newer ones read it as a bogus comment, as browsers do: so do we.
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            return self.parse_bogus_comment(i, report)

    def _group(self, refs: list[ImageRef | None]) -> None:
        urls = {ref.url for ref in refs if ref is not None}
        if len(urls) > 1:
            for url in urls:
                self._siblings.setdefault(url, set()).update(urls)

    # -- images and links ------------------------------------------------------------------
    def _image(self, raw: str | None, via: str, alt: str | None = None) -> ImageRef | None:
        url = normalize_url(raw, self._base) if raw else None
        if url is None:
            return None
        ref = self._by_url.get(url)
        if ref is None:
            if len(self.page.images) >= MAX_IMAGES:
                return None
            ref = self._by_url[url] = ImageRef(url=url)
            self.page.images.append(ref)
        if via not in ref.via:
            ref.via.append(via)
        if alt and not ref.alt:
            ref.alt = _clip(alt)
        if self._figures:
            self._figures[-1]["images"].append(ref)
        return ref

    def _link(self, raw: str | None) -> None:
        url = normalize_url(raw, self._base) if raw else None
        if url is None:
            return
        if _looks_like_image(url):
            self._image(url, "link")
        elif url not in self._seen_links and len(self.page.links) < MAX_LINKS:
            self._seen_links.add(url)
            self.page.links.append(url)

    # -- parser callbacks ------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {name: value for name, value in attrs if value is not None}
        rel = set(a.get("rel", "").lower().split())
        names = {name for name, _ in attrs}
        if "itemscope" in names:
            self._syntaxes.add("microdata")
        if "typeof" in names or "vocab" in names:   # not "property": every og: meta has it
            self._syntaxes.add("rdfa")
        if tag == "script" and a.get("type", "").strip().lower() == "application/ld+json":
            self._syntaxes.add("json-ld")
        if tag == "base" and not self._saw_base and a.get("href"):
            self._saw_base = True
            self._base = normalize_url(a["href"], self._base) or self._base
        elif tag == "img":
            alt = a.get("alt") or a.get("title")
            shown = [self._image(a.get("src") or a.get("data-src"), "img", alt)]
            for url in parse_srcset(a.get("srcset") or a.get("data-srcset") or ""):
                shown.append(self._image(url, "srcset", alt))
            if self._pictures:
                if alt:                      # the <img> of a <picture> names its <source>s too
                    for ref in self._pictures[-1]:
                        ref.alt = ref.alt or _clip(alt)
                self._pictures[-1].extend(ref for ref in shown if ref is not None)
            else:
                self._group(shown)
        elif tag == "source" and self._pictures:
            for url in parse_srcset(a.get("srcset") or a.get("data-srcset") or ""):
                ref = self._image(url, "picture")
                if ref is not None:
                    self._pictures[-1].append(ref)
        elif tag == "picture":
            self._pictures.append([])
        elif tag == "figure":
            self._figures.append({"images": [], "caption": []})
        elif tag == "figcaption":
            self._in_caption += 1
        elif tag == "title" and self.page.title is None:
            self._title = []
        elif tag == "meta":
            key = (a.get("name") or a.get("property") or a.get("itemprop") or "").lower()
            content = a.get("content")
            if key and content and key not in self._meta:
                self._meta[key] = content
        elif tag == "link":
            if "author" in rel and a.get("href") and self._rel_author is None:
                self._rel_author = a["href"]
            if "license" in rel and a.get("href") and self.page.license is None:
                self.page.license = normalize_url(a["href"], self._base) or _clip(a["href"])
            if "image_src" in rel:
                self._image(a.get("href"), "link")
        elif tag == "a":
            if "license" in rel and a.get("href") and self.page.license is None:
                self.page.license = normalize_url(a["href"], self._base) or _clip(a["href"])
            if "author" in rel and self._rel_author is None:
                self._author_text = []
                self._rel_author = a.get("href", "")
            if "nofollow" not in rel:
                self._link(a.get("href"))
        elif tag == "time" and self._first_time is None and a.get("datetime"):
            self._first_time = a["datetime"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.page.title = _clip("".join(self._title))
            self._title = None
        elif tag == "figcaption" and self._in_caption:
            self._in_caption -= 1
        elif tag == "figure" and self._figures:
            figure = self._figures.pop()
            caption = _clip("".join(figure["caption"]))
            for ref in figure["images"]:
                ref.caption = ref.caption or caption
        elif tag == "picture" and self._pictures:
            self._group(self._pictures.pop())
        elif tag == "a" and self._author_text is not None:
            text = _clip("".join(self._author_text))
            if text:
                self._rel_author = text
            self._author_text = None

    def handle_data(self, data: str) -> None:
        for sink in (self._title, self._author_text):
            if sink is not None and sum(map(len, sink)) < MAX_TEXT:
                sink.append(data)
        if self._in_caption and self._figures:
            caption = self._figures[-1]["caption"]
            if sum(map(len, caption)) < MAX_TEXT:
                caption.append(data)

    def close(self) -> None:
        super().close()
        while self._figures:                  # unclosed <figure>s still give their caption
            self.handle_endtag("figure")
        if self._title is not None:
            self.handle_endtag("title")
        while self._pictures:
            self.handle_endtag("picture")
        meta, page = self._meta, self.page
        for key in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image",
                    "twitter:image:src"):
            if key in meta:
                self._image(meta[key], key.split(":image")[0] + ":image",
                            meta.get("og:image:alt") or meta.get("twitter:image:alt"))
        if page.title is None:
            page.title = _clip(meta.get("og:title") or meta.get("twitter:title"))
        for key, source in (("author", "page:meta author"),
                            ("article:author", "page:article:author")):
            if meta.get(key):
                page.author, page.author_source = _clip(meta[key]), source
                break
        else:
            if self._rel_author:
                page.author, page.author_source = _clip(self._rel_author), "page:rel=author"
        page.published = _clip(
            meta.get("article:published_time") or meta.get("date") or meta.get("datepublished")
            or meta.get("dc.date") or self._first_time
        )
        directives = {d.strip() for d in meta.get("robots", "").lower().split(",")}
        page.nofollow = bool(directives & {"nofollow", "none"})
        page.noimageindex = bool(directives & {"noimageindex", "none"})
        if self._syntaxes:
            self._structured()
        self._text = []

    def _structured(self) -> None:
        """Tie each described image's claims to the page's images (and their srcset siblings)."""
        from .structured import image_claims, read_structured

        base = self._base
        found = read_structured("".join(self._text), base, self._syntaxes)
        for described in image_claims(found, lambda url: normalize_url(url, base)):
            refs = [self._by_url[url] for url in described.urls if url in self._by_url]
            if not refs:
                # Named by the markup but shown by no element (a script loads it): still
                # an image of this page.
                via = described.claims[0]["source"].split(":")[0] if described.claims else "jsonld"
                refs = [ref for url in described.content_urls[:1]
                        if (ref := self._image(url, via)) is not None]
            urls = {ref.url for ref in refs}
            for ref in refs:
                urls |= self._siblings.get(ref.url, set())
            for url in sorted(urls):
                ref = self._by_url[url]
                for claim in described.claims:
                    if claim not in ref.rights and len(ref.rights) < MAX_CLAIMS:
                        ref.rights.append(claim)


def extract(html: str, url: str) -> Page:
    """Extract a whole page held in memory (tests, small pages); the crawler streams instead."""
    extractor = PageExtractor(url)
    extractor.feed(html)
    extractor.close()
    return extractor.page
