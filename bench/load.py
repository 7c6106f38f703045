"""Bounded load test of the HTTP API on loopback: concurrent searches while images are added.

::

    python bench/load.py                       # 20 clients for 30 s against a fresh demo server
    python bench/load.py --clients 8 --seconds 10
    python bench/load.py --url http://127.0.0.1:8000 --api-key KEY   # an already running server

Without ``--url`` it indexes scikit-image's sample photos into a temporary data folder and
serves them from a child process (so client and server do not share one interpreter lock).
``--clients`` tasks then POST searches (smaller, recompressed copies of the photos, plus photos
that are not indexed) for ``--seconds`` seconds, while a separate thread adds new images through
``POST /api/images``. Everything is bounded: at most ``--max-searches`` searches and
``--max-ingest`` additions, and only loopback addresses are ever contacted.

Prints searches/s, p50/p99 latency and the error count; exits 1 if any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
UNKNOWN = ("camera", "coins", "moon")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _photo(name: str):
    import numpy as np
    from PIL import Image
    from skimage import data

    array = getattr(data, name)()
    if array.dtype != np.uint8:
        array = (255 * (array / array.max())).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def _jpeg(image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def make_queries(rng: random.Random) -> list[bytes]:
    """Query bodies: resized and recompressed copies of indexed photos, and unindexed photos."""
    queries = []
    for name in PHOTOS:
        image = _photo(name)
        for side in (160, 320):
            scale = side / max(image.size)
            small = image.resize((round(image.width * scale), round(image.height * scale)))
            queries.append(_jpeg(small, rng.choice((40, 70, 90))))
    queries += [_jpeg(_photo(name), 85) for name in UNKNOWN]
    return queries


def new_images(rng: random.Random):
    """An endless supply of distinct images to add: random crops and turns of the photos."""
    sources = [_photo(name) for name in PHOTOS + UNKNOWN]
    while True:
        image = rng.choice(sources)
        w, h = image.size
        cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = image.crop((x, y, x + cw, y + ch)).rotate(rng.uniform(-20, 20), expand=True)
        yield _jpeg(crop, rng.randint(50, 95))


# -- the server under test ----------------------------------------------------------------------


def serve_child(data_folder: str, api_key: str, threads: int) -> None:
    """Child process: index the photos, bind a free loopback port, print it, serve."""
    import uvicorn

    from picorigin import Engine
    from picorigin.server import create_app

    with tempfile.TemporaryDirectory() as photos, Engine(data_folder) as engine:
        for name in PHOTOS:
            _photo(name).save(Path(photos) / f"{name}.jpg", quality=92)
        engine.index([photos], workers=1)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1], flush=True)
        config = uvicorn.Config(create_app(engine, api_key=api_key, threads=threads), log_level="warning",
                                ws="none", lifespan="off")
        uvicorn.Server(config).run(sockets=[sock])


def start_server(data_folder: str, api_key: str, threads: int) -> tuple[subprocess.Popen, str]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", data_folder, "--api-key", api_key,
         "--threads", str(threads)],
        stdout=subprocess.PIPE, text=True,
    )
    line = child.stdout.readline().strip()
    if not line.isdigit():
        child.kill()
        raise SystemExit(f"the server did not start (said {line!r})")
    url = f"http://127.0.0.1:{line}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return child, url
        except httpx.TransportError:
            time.sleep(0.1)
    child.kill()
    raise SystemExit("the server did not answer /healthz")


# -- load ---------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.engine_ms: list[float] = []  # the engine's own time per search, as it reports
        self.errors: list[str] = []
        self.ingested = 0
        self.ingest_errors: list[str] = []


async def search_clients(url: str, queries: list[bytes], clients: int, deadline: float,
                         max_searches: int, tally: Tally, seed: int) -> None:
    budget = max_searches
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def client_task(rng: random.Random, client: httpx.AsyncClient) -> None:
        nonlocal budget
        while time.monotonic() < deadline and budget > 0:
            budget -= 1
            body = rng.choice(queries)
            started = time.perf_counter()
            try:
                response = await client.post("/api/search", files={"file": ("q.jpg", body)})
                elapsed = time.perf_counter() - started
                if response.status_code == 200:
                    tally.latencies.append(elapsed)
                    tally.engine_ms.append(response.json()["elapsed_ms"])
                else:
                    tally.errors.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as error:
                tally.errors.append(f"{type(error).__name__}: {error}")

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await asyncio.gather(*(client_task(random.Random(seed + i), client) for i in range(clients)))


def ingest(url: str, api_key: str | None, deadline: float, max_ingest: int, tally: Tally,
           stop: threading.Event, seed: int) -> None:
    headers = {"X-API-Key": api_key} if api_key else {}
    images = new_images(random.Random(seed))
    with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
        for n in range(max_ingest):
            if stop.is_set() or time.monotonic() >= deadline:
                return
            try:
                response = client.post("/api/images", files={"file": (f"load-{n}.jpg", next(images))})
                if response.status_code == 201:
                    tally.ingested += 1
                else:
                    tally.ingest_errors.append(f"{response.status_code}: {response.text[:200]}")
            except httpx.HTTPError as error:
                tally.ingest_errors.append(f"{type(error).__name__}: {error}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    queries = make_queries(rng)
    child = None
    with tempfile.TemporaryDirectory(prefix="picorigin-load-") as data_folder:
        if args.url:
            url, api_key = args.url.rstrip("/"), args.api_key
        else:
            api_key = args.api_key or os.urandom(12).hex()
            child, url = start_server(data_folder, api_key, args.threads)
        try:
            tally = Tally()
            stop = threading.Event()
            started = time.monotonic()
            deadline = started + args.seconds
            writer = threading.Thread(
                target=ingest, args=(url, api_key, deadline, args.max_ingest, tally, stop, args.seed))
            writer.start()
            try:
                asyncio.run(search_clients(url, queries, args.clients, deadline, args.max_searches,
                                           tally, args.seed))
            finally:
                stop.set()
                writer.join()
            wall = time.monotonic() - started
        finally:
            if child is not None:
                child.terminate()
                child.wait(timeout=30)
    ms = [1000 * s for s in tally.latencies]
    return {
        "clients": args.clients,
        "seconds": round(wall, 2),
        "searches": len(ms),
        "searches_per_s": round(len(ms) / wall, 1),
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1) if ms else None,
        "engine_p50_ms": round(percentile(tally.engine_ms, 0.50), 1),
        "engine_p99_ms": round(percentile(tally.engine_ms, 0.99), 1),
        "errors": len(tally.errors),
        "ingested": tally.ingested,
        "ingest_errors": len(tally.ingest_errors),
        "first_errors": (tally.errors + tally.ingest_errors)[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent search clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to run")
    parser.add_argument("--max-searches", type=int, default=200_000, help="stop after this many")
    parser.add_argument("--max-ingest", type=int, default=2_000, help="most images added")
    parser.add_argument("--url", help="an already running server on loopback (default: start one)")
    parser.add_argument("--api-key", help="the server's API key, for adding images")
    parser.add_argument("--threads", type=int, default=8,
                        help="engine calls the started server runs at once (create_app threads=)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    parser.add_argument("--serve-child", metavar="DATA", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        serve_child(args.serve_child, args.api_key, args.threads)
        return 0
    if args.url and urlsplit(args.url).hostname not in LOOPBACK:
        parser.error("--url must be a loopback address: this load test never leaves the machine")
    if not (1 <= args.clients <= 500 and 0 < args.seconds <= 3600):
        parser.error("--clients must be in 1..500 and --seconds in (0, 3600]")
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['searches']} searches in {result['seconds']} s by {result['clients']} clients "
              f"while adding {result['ingested']} images")
        print(f"  searches/s  {result['searches_per_s']}")
        print(f"  p50         {result['p50_ms']} ms")
        print(f"  p99         {result['p99_ms']} ms   (max {result['max_ms']} ms)")
        print(f"  engine      p50 {result['engine_p50_ms']} ms, p99 {result['engine_p99_ms']} ms "
              "(time inside Engine.search; the rest is queueing, HTTP and upload parsing)")
        print(f"  errors      {result['errors']} search, {result['ingest_errors']} ingest")
        for line in result["first_errors"]:
            print(f"    {line}")
    return 1 if result["errors"] or result["ingest_errors"] or not result["searches"] else 0


if __name__ == "__main__":
    sys.exit(main())
