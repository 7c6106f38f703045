"""The decode memory budget, estimated from the header, and decodes that run side by side.

A 194 KB 10000 x 10000 16-bit grey PNG once cost 9 s and 3 GB to search, and a process-wide
lock around every decode made all other searches wait for it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
from helpers import jpeg_bytes, photo
from PIL import Image

from picorigin import Engine, ImageTooLarge
from picorigin import _imaging
from picorigin._imaging import DECODE_BUDGET, decode, decode_cost


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def wide_png() -> bytes:
    """The probe's file: 10000 x 10000 16-bit grey, about 194 KB."""
    return png(Image.new("I;16", (10_000, 10_000)))


@pytest.mark.parametrize("mode, transparency, per_pixel", [
    ("RGB", False, 4), ("L", False, 5), ("1", False, 5), ("P", False, 5), ("P", True, 9),
    ("I;16", False, 7), ("I", False, 9), ("F", False, 9), ("RGBA", False, 8), ("LA", False, 12),
    ("CMYK", False, 8),
])
def test_cost_per_pixel_by_mode(mode, transparency, per_pixel):
    assert decode_cost(mode, 100, 30, transparency=transparency) == 3000 * per_pixel


def test_the_16_bit_png_is_refused_before_decoding(wide_png):
    assert len(wide_png) < 250_000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match=r"10000x10000 I;16 PNG .* 668 MiB, more than the 256"):
        decode(wide_png, source="wide.png")
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ImageTooLarge, match="1-bit|10000x10000 1 PNG"):
        decode(png(Image.new("1", (10_000, 10_000))))
    # Within the budget (42 MB) a 16-bit PNG decodes, reduced to the working size; past a
    # budget set lower it is refused.
    white = png(Image.new("I;16", (3000, 2000), 65535))
    decoded = decode(white)
    assert decoded.image.size == (600, 400) and decoded.image.getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageTooLarge, match="40 MiB, more than the 39 MiB"):
        decode(white, max_decode_bytes=39 * 2**20)


def test_peak_memory_of_one_search_for_the_16_bit_png(tmp_path, wide_png):
    """Measured in a fresh process: the probe's file is answered (refused) within 2 s and 1 GB."""
    (tmp_path / "wide.png").write_bytes(wide_png)
    script = f"""
import json, resource, time
from picorigin import Engine, ImageTooLarge
engine = Engine({str(tmp_path / 'db')!r}, settings={{"stages": "local,deep"}})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    engine.search({str(tmp_path / 'wide.png')!r})
    outcome = "answered"
except ImageTooLarge as error:
    outcome = str(error)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"outcome": outcome, "seconds": seconds, "added_kib": peak - before}}))
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path,
                         env={**os.environ,
                              "PYTHONPATH": _imaging.__file__.rsplit("/picorigin/", 1)[0]})
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)
    print("16-bit 10000x10000 PNG search:", figures)
    assert "668 MiB" in figures["outcome"]
    assert figures["seconds"] < 2.0 and figures["added_kib"] < 1024 * 1024


def test_wide_modes_convert_strip_by_strip_as_whole(monkeypatch):
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, (301, 257), dtype=np.uint16)
    floats = rng.random((301, 257), dtype=np.float32)
    monkeypatch.setattr(_imaging, "_STRIP_PIXELS", 1000)  # many strips, a ragged last one
    wide = _imaging._to_8bit(Image.fromarray(values))
    assert np.array_equal(np.asarray(wide), np.rint(values / 257).astype(np.uint8))
    scaled = _imaging._to_8bit(Image.fromarray(floats, "F"))
    assert np.array_equal(np.asarray(scaled), np.clip(np.rint(floats.astype(np.float64) * 255.0), 0, 255))


def test_the_pixel_hash_does_not_depend_on_the_strips(monkeypatch):
    image = photo("astronaut").resize((333, 251))
    whole = hashlib.sha256(b"RGB 333 251\n" + image.tobytes()).hexdigest()
    for strip in (1, 1000, 333 * 7 + 5, 10**9):
        monkeypatch.setattr(_imaging, "_STRIP_PIXELS", strip)
        assert _imaging._rgb_sha256(image) == whole
    assert decode(png(image)).pixel_sha256 == whole


def test_decodes_run_side_by_side():
    """A decode in flight (held open here) no longer makes another thread's decode wait."""
    entered, release = threading.Event(), threading.Event()

    def slow_decode():
        with _imaging._pillow_warnings_logged("slow.png"):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=slow_decode)
    holder.start()
    try:
        assert entered.wait(10)
        done = []
        other = threading.Thread(target=lambda: done.append(decode(jpeg_bytes(photo("coffee")))))
        other.start()
        other.join(20)
        assert done and done[0].format == "JPEG"
    finally:
        release.set()
        holder.join(10)


def test_warnings_are_logged_per_thread_and_the_filters_restored(caplog):
    before_filters, before_show = list(warnings.filters), warnings.showwarning
    bomb = png(Image.new("1", (9500, 9500)))  # Pillow warns past 89 MP, before our check refuses
    barrier = threading.Barrier(4)
    errors = []

    def work(i):
        barrier.wait(10)
        try:
            decode(bomb, source=f"bomb{i}.png")
        except ImageTooLarge as error:
            errors.append(str(error))

    with caplog.at_level("DEBUG", logger="picorigin"):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert sorted(e.split(":")[0] for e in errors) == [f"bomb{i}.png" for i in range(4)]
    logged = {r.getMessage().split(":")[0] for r in caplog.records if "exceeds limit" in r.getMessage()}
    assert logged == {f"bomb{i}.png" for i in range(4)}
    assert warnings.filters == before_filters and warnings.showwarning is before_show
    assert _imaging._HOOK == {"users": 0, "saved": None}


def test_engine_and_budget(tmp_path, wide_png):
    with Engine(tmp_path / "db") as engine:
        with pytest.raises(ImageTooLarge, match="MiB"):
            engine.add(wide_png)
        assert engine.stats()["images"] == 0
        assert DECODE_BUDGET == 256 * 2**20
