"""Watches and alerts: ingest throughput with 0, 1,000 and 100,000 watched pictures, and the
latency from ingest to webhook delivery.

Throughput: the same images (scikit-image photographs and textured pictures from
``tests/helpers.py``, 640x480 JPEGs, every one distinct) are added with ``Engine.add`` (the
fingerprint and local stages; deep off so the figure is the watcher's cost, not the network's)
into a fresh data folder that watches N pictures, then ``Watcher.process`` checks them against
the watches: the report gives images/s for add alone, for add + check, and the check's ms per
image. Watched pictures beyond the five real photographs are synthetic: random fingerprints
(all eight orientations, as stored) and, up to 1,000, random ORB-like descriptors quantised with
the packaged vocabulary (so the watch index's inverted file has realistic posting lengths);
100,000 pictures carry fingerprints only.

Latency: a webhook receiver on 127.0.0.1 and the watcher's background thread (as ``serve`` runs
it, every ``watch_seconds``, here 0.5 s); edited copies of the watched photographs are added one
every 0.25 s from another engine on the folder; the latency is from ``Engine.add`` returning to
the receiver reading the POST.

Run ``python -m bench.alerts [--quick]``; results go to ``bench/results/alerts.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import secrets
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import distinct_pictures, photo  # noqa: E402

from picorigin import Engine  # noqa: E402
from picorigin._features.local import LocalFeatures  # noqa: E402
from picorigin._watch import watcher  # noqa: E402
from picorigin._watch._index import pack_local  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
WATCHED = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")
SETTINGS = {"stages": "local", "workers": 1, "measure_detail": False}


def _jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _ingest_images(count: int, folder: Path) -> list[bytes]:
    names = [f"t{i:03d}" for i in range(count)]
    return [p.read_bytes() for p in distinct_pictures(folder, names, seed=7, size=(640, 480))]


def _synthetic_watches(engine: Engine, count: int, with_local: bool, rng) -> None:
    local = engine._stages["local"]
    digest = local.vocabulary.digest()
    batch = 5000
    for start in range(0, count, batch):
        pictures = []
        for i in range(start, min(count, start + batch)):
            picture = {"uri": f"synthetic-{i}", "sha256": secrets.token_hex(32),
                       "pixel_sha256": secrets.token_hex(32), "width": 640, "height": 480,
                       "fingerprint": rng.integers(0, 256, 8 * 32, dtype=np.uint8).tobytes(),
                       "local": None, "thumbnail": None}
            if with_local:
                descriptors = rng.integers(0, 256, (1000, 32), dtype=np.uint8)
                points = rng.uniform(0, 480, (1000, 2)).astype(np.float32)
                mirrored = LocalFeatures(points, descriptors[::-1].copy(), (640, 480), True)
                features = LocalFeatures(points, descriptors, (640, 480), mirrored=mirrored)
                picture["local"] = pack_local(features, local._words(descriptors),
                                              local._words(mirrored.descriptors), digest)
            pictures.append(picture)
        engine._catalog.add_watch({"label": "synthetic", "webhook": None, "secret": "x",
                                   "kinds": ["exact", "near_duplicate", "partial"]}, pictures)


def throughput(watched: int, images: list[bytes], real_dir: Path, root: Path) -> dict:
    rng = np.random.default_rng(watched)
    with Engine(root / f"throughput-{watched}", settings=SETTINGS) as engine:
        watching = watcher(engine)
        started = time.perf_counter()
        if watched:
            watching.add([real_dir], label="real")
            _synthetic_watches(engine, watched - len(WATCHED), watched <= 1000, rng)
            watching._refresh()  # build the watch index now, outside the timed ingest
        setup = time.perf_counter() - started
        started = time.perf_counter()
        for i, data in enumerate(images):
            engine.add(data, uri=f"bench-{i}.jpg")
        added = time.perf_counter() - started
        started = time.perf_counter()
        alerts = watching.process()
        checked = time.perf_counter() - started
    return {"watched": watched, "images": len(images), "setup_s": round(setup, 1),
            "add_images_per_s": round(len(images) / added, 1),
            "add_and_check_images_per_s": round(len(images) / (added + checked), 1),
            "check_ms_per_image": round(1000 * checked / len(images), 2),
            "alerts": alerts}


def latency(real_dir: Path, root: Path, copies: int) -> dict:
    arrived: dict[int, float] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            arrived.setdefault(body["image"]["id"], time.monotonic())
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    folder = root / "latency"
    settings = {**SETTINGS, "watch_seconds": 0.5}
    added: dict[int, float] = {}
    with Engine(folder, settings=settings) as engine, Engine(folder, settings=settings) as writer:
        watching = watcher(engine)
        watching.add([real_dir], webhook=f"http://127.0.0.1:{server.server_address[1]}/hook")
        watching.start()
        try:
            for i in range(copies):
                source = photo(WATCHED[i % len(WATCHED)])
                side = 200 + 7 * i  # every copy a different size: distinct bytes
                copy = source.resize((side, round(side * source.height / source.width)))
                image_id = writer.add(_jpeg(copy, 70 + i % 20), uri=f"copy-{i}.jpg")
                added[image_id] = time.monotonic()
                time.sleep(0.25)
            deadline = time.monotonic() + 30
            while len(arrived) < len(added) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            watching.stop()
            server.shutdown()
    waits = np.array([arrived[i] - added[i] for i in added if i in arrived]) * 1000
    return {"copies": copies, "delivered": int(len(waits)), "watch_seconds": 0.5,
            "p50_ms": round(float(np.percentile(waits, 50)), 1),
            "p99_ms": round(float(np.percentile(waits, 99)), 1),
            "max_ms": round(float(waits.max()), 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 instead of 100,000, "
                        "fewer images")
    args = parser.parse_args(argv)
    scales = (0, 1000, 10_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        real_dir = root / "watched"
        real_dir.mkdir()
        for name in WATCHED:
            photo(name).save(real_dir / f"{name}.jpg", quality=92)
        images = _ingest_images(20 if args.quick else 60, root / "images")
        rows = []
        for watched in scales:
            row = throughput(watched, images, real_dir, root)
            print(json.dumps(row), flush=True)
            rows.append(row)
        delivery = latency(real_dir, root, 10 if args.quick else 40)
        print(json.dumps(delivery), flush=True)
    results = {"throughput": rows, "delivery": delivery}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "alerts.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
