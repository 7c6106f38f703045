"""Coverage-guided fuzzing of picorigin's parser entries with Hypothesis (``make fuzz``).

Hypothesis turns a byte buffer into a structured mutation of a corpus input (flips, interesting
values, insertions, deletions, splices of chunks, truncation); this loop feeds it buffers the
way a coverage-guided fuzzer does: a buffer whose input reached a line transition of picorigin
or Pillow not reached before is kept, and later buffers are mutations of kept ones, so the
search goes deeper from whatever got further. Inputs that added coverage join the corpus
(a few, small); a finding (an exception outside picorigin's own tree, a hang, an API 5xx) is
saved as ``tests/fuzz/corpus/<target>/crash-<hash>`` and printed. ``tests/fuzz/test_corpus.py``
replays the corpus in ``make test``.

    python tests/fuzz/run.py --seconds 120 [--target image ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# Run as a script: tests/ importable as under pytest (pythonpath = tests).
# The checkout's picorigin, not whichever one the environment has installed.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[2])]
from fuzz import targets  # noqa: E402

# Share of the time per target: image decoding and the stages are the largest surface.
SHARES = {"image": 0.4, "metadata": 0.2, "html": 0.2, "api": 0.2}
HANG_SECONDS = 10
MAX_INPUT = 64 * 1024
KEEP_PER_TARGET = 12  # coverage-adding inputs committed per run, at most
KEEP_TOTAL = 40  # ... and per target over all runs (the corpus stays well under 1 MB)
KEEP_BYTES = 16 * 1024  # ... each at most this large

_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                b"\x7f\xff\xff\xff", b"\xff\xd8", b"\xff\xd9", b"IEND", b"IDAT", b"<", b">",
                b"\"", b"'", b"&#", b"<img src=", b"{", b"[", b"1e999", b"-1", b"NaN"]


def mutations(pool: list[bytes]):
    """A strategy: a pool entry, changed by 1 to 8 random edits."""
    edit = st.one_of(
        st.tuples(st.just("flip"), st.integers(0, MAX_INPUT), st.integers(0, 7)),
        st.tuples(st.just("set"), st.integers(0, MAX_INPUT), st.sampled_from(_INTERESTING)),
        st.tuples(st.just("insert"), st.integers(0, MAX_INPUT), st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), st.integers(0, MAX_INPUT), st.integers(1, 64)),
        st.tuples(st.just("repeat"), st.integers(0, MAX_INPUT), st.integers(1, 256)),
        st.tuples(st.just("splice"), st.integers(0, MAX_INPUT), st.integers(0, 10**6)),
        st.tuples(st.just("truncate"), st.integers(0, MAX_INPUT), st.just(0)),
    )
    return st.tuples(st.integers(0, 10**6), st.lists(edit, min_size=1, max_size=8)).map(
        lambda drawn: _apply(pool, *drawn))


def _apply(pool: list[bytes], index: int, edits: list[tuple]) -> bytes:
    data = bytearray(pool[index % len(pool)])
    for kind, at, arg in edits:
        at = at % (len(data) + 1)
        if kind == "flip" and data:
            data[at % len(data)] ^= 1 << arg
        elif kind == "set":
            data[at:at + len(arg)] = arg
        elif kind == "insert":
            data[at:at] = arg
        elif kind == "delete":
            del data[at:at + arg]
        elif kind == "repeat":
            data[at:at] = data[at:at + arg] * 2
        elif kind == "splice":
            other = pool[arg % len(pool)]
            start = arg % (len(other) + 1)
            data[at:] = other[start:start + 4096]
        elif kind == "truncate":
            del data[at:]
    return bytes(data[:MAX_INPUT])


class Coverage:
    """Line transitions (previous line, line) reached in picorigin's and Pillow's Python code."""

    def __init__(self) -> None:
        roots = [Path(targets.__file__).resolve().parents[2] / "picorigin"]
        import PIL

        roots.append(Path(PIL.__file__).resolve().parent)
        self._roots = tuple(str(r) for r in roots)
        self._wanted: dict[object, bool] = {}
        self._last: dict = {}
        self.seen: set[tuple] = set()

    def _local(self, frame, event, arg):
        if event == "line":
            code = frame.f_code
            self.seen.add((code, self._last.get(frame), frame.f_lineno))
            self._last[frame] = frame.f_lineno
        return self._local

    def _global(self, frame, event, arg):
        code = frame.f_code
        wanted = self._wanted.get(code)
        if wanted is None:
            wanted = self._wanted[code] = code.co_filename.startswith(self._roots)
        return self._local if wanted else None

    def run(self, function, data: bytes) -> int:
        """Run ``function(data)``; return how many new transitions it reached."""
        before = len(self.seen)
        sys.settrace(self._global)
        try:
            function(data)
        finally:
            sys.settrace(None)
            self._last.clear()
        return len(self.seen) - before


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang(f"no result after {HANG_SECONDS} s")


def fuzz(name: str, function, seconds: float, rng: random.Random,
         coverage: Coverage | None = None) -> dict:
    """Fuzz one target for ``seconds``; return counts and findings."""
    folder = targets.CORPUS / name
    folder.mkdir(parents=True, exist_ok=True)
    seeds = targets.SEEDS[name]()
    for seed_name, data in seeds.items():
        (folder / f"seed-{seed_name}").write_bytes(data)
    pool = [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()]
    coverage = coverage or Coverage()
    for data in pool:
        try:
            coverage.run(function, data)
        except Exception:
            pass  # a known finding in the corpus: the replay test reports it
    kept_buffers: list[bytes] = []
    findings: dict[str, str] = {}
    stats = {"target": name, "inputs": 0, "kept": 0, "findings": findings}
    room = min(KEEP_PER_TARGET, KEEP_TOTAL - len(list(folder.glob("cov-*"))))
    last = {}

    @settings(database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(mutations(pool))
    def one(data: bytes) -> None:
        last["data"] = data
        last["new"] = coverage.run(function, data)

    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if kept_buffers and rng.random() < 0.7:
            buffer = bytearray(rng.choice(kept_buffers))
            for _ in range(rng.randint(1, 4)):
                buffer[rng.randrange(len(buffer))] = rng.randrange(256)
            buffer = bytes(buffer)
        else:
            buffer = rng.randbytes(rng.randint(16, 256))
        last.clear()
        stats["inputs"] += 1
        signal.alarm(HANG_SECONDS)
        try:
            one.hypothesis.fuzz_one_input(buffer)
        except targets.PicoriginError:
            pass
        except BaseException as error:  # noqa: BLE001 - every other outcome is a finding
            if isinstance(error, KeyboardInterrupt):
                raise
            data = last.get("data")
            if data is None:
                continue  # Hypothesis could not build an input from this buffer
            digest = hashlib.sha256(data).hexdigest()[:12]
            summary = f"{type(error).__name__}: {str(error)[:200]}"
            if summary not in findings.values():
                (folder / f"crash-{digest}").write_bytes(data)
                findings[f"crash-{digest}"] = summary
                print(f"[{name}] FINDING crash-{digest}: {summary}", flush=True)
                traceback.print_exception(error, limit=-6)
        finally:
            signal.alarm(0)
        if last.get("new"):
            kept_buffers.append(buffer)
            pool.append(last["data"])
            if stats["kept"] < room and len(last["data"]) <= KEEP_BYTES:
                digest = hashlib.sha256(last["data"]).hexdigest()[:12]
                (folder / f"cov-{digest}").write_bytes(last["data"])
                stats["kept"] += 1
    stats["coverage"] = len(coverage.seen)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("FUZZ_SECONDS", 120)),
                        help="total time over all targets (default: $FUZZ_SECONDS or 120)")
    parser.add_argument("--target", action="append", choices=list(SHARES),
                        help="fuzz only this target (repeatable)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    args = parser.parse_args(argv)
    names = args.target or list(SHARES)
    total = sum(SHARES[n] for n in names)
    rng = random.Random(args.seed if args.seed is not None else time.time_ns())
    signal.signal(signal.SIGALRM, _alarm)
    assert threading.current_thread() is threading.main_thread()
    results = []
    for name in names:
        seconds = args.seconds * SHARES[name] / total
        if name == "api":
            # The server's threads are traced too (threads started from here on inherit it):
            # its handlers are what the request bodies reach.
            coverage = Coverage()
            threading.settrace(coverage._global)
            try:
                with tempfile.TemporaryDirectory() as tmp, targets.api_server(Path(tmp)) as client:
                    results.append(fuzz(name, targets.api_target(client), seconds, rng, coverage))
            finally:
                threading.settrace(None)
        else:
            results.append(fuzz(name, targets.LOCAL_TARGETS[name], seconds, rng))
        r = results[-1]
        print(f"{name:9s} {r['inputs']:6d} inputs in {seconds:5.0f} s, {r['coverage']} line "
              f"transitions, {r['kept']} inputs kept, {len(r['findings'])} findings", flush=True)
    found = sum(len(r["findings"]) for r in results)
    print(f"{found} findings" + (": see tests/fuzz/corpus/*/crash-*" if found else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
