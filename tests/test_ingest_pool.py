"""The worker pool of ``index``: nothing of it outlives a killed ``index``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import distinct_pictures


def _session_members(session: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # field 6 of stat: the session id
                members.append(int(entry.name))
    return members


def test_no_process_of_a_killed_index_remains(tmp_path):
    distinct_pictures(tmp_path / "many", [f"p{i:02d}" for i in range(60)], seed=9)
    process = subprocess.Popen(
        [sys.executable, "-m", "picorigin", "index", str(tmp_path / "many"),
         "--db", str(tmp_path / "db"), "-w", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while len(_session_members(process.pid)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)  # the CLI, the forkserver and two workers at least
    assert len(_session_members(process.pid)) >= 4, "the pool never started"
    os.kill(process.pid, signal.SIGKILL)  # the CLI alone: its pool is left to notice
    process.wait()
    deadline = time.monotonic() + 5
    while _session_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _session_members(process.pid) == []
