"""Test helpers importable from every test module (``pythonpath = tests`` in the pytest config)."""

from __future__ import annotations

import io
import os
import pty
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

# Photographs (not drawings or synthetic patterns) from skimage.data.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
# Photos kept out of every index: queries that must find no copies.
UNKNOWN = ("camera", "coins", "moon")


def photo(name: str) -> Image.Image:
    """A sample photo as an RGB PIL image."""
    array = getattr(data, name)()
    if array.dtype != np.uint8:
        array = (255 * (array / array.max())).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def open_stage(cls, folder, ids=(), settings=None):
    """A stage of class ``cls`` over a real SQLite catalog in ``folder``, with placeholder
    images catalogued under ``ids`` (signals are stored only for catalogued images).

    Returns (stage, catalog); close both with ``close_stage``.
    """
    from picorigin._settings import resolve_settings
    from picorigin._store import SQLiteCatalog

    catalog = SQLiteCatalog(folder / "catalog.sqlite")
    with catalog._transaction() as db:  # explicit ids: only a test needs them
        db.executemany(
            "INSERT OR IGNORE INTO images (id, sha256, pixel_sha256, width, height, format,"
            " byte_size, orientation, added_at) VALUES (?, ?, ?, 1, 1, 'PNG', 1, 0, 'now')",
            [(int(i), f"{int(i):064x}", f"{int(i):064x}") for i in ids])
    return cls(catalog, folder, settings or resolve_settings({}, environ={})), catalog


def close_stage(stage, catalog) -> None:
    stage.close()
    catalog.close()


def distinct_pictures(folder, names, seed: int = 0, size=(360, 270)):
    """Write one JPEG per name into ``folder``: random textured pictures, each unlike the others
    (no two are near-duplicates of each other), for tests that need many images.

    Returns the paths, in the order of ``names``.
    """
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, name in enumerate(names):
        rng = np.random.default_rng([seed, i])
        coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC),
                          np.float32)
        fine = rng.normal(0, 28, (-(-size[1] // 3), -(-size[0] // 3), 1)).repeat(3, 0).repeat(3, 1)
        fine = fine[: size[1], : size[0]]
        image = Image.fromarray(np.clip(base + fine, 0, 255).astype(np.uint8))
        path = folder / f"{name}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


# Strips and specks: ORB's pyramid once rounded the thin side of such images to 0 pixels.
EXTREME_SIZES = [(1, 1), (2, 1), (3, 3), (1, 640), (640, 1), (2, 2000), (6, 5000), (5000, 6),
                 (30000, 1), (1, 30000), (40, 3000), (3000, 40), (64, 64)]


def extreme_folder(root: Path, photo_dir: Path) -> list[Path]:
    """Write 25 images to ``root/mixed``: the sample photos (JPEG from ``photo_dir``), noise of
    each of EXTREME_SIZES and photo strips in several modes and formats; return their paths."""
    folder = root / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(7)
    for name in PHOTOS:
        shutil.copy(photo_dir / f"{name}.jpg", folder / f"{name}.jpg")
    for w, h in EXTREME_SIZES:
        noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(noise).save(folder / f"noise_{w}x{h}.png")
    astronaut = photo("astronaut")
    astronaut.resize((1, 640)).convert("L").save(folder / "grey_1x640.png")
    astronaut.resize((2000, 2)).convert("RGBA").save(folder / "rgba_2000x2.png")
    astronaut.resize((6, 5000)).convert("P").save(folder / "palette_6x5000.png")
    Image.fromarray((rng.integers(0, 65536, (2000, 2))).astype(np.uint16)).save(
        folder / "wide_2x2000.png")
    astronaut.resize((8, 4000)).save(folder / "strip_8x4000.jpg", quality=90)
    astronaut.resize((4000, 8)).save(folder / "strip_4000x8.webp")
    files = sorted(folder.iterdir())
    assert len(files) == 25
    return files


@__import__("contextlib").contextmanager
def serve_in_thread(app, *, log_level: str = "warning"):
    """Serve an ASGI ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL; stop it
    afterwards. Port 0: the kernel picks a free port, no race with other tests."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level=log_level, ws="none", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


# One frame of the CLI's progress bar: "\r[####......] 12/30    3.4 img/s  ETA 00:00:05 "
BAR_FRAME = re.compile(r"\[[#.]+\] (\d+)/(\d+) +[\d.]+ img/s  ETA \S+ ")


def run_on_a_terminal(command, *, on_frame=None, on_start=None):
    """Run ``command`` with stderr on a pseudo-terminal, so picorigin draws its progress bar as
    a user sees it, and stdout on a pipe; call ``on_start(child)`` once it runs and
    ``on_frame(done, total)`` for each bar frame as it is drawn.

    Returns (exit status, stdout, the frames as (done, total), stderr's other text).
    """
    master, slave = pty.openpty()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    if on_start:
        on_start(child)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(child.stdout.read()), daemon=True)
    reader.start()  # stdout is read alongside: a full pipe would stall the child
    text, frames = "", []
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
        for match in list(BAR_FRAME.finditer(text))[len(frames):]:
            frames.append((int(match[1]), int(match[2])))
            if on_frame:
                on_frame(*frames[-1])
    os.close(master)
    child.wait()
    reader.join()
    child.stdout.close()
    other = BAR_FRAME.sub("", text).replace("\r", "").replace("\n", "").strip()
    return child.returncode, out[0], frames, other


def soft_photo(seed: int = 0, size=(2000, 1250)) -> bytes:
    """A camera-like JPEG (quality 90) of a macro shot: a subject (scikit-image's coffee, at its
    own resolution, feathered, a lens's softness of sigma 0.8 px) before a background defocused
    by a Gaussian of sigma 4 px, with sensor noise (sd ~1.5 grey levels, neighbours correlated).
    Its fine detail is as scarce as an enlargement's: an absolute detail measure read this
    2000-px original as 500 px of detail, its 1333-px reduction as 333 and its 666 as 166."""
    import cv2

    rng = np.random.default_rng(seed)
    background = np.asarray(photo("chelsea").resize(size, Image.Resampling.BICUBIC), np.float32)
    canvas = cv2.GaussianBlur(background, (0, 0), 4.0)
    subject = cv2.GaussianBlur(np.asarray(photo("coffee"), np.float32), (0, 0), 0.8)
    height, width = subject.shape[:2]
    top, left = (size[1] - height) // 2, (size[0] - width) // 2
    rows, cols = np.mgrid[:height, :width].astype(np.float32)
    distance = np.hypot((rows - height / 2) / (height / 2), (cols - width / 2) / (width / 2))
    weight = np.clip((1.0 - distance) / 0.3, 0.0, 1.0)[..., None]
    region = canvas[top:top + height, left:left + width]
    canvas[top:top + height, left:left + width] = subject * weight + region * (1 - weight)
    grain = cv2.GaussianBlur(rng.standard_normal(canvas.shape).astype(np.float32), (0, 0), 0.5)
    canvas = np.clip(np.rint(canvas + 1.5 * 1.9 * grain), 0, 255).astype(np.uint8)
    return jpeg_bytes(Image.fromarray(canvas), 90)
