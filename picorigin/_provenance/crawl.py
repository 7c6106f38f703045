"""The crawler: fetch pages politely, index every image they show, remember where each was seen.

One asyncio loop does the network (httpx), a worker thread does each CPU-heavy ``Engine.add``.
Politeness and safety, all on by default:

- robots.txt of every origin is read once per crawl and applies, as RFC 9309 says, to pages,
  images and redirect targets (agent ``picorigin``; ``*`` and ``$`` patterns; the longest
  matching rule wins, ``Allow`` on a tie; read by ``protego``). Its ``Crawl-delay`` slows that
  host further. A 4xx robots.txt allows everything, a 5xx or unreachable one nothing;
- at most ``rate`` requests a second to each host, ``concurrency`` requests at once overall;
- requests go through :class:`picorigin._fetch.AsyncFetcher`, with the limits and address checks
  of every other fetch: each response is bounded in time (whole request, redirects included),
  bytes and redirects, and every connection is refused when its host resolves to a private,
  loopback or link-local address, unless ``allow_private`` (the socket goes to the address that
  was vetted, so a DNS answer that changes between lookups gains nothing). A page larger than
  ``max_page_bytes`` is parsed up to that point, an image larger than ``max_image_bytes`` is
  skipped;
- links are followed to ``depth`` and ``max_pages``, on the seeds' sites (``same_site``) and
  the ``allow`` domains, and not from pages saying ``<meta name=robots content=nofollow>``.

The frontier lives in ``crawl.sqlite`` in the data folder, so a crawl that stops resumes where it
was when it is started again with the same seeds and scope. A finished crawl started again is a
re-crawl: every sighting still there gets a fresh ``last_seen``, and images gone from a page
(or pages gone, 404/410) are marked removed in the catalog.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import re
import sqlite3
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import httpx
from protego import Protego

from .._errors import ForbiddenAddress, PicoriginError
from .._fetch import AsyncFetcher
from .extract import ImageRef, Page, PageExtractor, normalize_url

__all__ = ["CrawlReport", "crawl", "crawl_async"]

logger = logging.getLogger("picorigin")

ROBOTS_AGENT = "picorigin"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_MAX_CRAWL_DELAY = 60.0          # seconds; a larger robots.txt Crawl-delay is taken as this
_MAX_ROBOTS_BYTES = 512_000      # what RFC 9309 asks crawlers to read at least
_IMAGE_CACHE_BYTES = 32_000_000  # recently fetched images kept for other pages that show them
_REPORT_LIST_CAP = 1000
_ALLOW_ALL = Protego.parse("")
_DISALLOW_ALL = Protego.parse("User-agent: *\nDisallow: /\n")
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    started REAL NOT NULL,
    finished REAL
);
CREATE TABLE IF NOT EXISTS frontier (
    run INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    depth INTEGER NOT NULL,
    referrer TEXT,
    state TEXT NOT NULL DEFAULT 'queued',   -- queued, fetching, done, failed, blocked
    error TEXT,
    PRIMARY KEY (run, url)
);
CREATE INDEX IF NOT EXISTS frontier_queue ON frontier (run, state, depth);
CREATE TABLE IF NOT EXISTS page_images (
    page_url TEXT NOT NULL,
    image_url TEXT NOT NULL,
    PRIMARY KEY (page_url, image_url)
);
"""


@dataclass
class CrawlReport:
    """What a crawl did.

    ``pages``: HTML pages fetched and read in this call; ``images``: sightings recorded
    (``Engine.add`` calls that succeeded); ``image_ids``: distinct images among them;
    ``removed``: sightings marked removed; ``blocked``: URLs robots.txt forbade;
    ``failed``: (url, reason) for pages and images that could not be fetched or indexed.
    """

    pages: int = 0
    images: int = 0
    image_ids: set[int] = field(default_factory=set)
    removed: int = 0
    blocked: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    resumed: bool = False
    seconds: float = 0.0

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "images": self.images,
            "distinct_images": len(self.image_ids),
            "removed": self.removed,
            "blocked": self.blocked,
            "failed": [{"url": url, "reason": reason} for url, reason in self.failed],
            "bytes": self.bytes,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages_per_second, 2),
            "images_per_second": round(self.images_per_second, 2),
        }


def crawl(engine: Any, seeds: Iterable[str], **options: Any) -> CrawlReport:
    """Crawl from ``seeds`` and index every image found; see :func:`crawl_async` for options.

    A blocking wrapper: it runs its own event loop, so call :func:`crawl_async` instead from
    code that already runs one (a web server).
    """
    return asyncio.run(crawl_async(engine, seeds, **options))


async def crawl_async(
    engine: Any,
    seeds: Iterable[str],
    *,
    depth: int = 2,
    max_pages: int = 100,
    same_site: bool = True,
    allow: Iterable[str] = (),
    rate: float = 2.0,
    concurrency: int = 4,
    allow_private: bool | None = None,
    state_path: str | Path | None = None,
    timeout: float | None = None,
    max_redirects: int | None = None,
    max_page_bytes: int = 5_000_000,
    max_image_bytes: int | None = None,
    progress: Callable[[CrawlReport], None] | None = None,
) -> CrawlReport:
    """Crawl from ``seeds``, index every image the pages show, and record each sighting.

    Parameters
    ----------
    engine : Engine
        Receives ``add(bytes, uri=image_url, sighting={...})`` for each image on each page,
        ``mark_removed(image_url, page_url)`` for images gone since the last crawl, and
        ``checkpoint()`` at the end.
    seeds : iterable of str
        http(s) URLs to start from (depth 0).
    depth : int
        Links followed from a seed: 0 reads only the seeds.
    max_pages : int
        Pages fetched in this crawl (a resumed crawl counts the pages fetched before).
    same_site : bool
        Follow links only to the seeds' sites (host and port, ``www.`` ignored).
    allow : iterable of str
        Further domains to follow links to (``example.org`` also allows its subdomains;
        ``host:port`` allows exactly that). With ``same_site=False`` and no ``allow``, links
        are followed anywhere. Images are fetched from any host, as pages show them.
    rate : float
        Requests per second to any one host (robots.txt ``Crawl-delay`` can lower it).
    concurrency : int
        Requests in flight at once, over all hosts.
    allow_private : bool, optional
        Fetch from private, loopback and link-local addresses (tests; never on a server);
        default the engine's ``allow_private_urls`` setting.
    state_path : path, optional
        The frontier's SQLite file; default ``crawl.sqlite`` in the engine's data folder.
    timeout : float, optional
        Seconds one request may take in all, redirects included; default the engine's
        ``fetch_timeout`` setting.
    max_redirects : int, optional
        Redirects followed per request; default the engine's ``fetch_max_redirects`` setting.
    max_page_bytes : int
        Bytes of a page read; the rest of a larger page is ignored.
    max_image_bytes : int, optional
        Largest image downloaded; default the engine's ``max_bytes`` setting.
    progress : callable, optional
        Called with the report after each page.

    Returns
    -------
    CrawlReport
    """
    if rate <= 0 or concurrency < 1 or depth < 0 or max_pages < 0:
        raise ValueError("rate must be > 0, concurrency >= 1, depth and max_pages >= 0")
    seeds = [url for url in (normalize_url(seed) for seed in seeds) if url]
    if not seeds:
        raise ValueError("no http(s) seed URL to crawl")
    if state_path is None:
        state_path = Path(engine.path) / "crawl.sqlite"
    fetcher = AsyncFetcher(
        getattr(engine, "settings", None), concurrency=concurrency, timeout=timeout,
        max_redirects=max_redirects, allow_private=allow_private, max_bytes=max_image_bytes,
    )
    crawler = _Crawler(
        engine, seeds, fetcher, depth=depth, max_pages=max_pages, same_site=same_site,
        allow=[a.lower().strip() for a in allow if a.strip()], rate=rate,
        concurrency=concurrency, state_path=Path(state_path), max_page_bytes=max_page_bytes,
        progress=progress,
    )
    return await crawler.run()


def _site(url: str) -> str:
    return urlsplit(url).netloc.lower().removeprefix("www.")


class _Blocked(Exception):
    """robots.txt forbids this URL (raised for a redirect target)."""


@dataclass
class _Response:
    url: str
    status: int
    content_type: str
    body: bytes | Page | None = None


class _Frontier:
    """The crawl's own SQLite file: runs, the URLs each run must visit, the images each page showed.

    Used from the event loop's thread only; every call is a short transaction.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def start(self, key: str) -> tuple[int, bool]:
        """The unfinished run with this key (resumed), or a new one."""
        row = self.db.execute(
            "SELECT id FROM runs WHERE key = ? AND finished IS NULL ORDER BY id DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is not None:
            # Pages in flight when the last crawl stopped are fetched again.
            self.db.execute(
                "UPDATE frontier SET state = 'queued' WHERE run = ? AND state = 'fetching'", row
            )
            return int(row[0]), True
        cursor = self.db.execute(
            "INSERT INTO runs (key, started) VALUES (?, ?)", (key, time.time())
        )
        return int(cursor.lastrowid), False

    def finish(self, run: int) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("UPDATE runs SET finished = ? WHERE id = ?", (time.time(), run))
            # A finished run's queue is not needed again; the page_images it left are.
            self.db.execute("DELETE FROM frontier WHERE run = ?", (run,))

    def enqueue(self, run: int, url: str, depth: int, referrer: str | None) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO frontier (run, url, depth, referrer) VALUES (?, ?, ?, ?)",
            (run, url, depth, referrer),
        )

    def claim(self, run: int) -> tuple[str, int, str | None] | None:
        row = self.db.execute(
            "SELECT url, depth, referrer FROM frontier WHERE run = ? AND state = 'queued'"
            " ORDER BY depth, rowid LIMIT 1",
            (run,),
        ).fetchone()
        if row is not None:
            self.set_state(run, row[0], "fetching")
        return row

    def set_state(self, run: int, url: str, state: str, error: str | None = None) -> None:
        self.db.execute(
            "UPDATE frontier SET state = ?, error = ? WHERE run = ? AND url = ?",
            (state, error, run, url),
        )

    def fetched(self, run: int) -> int:
        return self.db.execute(
            "SELECT count(*) FROM frontier WHERE run = ? AND state IN ('done', 'failed')", (run,)
        ).fetchone()[0]

    def page_images(self, page_url: str) -> set[str]:
        rows = self.db.execute(
            "SELECT image_url FROM page_images WHERE page_url = ?", (page_url,)
        ).fetchall()
        return {row[0] for row in rows}

    def set_page_images(self, page_url: str, image_urls: Iterable[str]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("DELETE FROM page_images WHERE page_url = ?", (page_url,))
            self.db.executemany(
                "INSERT OR IGNORE INTO page_images (page_url, image_url) VALUES (?, ?)",
                [(page_url, url) for url in image_urls],
            )


class _Pacer:
    """At most one request per ``interval`` seconds to each host."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._intervals: dict[str, float] = {}
        self._next: dict[str, float] = {}

    def slow_down(self, host: str, interval: float) -> None:
        self._intervals[host] = max(self.interval, min(interval, _MAX_CRAWL_DELAY))

    async def wait(self, host: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        # Reserve the slot before sleeping, so concurrent callers queue up behind it.
        start = max(now, self._next.get(host, now))
        self._next[host] = start + self._intervals.get(host, self.interval)
        if start > now:
            await asyncio.sleep(start - now)


class _Crawler:
    def __init__(
        self, engine: Any, seeds: list[str], fetcher: AsyncFetcher, **options: Any
    ) -> None:
        self.engine = engine
        self.seeds = seeds
        self.fetcher = fetcher
        self.o = options
        self.report = CrawlReport()
        self.pacer = _Pacer(1.0 / options["rate"])
        # Engine.add is CPU-bound and serialises its writes; more threads than this only queue.
        self.adds = asyncio.Semaphore(2)
        self.seed_sites = {_site(url) for url in seeds}
        self.robots: dict[str, asyncio.Task] = {}
        self.image_cache: OrderedDict[str, bytes] = OrderedDict()
        self.image_cache_bytes = 0
        self.wakeup = asyncio.Condition()
        self.in_flight = 0

    # -- the run ----------------------------------------------------------------------------
    async def run(self) -> CrawlReport:
        started = time.perf_counter()
        o = self.o
        key = json.dumps({"seeds": sorted(self.seeds), "depth": o["depth"],
                          "same_site": o["same_site"], "allow": sorted(o["allow"])})
        self.frontier = _Frontier(o["state_path"])
        try:
            self.run_id, self.report.resumed = self.frontier.start(key)
            for seed in self.seeds:
                self.frontier.enqueue(self.run_id, seed, 0, None)
            self.budget = o["max_pages"] - self.frontier.fetched(self.run_id)
            async with self.fetcher:
                await asyncio.gather(*(self.worker() for _ in range(o["concurrency"])))
            self.report.bytes = self.fetcher.bytes_received
            queued = self.frontier.db.execute(
                "SELECT count(*) FROM frontier WHERE run = ? AND state = 'queued'", (self.run_id,)
            ).fetchone()[0]
            if not queued or self.budget <= 0:
                self.frontier.finish(self.run_id)
            await asyncio.to_thread(self.engine.checkpoint)
        finally:
            self.frontier.close()
        self.report.seconds = time.perf_counter() - started
        return self.report

    async def worker(self) -> None:
        while True:
            async with self.wakeup:
                while True:
                    item = self.frontier.claim(self.run_id) if self.budget > 0 else None
                    if item is not None:
                        self.budget -= 1
                        self.in_flight += 1
                        break
                    if self.in_flight == 0:
                        self.wakeup.notify_all()
                        return
                    await self.wakeup.wait()
            try:
                await self.visit(*item)
            finally:
                async with self.wakeup:
                    self.in_flight -= 1
                    self.wakeup.notify_all()

    def _fail(self, url: str, reason: str) -> None:
        logger.info("crawl: %s: %s", url, reason)
        if len(self.report.failed) < _REPORT_LIST_CAP:
            self.report.failed.append((url, reason))

    def _block(self, url: str) -> None:
        logger.info("crawl: robots.txt forbids %s", url)
        if len(self.report.blocked) < _REPORT_LIST_CAP:
            self.report.blocked.append(url)

    # -- one page ---------------------------------------------------------------------------
    async def visit(self, url: str, depth: int, referrer: str | None) -> None:
        run = self.run_id
        try:
            if not await self.allowed(url):
                self._block(url)
                self.budget += 1                   # not fetched: does not use up max_pages
                self.frontier.set_state(run, url, "blocked")
                return
            response = await self.get(url, page=True)
        except _Blocked as blocked:
            self._block(str(blocked))
            self.frontier.set_state(run, url, "blocked")
            return
        except PicoriginError as error:
            self._fail(url, str(error))
            self.frontier.set_state(run, url, "failed", str(error))
            return
        if response.status in (404, 410):
            await self.forget_page(response.url)
        if response.status >= 400:
            reason = f"HTTP {response.status}"
            self._fail(url, reason)
            self.frontier.set_state(run, url, "failed", reason)
            return
        if isinstance(response.body, Page):
            page = response.body
            self.report.pages += 1
            if response.url != url:                 # reached by a redirect: don't visit twice
                self.frontier.enqueue(run, response.url, depth, referrer)
                self.frontier.set_state(run, response.url, "done")
            if depth < self.o["depth"] and not page.nofollow:
                for link in page.links:
                    if self.in_scope(link):
                        self.frontier.enqueue(run, link, depth + 1, page.url)
            async with self.wakeup:
                self.wakeup.notify_all()           # new links for idle workers
            if not page.noimageindex:
                await self.index_page_images(page)
        elif response.content_type.startswith("image/") and response.body:
            # A link that turned out to be an image: seen "on" the page that linked to it.
            sighting = {"page_url": referrer} if referrer else None
            await self.add_image(url, response.body, sighting)
        self.frontier.set_state(run, url, "done")
        self.report.bytes = self.fetcher.bytes_received
        if self.o["progress"]:
            self.o["progress"](self.report)

    async def index_page_images(self, page: Page) -> None:
        shown: list[ImageRef] = []
        for ref in page.images:
            try:
                if await self.allowed(ref.url):
                    shown.append(ref)
                else:
                    self._block(ref.url)
            except PicoriginError as error:       # a host with a private address
                self._fail(ref.url, str(error))
        await asyncio.gather(*(self.page_image(page, ref) for ref in shown))
        before = self.frontier.page_images(page.url)
        now = {ref.url for ref in shown}
        for gone in sorted(before - now):
            if await asyncio.to_thread(self.engine.mark_removed, gone, page.url):
                self.report.removed += 1
        self.frontier.set_page_images(page.url, now)

    async def forget_page(self, page_url: str) -> None:
        """The page is gone: every image it showed is no longer seen there."""
        for gone in sorted(self.frontier.page_images(page_url)):
            if await asyncio.to_thread(self.engine.mark_removed, gone, page_url):
                self.report.removed += 1
        self.frontier.set_page_images(page_url, ())

    async def page_image(self, page: Page, ref: ImageRef) -> None:
        data = self.image_cache.get(ref.url)
        if data is not None:
            self.image_cache.move_to_end(ref.url)
        else:
            try:
                response = await self.get(ref.url, page=False)
            except _Blocked as blocked:
                self._block(str(blocked))
                return
            except PicoriginError as error:
                self._fail(ref.url, str(error))
                return
            if response.status >= 400 or not response.body:
                self._fail(ref.url, f"HTTP {response.status}")
                return
            data = response.body
            self.remember(ref.url, data)
        await self.add_image(ref.url, data, page.sighting(ref))

    def remember(self, url: str, data: bytes) -> None:
        """Keep recent images, so another page showing one adds its sighting without a fetch."""
        if len(data) > _IMAGE_CACHE_BYTES // 4:
            return
        self.image_cache[url] = data
        self.image_cache_bytes += len(data)
        while self.image_cache_bytes > _IMAGE_CACHE_BYTES:
            _, old = self.image_cache.popitem(last=False)
            self.image_cache_bytes -= len(old)

    async def add_image(self, url: str, data: bytes, sighting: dict | None) -> None:
        async with self.adds:
            try:
                image_id = await asyncio.to_thread(
                    self.engine.add, data, uri=url, sighting=sighting
                )
            except PicoriginError as error:
                self._fail(url, str(error))
                return
        self.report.images += 1
        self.report.image_ids.add(image_id)

    # -- scope, robots, addresses -----------------------------------------------------------
    def in_scope(self, url: str) -> bool:
        allow = self.o["allow"]
        if not self.o["same_site"] and not allow:
            return True
        site = _site(url)
        if self.o["same_site"] and site in self.seed_sites:
            return True
        host = (urlsplit(url).hostname or "").lower()
        for domain in allow:
            # "host:port" names one site; a bare domain also takes its subdomains.
            if site == domain.removeprefix("www.") or host == domain or host.endswith("." + domain):
                return True
        return False

    async def allowed(self, url: str) -> bool:
        """Whether robots.txt lets us fetch ``url``; ForbiddenAddress for a private host."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        task = self.robots.get(origin)
        if task is None:
            task = self.robots[origin] = asyncio.ensure_future(self.read_robots(origin))
        try:
            rules = await task
        except ForbiddenAddress as error:
            # Met when fetching robots.txt; report it against the URL that was asked for.
            raise ForbiddenAddress(error.args[0], source=url) from None
        return rules.can_fetch(url, ROBOTS_AGENT)

    async def read_robots(self, origin: str) -> Protego:
        try:
            response = await self.get(origin + "/robots.txt", page=False,
                                      max_bytes=_MAX_ROBOTS_BYTES, truncate=True, robots=False)
        except ForbiddenAddress:
            raise                                 # reported as such, not as a robots.txt ban
        except (PicoriginError, _Blocked) as error:
            # Unreachable robots.txt: RFC 9309 says assume complete disallow.
            logger.info("crawl: no robots.txt from %s (%s): not crawling it", origin, error)
            return _DISALLOW_ALL
        if response.status >= 500:
            return _DISALLOW_ALL
        if response.status >= 400:
            return _ALLOW_ALL
        rules = Protego.parse((response.body or b"").decode("utf-8", errors="replace"))
        delay = rules.crawl_delay(ROBOTS_AGENT)
        if delay:
            self.pacer.slow_down(urlsplit(origin).netloc, float(delay))
        return rules

    # -- HTTP -------------------------------------------------------------------------------
    async def get(
        self, url: str, *, page: bool, max_bytes: int | None = None, truncate: bool = False,
        robots: bool = True,
    ) -> _Response:
        """GET ``url``, following redirects; an HTML page comes back parsed.

        The fetch timeout bounds the time spent in requests, not the wait for this host's turn.

        Raises
        ------
        FetchError, ForbiddenAddress, _Blocked
        """

        async def before_hop(hop_url: str, hop: int) -> None:
            if hop and robots and not await self.allowed(hop_url):
                raise _Blocked(hop_url)
            await self.pacer.wait(urlsplit(hop_url).netloc)

        async def consume(final_url: str, response: httpx.Response) -> _Response:
            return await self.respond(final_url, response, page, max_bytes, truncate)

        return await self.fetcher.get(url, consume, before_hop=before_hop)

    async def respond(
        self, url: str, response: httpx.Response, page: bool, max_bytes: int | None,
        truncate: bool,
    ) -> _Response:
        """The final response, read as its kind asks."""
        url = normalize_url(url) or url
        content_type = response.headers.get("content-type", "").lower()
        result = _Response(url, response.status_code, content_type)
        if response.status_code >= 400:
            return result
        kind = content_type.split(";")[0].strip()
        if page and kind in _HTML_TYPES:
            result.body = await self.parse(response, url)
        elif max_bytes is not None:
            result.body = await self.fetcher.read(response, url, max_bytes, truncate=truncate)
        elif not page or kind.startswith("image/"):
            result.body = await self.fetcher.read(response, url)
        # else: a page URL that is neither HTML nor an image (PDF, video): not read.
        return result

    async def parse(self, response: httpx.Response, url: str) -> Page:
        """Feed the page to the extractor as it arrives; stop reading at ``max_page_bytes``."""
        extractor = PageExtractor(url)
        decoder = None
        size, limit = 0, self.o["max_page_bytes"]
        async for chunk in self.fetcher.chunks(response, url, limit, truncate=True):
            if decoder is None:
                decoder = codecs.getincrementaldecoder(_charset(response, chunk))(errors="replace")
            size += len(chunk)
            extractor.feed(decoder.decode(chunk))
        if size >= limit:
            logger.info("crawl: %s is larger than %d bytes; read only that", url, limit)
        if decoder is not None:
            extractor.feed(decoder.decode(b"", final=True))
        # Closing runs the structured-data pass (lxml, extruct): off the event loop.
        await asyncio.to_thread(extractor.close)
        return extractor.page


def _charset(response: httpx.Response, first_chunk: bytes) -> str:
    """The page's encoding: the Content-Type header, else a <meta charset> near the top."""
    candidates = [response.charset_encoding]
    found = _CHARSET.search(first_chunk[:2048])
    if found:
        candidates.append(found.group(1).decode("ascii"))
    for name in candidates:
        if name:
            try:
                return codecs.lookup(name).name
            except LookupError:
                continue
    return "utf-8"
