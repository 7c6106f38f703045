"""Fault bench: a real ``picorigin serve`` under concurrent searches, faulty clients and a writer
killed mid-batch; then ``picorigin check``.

::

    python -m bench.faults                 # 60 s
    python -m bench.faults --seconds 20 --clients 50

A collection of ~30 images is indexed into a temporary data folder and served by ``picorigin
serve`` (a child process) on 127.0.0.1. For ``--seconds``:

- ``--clients`` search clients (default 50) POST queries: most send normally; a tenth trickle
  their upload a few hundred bytes at a time; a tenth drop the connection halfway through the
  upload;
- one writer runs ``picorigin index`` in another process, one batch of new images after another;
  about a third of the way in, it is killed with SIGKILL mid-batch (once), and 5 s later any of
  its processes still alive are counted (then killed).

Prints the errors (5xx, failed transports, any answer but 200 to a complete search), p50/p99 of
the completed searches, and what ``picorigin check --json`` says once the server has stopped;
writes ``bench/results/faults.json``. Only loopback is contacted; every loop is bounded by the
deadline and a request budget, and the server and writer are stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
RESULTS = Path(__file__).parent / "results"
CLI = [sys.executable, "-m", "picorigin"]


def _photo(name: str) -> Image.Image:
    from skimage import data

    array = getattr(data, name)()
    if array.dtype != np.uint8:
        array = (255 * (array / array.max())).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _variant(rng: random.Random, image: Image.Image) -> Image.Image:
    """A random crop, turn and size of ``image``: a distinct picture for the collection."""
    w, h = image.size
    cw, ch = rng.randint(w // 3, w), rng.randint(h // 3, h)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    crop = image.crop((x, y, x + cw, y + ch)).rotate(rng.uniform(-15, 15), expand=True)
    scale = rng.uniform(200, 400) / max(crop.size)
    return crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))


def write_images(folder: Path, count: int, rng: random.Random, sources: list[Image.Image],
                 prefix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{prefix}-{i:03d}.jpg"
        path.write_bytes(_jpeg(_variant(rng, rng.choice(sources)), rng.randint(60, 92)))
        paths.append(path)
    return paths


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _multipart(body: bytes) -> tuple[bytes, str]:
    boundary = os.urandom(8).hex()
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
               f"filename=\"q.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()
    payload += body + f"\r\n--{boundary}--\r\n".encode()
    return payload, f"multipart/form-data; boundary={boundary}"


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []   # completed normal searches, seconds
        self.slow_latencies: list[float] = []
        self.errors: list[str] = []
        self.slow_done = 0
        self.dropped = 0


# -- clients ----------------------------------------------------------------------------------


async def normal_client(url: str, queries: list[bytes], deadline: float, budget: list[int],
                        tally: Tally, rng: random.Random) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        while time.monotonic() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            try:
                response = await client.post("/api/search", files={"file": ("q.jpg",
                                                                            rng.choice(queries))})
            except httpx.HTTPError as error:
                tally.errors.append(f"search: {type(error).__name__}: {error}")
                continue
            if response.status_code == 200:
                tally.latencies.append(time.perf_counter() - started)
            else:
                tally.errors.append(f"search: {response.status_code} {response.text[:200]}")


async def _raw_request(port: int, body: bytes, *, trickle: bool, drop: bool,
                       rng: random.Random) -> bytes | None:
    payload, ctype = _multipart(body)
    head = (f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        if drop:  # half the upload, then the connection is gone
            writer.write(payload[: rng.randint(1, len(payload) // 2)])
            await writer.drain()
            await asyncio.sleep(rng.uniform(0.05, 0.5))
            writer.transport.abort()
            return None
        chunk = rng.randint(200, 600)
        for start in range(0, len(payload), chunk):
            writer.write(payload[start:start + chunk])
            await writer.drain()
            if trickle:
                await asyncio.sleep(0.05)
        return await asyncio.wait_for(reader.read(), 120)
    finally:
        writer.close()


async def faulty_client(port: int, queries: list[bytes], deadline: float, budget: list[int],
                        tally: Tally, rng: random.Random, *, drop: bool) -> None:
    while time.monotonic() < deadline and budget[0] > 0:
        budget[0] -= 1
        started = time.perf_counter()
        # Small queries for the trickling clients: each upload lasts a few seconds, not minutes.
        body = min(queries, key=len) if not drop else rng.choice(queries)
        try:
            answer = await _raw_request(port, body, trickle=not drop, drop=drop, rng=rng)
        except (OSError, asyncio.TimeoutError) as error:
            tally.errors.append(f"{'drop' if drop else 'slow'}: {type(error).__name__}: {error}")
            continue
        if drop:
            tally.dropped += 1
            continue
        status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "none"
        if status == "200":
            tally.slow_done += 1
            tally.slow_latencies.append(time.perf_counter() - started)
        else:
            tally.errors.append(f"slow: {status} {answer[:200]!r}")


async def clients(url: str, port: int, queries: list[bytes], count: int, deadline: float,
                  max_requests: int, tally: Tally, seed: int, share: float) -> None:
    budget = [max_requests]
    faulty = round(count * share)
    tasks = []
    for i in range(count):
        rng = random.Random(seed + i)
        if i < faulty:
            tasks.append(faulty_client(port, queries, deadline, budget, tally, rng, drop=False))
        elif i < 2 * faulty:
            tasks.append(faulty_client(port, queries, deadline, budget, tally, rng, drop=True))
        else:
            tasks.append(normal_client(url, queries, deadline, budget, tally, rng))
    await asyncio.gather(*tasks)


# -- the writer -------------------------------------------------------------------------------


def _session_processes(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def writer(db: Path, work: Path, deadline: float, kill_at: float, sources: list[Image.Image],
           rng: random.Random, max_batches: int, report: dict) -> None:
    """Index batches of new images with ``picorigin index`` until the deadline; SIGKILL one."""
    killed = False
    for batch in range(max_batches):
        if time.monotonic() >= deadline:
            break
        folder = work / f"batch-{batch:03d}"
        write_images(folder, 8, rng, sources, f"b{batch}")
        child = subprocess.Popen([*CLI, "index", "--db", str(db), "-w", "2", str(folder)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 start_new_session=True)
        if not killed and time.monotonic() >= kill_at:
            time.sleep(rng.uniform(1.5, 3.0))  # into the batch: decoding, analysing, writing
            if child.poll() is None:
                child.send_signal(signal.SIGKILL)
                child.wait()
                killed = True
                report["killed_batch"] = batch
                time.sleep(5)
                left = _session_processes(child.pid)
                report["writer_processes_left_5s_after_kill"] = len(left)
                for pid in left:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
                continue
        try:
            _, err = child.communicate(timeout=max(5.0, deadline - time.monotonic() + 60))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
            report["batch_errors"].append(f"batch {batch}: still running past the deadline")
            break
        report["batches"] += 1
        if child.returncode != 0:
            report["batch_errors"].append(f"batch {batch}: exit {child.returncode}: "
                                          f"{err.decode(errors='replace')[-300:]}")
    report["killed"] = killed


# -- the run ----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    sources = [_photo(name) for name in PHOTOS]
    with tempfile.TemporaryDirectory(prefix="picorigin-faults-") as tmp:
        tmp_path = Path(tmp)
        db = tmp_path / "data"
        collection = write_images(tmp_path / "collection", args.images, rng, sources, "c")
        started = time.perf_counter()
        subprocess.run([*CLI, "index", "--db", str(db), "-w", "2", str(tmp_path / "collection")],
                       check=True, stdout=subprocess.DEVNULL)
        index_s = time.perf_counter() - started
        # Queries: smaller, recompressed copies of collection images, and unindexed variants.
        queries = []
        for path in rng.sample(collection, min(12, len(collection))):
            image = Image.open(path)
            queries.append(_jpeg(image.resize((image.width // 2, image.height // 2)), 70))
        queries += [_jpeg(_variant(rng, s), 80) for s in sources[:4]]

        port = _free_port()
        # The server's log goes to a file: a pipe nobody reads until the end fills up, and a
        # server blocked writing its log looks exactly like a hung one.
        log_path = db.parent / "server.log"
        log_file = open(log_path, "wb")
        server = subprocess.Popen([*CLI, "serve", "--db", str(db), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=log_file,
                                  start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        report: dict = {"seconds": args.seconds, "clients": args.clients,
                        "collection": len(collection), "index_collection_s": round(index_s, 1),
                        "batches": 0, "batch_errors": [], "killed": False}
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise SystemExit("the server did not answer /healthz")
            tally = Tally()
            t0 = time.monotonic()
            deadline = t0 + args.seconds
            thread = threading.Thread(target=writer, args=(
                db, tmp_path, deadline, t0 + args.seconds / 3, sources, random.Random(args.seed),
                args.max_batches, report), daemon=True)
            if not args.no_writer:
                thread.start()
            asyncio.run(clients(url, port, queries, args.clients, deadline, args.max_requests,
                                tally, args.seed, args.faulty))
            if not args.no_writer:
                thread.join(timeout=180)
            report["writer_finished"] = not thread.is_alive()
            report["elapsed_s"] = round(time.monotonic() - t0, 1)
            report["server_alive_after"] = False
            report["images_after"] = None
            with httpx.Client(base_url=url, timeout=60) as client:
                started = time.perf_counter()
                try:
                    report["server_alive_after"] = client.get("/healthz").status_code == 200
                    report["images_after"] = client.get("/api/stats").json().get("images")
                except httpx.HTTPError as error:
                    report["after_error"] = f"{type(error).__name__}: {error}"
                report["healthz_after_s"] = round(time.perf_counter() - started, 2)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log_file.close()
        log = log_path.read_bytes().decode(errors="replace")
        report["server_5xx_or_tracebacks_logged"] = log.count("Traceback")
        report["server_log_tail"] = log[-3000:]
        check = subprocess.run([*CLI, "check", "--json", "--db", str(db)], capture_output=True,
                               text=True, timeout=300)
        try:
            check_out = json.loads(check.stdout)
        except ValueError:
            check_out = check.stdout[-2000:] + check.stderr[-2000:]
        report["check"] = {"exit": check.returncode, "output": check_out}
    ms = [1000 * s for s in tally.latencies]
    report.update({
        "searches_completed": len(ms),
        "p50_ms": round(percentile(ms, 0.5), 1) if ms else None,
        "p99_ms": round(percentile(ms, 0.99), 1) if ms else None,
        "slow_uploads_completed": tally.slow_done,
        "slow_p50_ms": (round(1000 * percentile(tally.slow_latencies, 0.5), 1)
                        if tally.slow_latencies else None),
        "dropped_uploads": tally.dropped,
        "errors": len(tally.errors),
        "error_samples": sorted(set(tally.errors))[:20],
    })
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--images", type=int, default=30, help="size of the served collection")
    parser.add_argument("--max-requests", type=int, default=20000)
    parser.add_argument("--max-batches", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--faulty", type=float, default=0.1,
                        help="share of clients that trickle, and again that drop (default 0.1)")
    parser.add_argument("--no-writer", action="store_true", help="searches only (a baseline)")
    args = parser.parse_args(argv)
    report = run(args)
    print(f"{report['clients']} clients for {report['elapsed_s']} s over {report['collection']} "
          f"images; writer: {report['batches']} batches, killed mid-batch {report['killed']}, "
          f"{report.get('writer_processes_left_5s_after_kill', '-')} of its processes left 5 s "
          "after")
    print(f"searches completed: {report['searches_completed']}, p50 {report['p50_ms']} ms, "
          f"p99 {report['p99_ms']} ms; slow uploads completed {report['slow_uploads_completed']} "
          f"(p50 {report['slow_p50_ms']} ms); dropped uploads {report['dropped_uploads']}")
    print(f"errors: {report['errors']}")
    for line in report["error_samples"]:
        print("  ", line)
    print(f"batch errors: {report['batch_errors']}")
    print(f"server alive after: {report['server_alive_after']}, images after: "
          f"{report['images_after']}, tracebacks in server log: "
          f"{report['server_5xx_or_tracebacks_logged']}")
    print(f"picorigin check --json (exit {report['check']['exit']}): "
          f"{json.dumps(report['check']['output'])[:1500]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "faults.json").write_text(json.dumps(report, indent=2))
    ok = (report["errors"] == 0 and report["check"]["exit"] == 0
          and report["server_alive_after"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
