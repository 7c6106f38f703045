"""Crawl throughput against a local web server: pages/s and images/s.

A generated site on 127.0.0.1 (``http.server``, threaded): ``--pages`` HTML pages, each linking
to the next ten and showing ``--per-page`` JPEGs (640 x 480, quality 85, random crops of the
scikit-image photographs) drawn from a pool of ``--pages`` distinct images, so every image
appears on several pages, as logos and reused photos do. ``robots.txt`` is served and read.

Two runs over the same site, each into a fresh data folder:

- ``crawl only``: an engine that accepts every image without analysing it, so the figures are
  the crawler's own (HTTP, robots, HTML extraction, frontier, sighting bookkeeping);
- ``crawl + index``: the real ``Engine``, every image hashed, decoded and fingerprinted.

The crawler runs with no rate limit worth the name (``--rate`` 1000/s per host) and
``--concurrency`` requests in flight; a real crawl is bounded by its politeness rate (2/s per
host by default), not by these figures. ``images/s`` counts sightings (image on a page).

Run ``python -m bench.crawl [--quick]``; results go to ``bench/results/crawl.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))        # the tests' MiniWeb server

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


class _NullEngine:
    """Accepts every image (hash only) so the crawl-only run measures the crawler alone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.settings = {"max_bytes": 50_000_000}
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, data: bytes, *, uri: str | None = None, sighting: dict | None = None) -> int:
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            return self._ids.setdefault(digest, len(self._ids) + 1)

    def mark_removed(self, uri: str, page_url: str = "") -> bool:
        return False

    def checkpoint(self) -> None:
        pass

    def close(self) -> None:
        pass


def _images(count: int, seed: int = 0) -> list[bytes]:
    from PIL import Image
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]
    out = []
    for n in range(count):
        photo = photos[n % len(photos)]
        w, h = photo.size
        cw, ch = int(w * rng.uniform(0.5, 0.9)), int(h * rng.uniform(0.5, 0.9))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        buffer = io.BytesIO()
        photo.crop((x, y, x + cw, y + ch)).resize((640, 480)).save(buffer, "JPEG", quality=85)
        out.append(buffer.getvalue())
    return out


def _site(web, pages: int, per_page: int, images: list[bytes]) -> None:
    web.robots("User-agent: *\nDisallow: /private/\n")
    for n, data in enumerate(images):
        web.file(f"/img/{n}.jpg", data)
    for n in range(pages):
        links = "".join(f'<a href="/p/{(n + j) % pages}.html">next {j}</a>' for j in range(1, 11))
        imgs = "".join(
            f'<figure><img src="/img/{(n * 3 + j) % len(images)}.jpg" alt="photo {j}">'
            f"<figcaption>Picture {j} of page {n}</figcaption></figure>"
            for j in range(per_page)
        )
        web.page(f"/p/{n}.html", f"<html><head><title>Page {n}</title>"
                                 f'<meta name="author" content="Bench Author"></head>'
                                 f"<body>{links}{imgs}<p>{'text ' * 400}</p></body></html>")


def _run(label: str, engine, web, pages: int, concurrency: int) -> dict:
    from picorigin._provenance.crawl import crawl

    report = crawl(engine, [web.url("/p/0.html")], depth=pages, max_pages=pages,
                   rate=1000.0, concurrency=concurrency, allow_private=True)
    engine.close()
    row = {"run": label, "pages": report.pages, "images": report.images,
           "distinct_images": len(report.image_ids), "failed": len(report.failed),
           "seconds": round(report.seconds, 2),
           "pages_per_s": round(report.pages_per_second, 1),
           "images_per_s": round(report.images_per_second, 1)}
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the pages")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--per-page", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    pages = max(20, args.pages // 5) if args.quick else args.pages

    from picorigin import Engine
    from provenance.miniweb import MiniWeb

    images = _images(pages)
    rows = []
    with MiniWeb() as web, tempfile.TemporaryDirectory() as tmp:
        _site(web, pages, args.per_page, images)
        rows.append(_run("crawl only", _NullEngine(Path(tmp) / "null"), web, pages,
                         args.concurrency))
        rows.append(_run("crawl + index", Engine(Path(tmp) / "engine"), web, pages,
                         args.concurrency))

    print(f"\nCrawl throughput: {pages} pages x {args.per_page} images (640x480 JPEG), "
          f"{args.concurrency} requests in flight, local server")
    header = f"{'run':<15}{'pages':>7}{'images':>8}{'distinct':>10}{'seconds':>9}" \
             f"{'pages/s':>9}{'images/s':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['run']:<15}{row['pages']:>7}{row['images']:>8}{row['distinct_images']:>10}"
              f"{row['seconds']:>9}{row['pages_per_s']:>9}{row['images_per_s']:>10}")
    out = ROOT / "bench" / "results" / ("crawl_quick.json" if args.quick else "crawl.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"pages": pages, "per_page": args.per_page,
                               "concurrency": args.concurrency, "rows": rows}, indent=2) + "\n")
    return 0 if all(row["failed"] == 0 for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
