"""The Dask ingest bar: ``picorigin index --dask`` against a 2-worker ``distributed.LocalCluster``
(127.0.0.1, worker processes) indexes a folder of distinct photos with every stage; one worker
is killed with SIGKILL midway; every photo still ends up catalogued once and searchable.

``python -m bench.dask_bar [--images 300] [--kill-at 0.33]``

Every step is the real CLI in a child process (``python -m picorigin``), its stderr on a
pseudo-terminal so the progress bar draws as it does for a user:

1. ``--images`` distinct pictures (:func:`photo_tiles`: non-overlapping tiles of the bench's
   photographs, textured ones, none a copy of another) go to a temporary folder.
2. ``index FOLDER --dask ADDRESS``: when the bar passes ``--kill-at`` of the total, the worker
   with the most tasks running is killed with SIGKILL (its pid asked of the worker with ``client.run``;
   the nanny starts a new one).
3. Checked: exit status 0, the summary ``indexed N, skipped 0, failed 0``, the bar drawn from
   0/N to N/N and never backwards, nothing else on stderr; the catalog holds N images and N
   locations, and every stage (fingerprint, local, deep) N signal rows, one per image.
4. ``index --dask`` again: ``indexed 0, skipped N``.
5. ``search --fast --json`` of all N files (one process): each one's first match is the file
   itself, kind ``exact``; other copy-kind matches are counted (distinct pictures: 0 expected).
   A sample of 20 is searched with every stage the same way.
6. The same folder indexed by the local pool (``index FOLDER``, no ``--dask``) into another data
   folder, for comparison: the bar and summary must have the same form, and each content's
   signal rows must be the same bytes as the Dask run's.

Writes ``bench/results/dask_bar.json``; exits 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.datasets import distractor_photos, load_photos

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the tests' runner of a command on a pseudo-terminal
from helpers import run_on_a_terminal  # noqa: E402
CLI = [sys.executable, "-m", "picorigin"]
GRID = (4, 3)  # columns x rows of a landscape photo (rows x columns of a portrait one)
MIN_STD = 30.0  # grey-level spread below which a tile is mostly sky or wall: too plain to tell apart
SAMPLE = 20  # files searched with every stage

SUMMARY = re.compile(r"indexed (\d+), skipped (\d+), failed (\d+) in ([\d.]+) s"
                     r" \(([\d.]+) images/s\)")


def photo_tiles(folder: Path, n: int) -> list[Path]:
    """Write ``n`` distinct JPEGs (q90) to ``folder``: non-overlapping tiles of the bench's
    photographs (``load_photos`` and ``distractor_photos``), taken one tile position at a time
    across all photos so every photo contributes.

    Plain tiles (mostly sky or wall) are skipped, and so is any tile that a search (fingerprint
    and local features) already finds a copy of among the kept ones: the light and dark
    variants of one GNOME drawing, the tiles of a repeating pattern. The bar asks that search
    tell every file apart, so the files must be different pictures to begin with.

    Raises SystemExit when the photos cannot give ``n`` tiles.
    """
    from picorigin import Engine

    folder.mkdir(parents=True, exist_ok=True)
    photos = [p.path for p in load_photos()] + [p.path for p in distractor_photos()]
    tiles: dict[int, list] = {}
    for path in photos:
        with Image.open(path) as image:
            image = image.convert("RGB")
        w, h = image.size
        cols, rows = GRID if w >= h else GRID[::-1]
        for row in range(rows):
            for col in range(cols):
                tile = image.crop((col * w // cols, row * h // rows,
                                   (col + 1) * w // cols, (row + 1) * h // rows))
                if np.asarray(tile.convert("L"), np.float32).std() >= MIN_STD:
                    tiles.setdefault(row * cols + col, []).append((path.stem, tile))
    paths: list[Path] = []
    with tempfile.TemporaryDirectory() as scratch, \
            Engine(scratch, settings={"stages": "local", "thumbnail_side": 0}) as kept:
        for stem, tile in (t for position in sorted(tiles) for t in tiles[position]):
            path = folder / f"{len(paths):03d}-{stem}.jpg"
            tile.save(path, quality=90)
            if kept.search(str(path)).copies:
                path.unlink()
                continue
            kept.index([str(path)], workers=1)
            paths.append(path)
            if len(paths) == n:
                return paths
    raise SystemExit(f"only {len(paths)} distinct textured tiles in {len(photos)} photos; "
                     f"asked for {n}")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A live process's peak resident memory (``VmHWM``) in MB. Not ``ru_maxrss``: a child
    forked from a large process starts with its parent's."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


class PeakMemory(threading.Thread):
    """Polls the peak RSS of a process and of its descendants (a pool's workers), and the
    process's CPU time, every 0.1 s until :meth:`result` (the last 0.1 s is missed)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peaks, self.cpu, self.done = pid, {}, 0.0, threading.Event()
        self.start()

    def run(self) -> None:
        import psutil

        while not self.done.wait(0.1):
            try:
                top = psutil.Process(self.pid)
                tree = [top, *top.children(recursive=True)]
                times = top.cpu_times()
                self.cpu = times.user + times.system
            except psutil.Error:
                return
            for process in tree:
                try:  # max: an ended process not yet reaped shows no memory at all
                    self.peaks[process.pid] = max(self.peaks.get(process.pid, 0.0),
                                                  peak_rss_mb(process.pid))
                except OSError:
                    pass  # it ended in between

    def result(self) -> dict:
        """``{"process_mb": the process's own peak, "largest_descendant_mb": its largest
        descendant's, "descendants": how many were seen, "process_cpu_s": its CPU time}``."""
        self.done.set()
        self.join()
        others = [mb for pid, mb in self.peaks.items() if pid != self.pid]
        return {"process_mb": self.peaks.get(self.pid), "largest_descendant_mb":
                max(others, default=None), "descendants": len(others),
                "process_cpu_s": round(self.cpu, 2)}


def run_cli(args: list[str], on_frame=None) -> dict:
    """Run ``picorigin ARGS`` with stderr on a pseudo-terminal, so the bar draws as a user sees
    it (``tests/helpers.run_on_a_terminal``), its peak memory watched (:class:`PeakMemory`).

    Returns the exit status, stdout, the frames (done, total), stderr's other text and the
    peak RSS.
    """
    watch: list[PeakMemory] = []
    status, out, frames, other = run_on_a_terminal(
        [*CLI, *args], on_frame=on_frame, on_start=lambda child: watch.append(
            PeakMemory(child.pid)))
    return {"returncode": status, "stdout": out, "frames": frames, "other_stderr": other,
            "peak_rss": watch[0].result()}


def check_bar(run: dict, n: int, *, skipped: int = 0) -> list[str]:
    """What is wrong with one ``index`` run's bar and summary (empty when nothing)."""
    problems = []
    done = [d for d, _ in run["frames"]]
    if not done or done[0] != skipped or done[-1] != n:
        problems.append(f"bar drew {done[:1]}..{done[-1:]}, not {skipped}..{n}")
    if any(b < a for a, b in zip(done, done[1:])):
        problems.append("the bar went backwards")
    if any(total != n for _, total in run["frames"]):
        problems.append("the bar's total changed")
    if run["other_stderr"]:
        problems.append(f"stderr besides the bar: {run['other_stderr'][:300]!r}")
    if run["returncode"] != 0:
        problems.append(f"exit status {run['returncode']}")
    summary = SUMMARY.search(run["stdout"])
    expected = (n - skipped, skipped, 0)
    if summary is None or tuple(int(x) for x in summary.groups()[:3]) != expected:
        problems.append(f"summary {run['stdout'].strip()!r}, expected indexed/skipped/failed"
                        f" {expected}")
    return problems


def check_catalog(db: Path, paths: list[Path]) -> tuple[dict, dict[str, dict[str, bytes]]]:
    """Counts of images, locations and each stage's signal rows; and, per stage, each
    content's (SHA-256) signal bytes."""
    from picorigin import Engine

    with Engine(db) as engine:
        catalog = engine._catalog
        ids = catalog.all_ids()
        counts = catalog.counts()
        sha = {i: record["sha256"] for i, record in catalog.images(ids).items()}
        uris = {loc["uri"] for record in catalog.images(ids).values()
                for loc in record["locations"]}
        facts = {"images": counts["images"], "locations": counts["locations"],
                 "uris_match_files": uris == {str(p.resolve()) for p in paths},
                 "missing_signals": {k: len(v) for k, v in engine.missing_signals().items()},
                 "signal_rows": {}}
        signals = {}
        for name in ["fingerprint", *engine.stages]:
            facts["signal_rows"][name] = catalog.count_signals(name)
            signals[name] = {sha[i]: data for i, data in catalog.signals(name, ids).items()}
    return facts, signals


def search_all(db: Path, paths: list[Path], *, fast: bool) -> dict:
    """``search [--fast] --json`` of every path in one process: is each file its own first
    match, as ``exact``, and how many other copies were found."""
    command = [*CLI, "search", "--json", "--db", str(db), *(["--fast"] if fast else []),
               *map(str, paths)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    results = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    own = other = 0
    for path, result in zip(paths, results):
        matches = result.get("matches", [])
        if matches and matches[0]["kind"] == "exact" and matches[0]["uri"] == str(path.resolve()):
            own += 1
        other += sum(m["kind"] in ("exact", "near_duplicate", "partial") for m in matches[1:])
    return {"searched": len(paths), "answered": len(results), "returncode": done.returncode,
            "found_itself_exact_first": own, "other_copies": other,
            "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--kill-at", type=float, default=0.33,
                        help="fraction of the bar at which one worker is killed")
    args = parser.parse_args(argv)
    import distributed

    problems: list[str] = []
    out: dict = {"meta": {"images": args.images, "cpu_count": os.cpu_count(),
                          "load_average_before": os.getloadavg()[0],
                          "distributed": distributed.__version__}}
    with tempfile.TemporaryDirectory(prefix="picorigin-dask-bar-") as tmp:
        tmp = Path(tmp)
        paths = photo_tiles(tmp / "photos", args.images)
        n = len(paths)
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None,
                                      silence_logs=50) as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            kill: dict = {}

            def on_frame(done: int, total: int) -> None:
                if kill or done < args.kill_at * total:
                    return
                processing = client.processing()
                address = max(processing, key=lambda a: len(processing[a]))
                pid = client.run(os.getpid, workers=[address])[address]
                os.kill(pid, signal.SIGKILL)
                kill.update(at=done, address=address, pid=pid,
                            tasks_running_there=len(processing[address]))

            before = set(client.run(os.getpid).values())
            first = run_cli(["index", str(tmp / "photos"), "--db", str(tmp / "dask"),
                             "--dask", cluster.scheduler_address], on_frame)
            client.wait_for_workers(2, timeout=120)
            workers_peak_rss_mb = sorted(client.run(peak_rss_mb).values())
            after = set(client.run(os.getpid).values())
            kill["worker_replaced"] = kill.get("pid") in before and kill.get("pid") not in after
            second = run_cli(["index", str(tmp / "photos"), "--db", str(tmp / "dask"),
                              "--dask", cluster.scheduler_address])
        if not kill:
            problems.append("no worker was killed: the run proves nothing about a dying worker")
        problems += [f"first --dask run: {p}" for p in check_bar(first, n)]
        problems += [f"second --dask run: {p}" for p in check_bar(second, n, skipped=n)]
        facts, dask_signals = check_catalog(tmp / "dask", paths)
        if (facts["images"], facts["locations"]) != (n, n) or not facts["uris_match_files"]:
            problems.append(f"catalog: {facts}")
        if facts["missing_signals"] or set(facts["signal_rows"].values()) != {n}:
            problems.append(f"signal rows: {facts['signal_rows']}, missing "
                            f"{facts['missing_signals']}")
        fast = search_all(tmp / "dask", paths, fast=True)
        every = search_all(tmp / "dask", paths[::max(1, n // SAMPLE)][:SAMPLE], fast=False)
        for name, row in (("search --fast", fast), ("search (every stage)", every)):
            if row["found_itself_exact_first"] != row["searched"] or row["returncode"]:
                problems.append(f"{name}: {row}")

        local = run_cli(["index", str(tmp / "photos"), "--db", str(tmp / "local")])
        problems += [f"local run: {p}" for p in check_bar(local, n)]
        local_facts, local_signals = check_catalog(tmp / "local", paths)
        same = {name: sum(local_signals[name].get(k) == v for k, v in rows.items())
                for name, rows in dask_signals.items()}
        if set(same.values()) != {n}:
            problems.append(f"signal rows identical to the local run's: {same} of {n}")

    def summary(run: dict) -> dict:
        found = SUMMARY.search(run["stdout"])
        return {"summary": run["stdout"].strip(), "frames": len(run["frames"]),
                "seconds": float(found[4]) if found else None,
                "images_per_s": float(found[5]) if found else None,
                "other_stderr": run["other_stderr"], "peak_rss": run["peak_rss"]}

    out.update({
        "kill": kill, "dask_workers_peak_rss_mb": workers_peak_rss_mb,
        "first_dask_run": summary(first), "second_dask_run": summary(second),
        "local_run": summary(local), "catalog": facts, "local_catalog": local_facts,
        "search_fast": fast, "search_every_stage": every,
        "signal_rows_identical_to_local": same, "problems": problems, "passed": not problems,
    })
    out["meta"]["load_average_after"] = os.getloadavg()[0]
    print(f"Dask bar, {n} distinct photos, 2-worker LocalCluster (127.0.0.1, processes):")
    print(f"  first run:  {first['stdout'].strip()}")
    print(f"    worker {kill.get('pid')} killed (SIGKILL) at {kill.get('at')}/{n} with "
          f"{kill.get('tasks_running_there')} batches running; replaced by the nanny: "
          f"{kill.get('worker_replaced')}")
    print(f"    peak RSS: index process {first['peak_rss']['process_mb']} MB, workers "
          f"{workers_peak_rss_mb} MB (the replacement's since it started); the index process "
          f"used {first['peak_rss']['process_cpu_s']} s of CPU (start-up included)")
    print(f"  catalog: {facts['images']} images, {facts['locations']} locations, signal rows "
          f"{facts['signal_rows']}")
    print(f"  second run: {second['stdout'].strip()}")
    print(f"  search --fast: {fast['found_itself_exact_first']} of {fast['searched']} found "
          f"themselves exact first, {fast['other_copies']} other copies, {fast['seconds']} s")
    print(f"  search, every stage: {every['found_itself_exact_first']} of {every['searched']}, "
          f"{every['other_copies']} other copies, {every['seconds']} s")
    print(f"  local pool:  {local['stdout'].strip()}; signal rows identical: {same}")
    print(f"    peak RSS: index process {local['peak_rss']['process_mb']} MB, largest pool "
          f"process {local['peak_rss']['largest_descendant_mb']} MB")
    print("  PASSED" if not problems else "  FAILED:\n    " + "\n    ".join(problems))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "dask_bar.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
