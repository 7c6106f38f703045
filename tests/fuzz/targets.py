"""The parser entries ``make fuzz`` drives, their seeds, and what counts as a finding.

Each target takes one input as bytes (what a corpus file holds). The only acceptable outcomes
are a result or one of picorigin's own errors (:class:`picorigin._errors.PicoriginError`);
anything else escaping a target is a finding, and so is an API answer of 5xx other than 502
(a URL that could not be fetched).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Callable, Iterator

import httpx
import numpy as np
from helpers import serve_in_thread
from PIL import Image

from picorigin._errors import PicoriginError
from picorigin._framed import window_probes
from picorigin._imaging import _pillow_warnings_logged, decode
from picorigin._metadata import read_metadata
from picorigin._provenance.extract import extract
from picorigin._stages import stage_class

CORPUS = Path(__file__).parent / "corpus"
STAGES = ("fingerprint", "local", "deep")


class Finding(Exception):
    """An outcome other than a result or a PicoriginError."""


# -- image bytes -> decode -> every stage ---------------------------------------------------------


def image_target(data: bytes) -> None:
    try:
        decoded = decode(data, source="<fuzz>")
    except PicoriginError:
        return
    size = (decoded.width, decoded.height)
    for name in STAGES:
        for query in (False, True):
            try:
                stage_class(name).compute(decoded.image, size, query=query)
            except PicoriginError:
                pass
    window_probes(decoded.image)


def metadata_target(data: bytes) -> None:
    # decode() calls read_metadata on an image Pillow opened and loaded; an input Pillow
    # itself cannot open or load never reaches it, so it is no finding here.
    with _pillow_warnings_logged("<fuzz>"):  # as decode() reads it: warnings are logged
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:
            return
        try:
            result = read_metadata(image, data)
        except PicoriginError:
            return
    assert isinstance(result, dict), type(result)


def html_target(data: bytes) -> None:
    extract(data.decode("utf-8", "replace"), "https://example.org/dir/page.html")


# -- the API's request bodies, against a real uvicorn server on loopback ----------------------------

API_PATHS = ("/api/search", "/api/compare", "/api/images")
API_TYPES = ("application/json", "application/x-www-form-urlencoded")


def api_request(data: bytes) -> tuple[str, str, bytes]:
    """A corpus file as ``(path, content type, body)``: ``PATH CTYPE\\nBODY``."""
    head, _, body = data.partition(b"\n")
    parts = head.decode("latin-1").split()
    path = parts[0] if parts and parts[0] in API_PATHS else API_PATHS[0]
    ctype = parts[1] if len(parts) > 1 and parts[1] in API_TYPES else API_TYPES[0]
    return path, ctype, body


@contextlib.contextmanager
def api_server(folder: Path) -> Iterator[httpx.Client]:
    """A default-settings Engine (private URLs refused: nothing leaves the machine) behind
    uvicorn on 127.0.0.1, with one photo indexed; yields a client bound to it."""
    from picorigin import Engine
    from picorigin.server import create_app

    engine = Engine(folder)
    photo = folder / "seed.png"
    Image.fromarray(_picture(96, 64)).save(photo)
    engine.index([str(photo)], workers=1)
    with engine, serve_in_thread(create_app(engine), log_level="critical") as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client


def api_target(client: httpx.Client) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        path, ctype, body = api_request(data)
        try:
            response = client.post(path, content=body, headers={"content-type": ctype})
        except httpx.HTTPError as error:
            raise Finding(f"POST {path}: no answer: {error!r}") from None
        # 502 is the documented answer when the image URL cannot be fetched (FetchError).
        if response.status_code >= 500 and response.status_code != 502:
            raise Finding(f"POST {path}: {response.status_code} {response.text[:300]}")

    return target


# -- seeds: valid inputs made in code --------------------------------------------------------------


def _picture(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    ((x // 8 + y // 8) % 2) * 255], axis=-1)
    return rgb.astype(np.uint8)


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


_XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        b'22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/">'
        b'<dc:creator><rdf:Seq><rdf:li>Ann</rdf:li></rdf:Seq></dc:creator><dc:rights><rdf:Alt>'
        b'<rdf:li xml:lang="x-default">CC BY 4.0</rdf:li></rdf:Alt></dc:rights>'
        b'</rdf:Description></rdf:RDF></x:xmpmeta>')


def image_seeds() -> dict[str, bytes]:
    rgb = Image.fromarray(_picture(48, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x013B] = "Ann Artist"
    exif[0x8298] = "(c) Ann"
    return {
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg-exif-xmp": _save(rgb, "JPEG", quality=80, exif=exif, xmp=_XMP),
        "png": _save(rgb, "PNG"),
        "png-grey16": _save(Image.fromarray((_picture(40, 24)[..., 0].astype(np.uint16) * 257)),
                            "PNG"),
        "png-rgba": _save(rgb.convert("RGBA"), "PNG"),
        "gif": _save(rgb.convert("P"), "GIF"),
        "webp": _save(rgb, "WEBP", quality=70),
        "tiff": _save(rgb, "TIFF", exif=exif),
        "bmp": _save(rgb.resize((16, 12)), "BMP"),
    }


def metadata_seeds() -> dict[str, bytes]:
    seeds = image_seeds()
    return {k: v for k, v in seeds.items() if k in ("jpeg-exif-xmp", "png", "tiff", "webp")}


def html_seeds() -> dict[str, bytes]:
    page = """<!doctype html><html lang=en><head><title>A page</title>
<meta property="og:image" content="/img/og.jpg"><meta name="author" content="Ann">
<link rel="canonical" href="https://example.org/dir/page.html">
<script type="application/ld+json">{"@type": "ImageObject", "contentUrl": "/a.jpg",
 "creator": {"name": "Ann"}, "license": "https://creativecommons.org/licenses/by/4.0/"}</script>
</head><body><figure><img src="a.jpg" srcset="a-2x.jpg 2x, a-800.jpg 800w" alt="A cat">
<figcaption>Photo by Ann, CC BY 4.0</figcaption></figure>
<picture><source srcset="b.webp 1x"><img src="//cdn.example.org/b.png"></picture>
<a href="../other.html">next</a><div style="background-image:url('c.gif')"></div>
</body></html>"""
    return {"page": page.encode(), "tiny": b"<img src=x.jpg>",
            "broken": b"<html><img src='a.jpg' srcset=', ,1x 2x'><meta content=><!-- x"}


def api_seeds() -> dict[str, bytes]:
    def req(path: str, body: object, ctype: str = "application/json") -> bytes:
        text = json.dumps(body) if ctype == "application/json" else str(body)
        return f"{path} {ctype}\n".encode() + text.encode()

    return {
        "search-url": req("/api/search", {"url": "http://127.0.0.1:9/a.jpg", "k": 5,
                                          "kinds": ["exact", "similar"], "sort": "oldest"}),
        "search-options": req("/api/search", {"upload": "x" * 24, "domain": "example.org",
                                              "fast": True, "larger_only": "yes",
                                              "label": "cat", "colour": "red"}),
        "compare": req("/api/compare", {"a": "http://127.0.0.1:9/a.png", "b": "http://[::1]/b"}),
        "compare-id": req("/api/compare", {"a": "http://127.0.0.1:9/a.png", "b_id": 1}),
        "add": req("/api/images", {"url": "http://localhost:9/a.png", "page_url":
                                   "http://localhost/p", "creator": "Ann", "title": "T"}),
        "form": req("/api/search", "url=http%3A%2F%2F127.0.0.1%3A9%2Fx&k=3&kinds=exact",
                    "application/x-www-form-urlencoded"),
    }


SEEDS: dict[str, Callable[[], dict[str, bytes]]] = {
    "image": image_seeds,
    "metadata": metadata_seeds,
    "html": html_seeds,
    "api": api_seeds,
}
LOCAL_TARGETS: dict[str, Callable[[bytes], None]] = {
    "image": image_target,
    "metadata": metadata_target,
    "html": html_target,
}
