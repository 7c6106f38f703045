"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, ``initdb`` and
``pg_ctl`` in a temporary folder, run as a non-root user, listening only on a unix socket."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path


def binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest installed version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Server:
    """One server for the whole session; :meth:`new_database` gives each test its own."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise FileNotFoundError("initdb")
        self.bin = bin_dir
        self.user = _server_user()
        # Not under pytest's tmp folder: that is private to root, and the server runs as another.
        self.folder = Path(tempfile.mkdtemp(prefix="picorigin-pg-"))
        (self.folder / "data").mkdir()
        if os.geteuid() == 0:
            entry = pwd.getpwnam(self.user)
            for path in (self.folder, self.folder / "data"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._as_user([str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U",
                       "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-N"])
        options = (f"-c listen_addresses='' -c unix_socket_directories={self.folder}"
                   " -c fsync=off -c max_connections=200 -c shared_buffers=32MB")
        self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t",
                       "60", "-o", options, "-l", str(self.folder / "log"), "start"])
        self._names = itertools.count()

    def _as_user(self, command: list[str]) -> None:
        if os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.folder}"

    def new_database(self) -> str:
        """A fresh, empty database; its DSN."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        import psycopg

        name = dsn.split("@/", 1)[1].split("?")[0]
        with psycopg.connect(self.dsn(), autocommit=True) as db:
            db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._as_user([str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m",
                           "immediate", "stop"])
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _server_user() -> str:
    """A non-root account to run the server as (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("no non-root account (postgres or nobody) to run PostgreSQL as")
