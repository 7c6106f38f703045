"""The CLI's rough edges: --db and -s before or after the command, one-line errors (exit 2) for
a blank --api-key or a data folder that cannot be made, and unlistable folders reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from picorigin import _imaging
from picorigin._cli import cli


@pytest.fixture
def run(monkeypatch, tmp_path):
    monkeypatch.delenv("PICORIGIN_DB", raising=False)
    monkeypatch.chdir(tmp_path)  # the default data folder, if one were made, lands here
    runner = CliRunner()
    return lambda *args: runner.invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("where", ["before", "after"])
def test_db_and_settings_before_or_after_the_command(run, tmp_path, photo_dir, where):
    db = tmp_path / "db"
    options = ["--db", db, "-s", "stages=", "-s", "thumbnail_side=0"]
    args = [*options, "index", photo_dir / "rocket.jpg"] if where == "before" else \
        ["index", photo_dir / "rocket.jpg", *options]
    result = run(*args)
    assert result.exit_code == 0, result.output
    stats = json.loads(run(*(["--db", db, "stats", "--json"] if where == "before" else
                             ["stats", "--json", "--db", db])).output)
    assert stats["images"] == 1 and stats["data_folder"] == str(db)
    assert not (tmp_path / "picorigin-data").exists()


def test_settings_after_the_command_win(run, tmp_path, photo_dir):
    db = tmp_path / "db"
    result = run("-s", "stages=local", "--db", db, "index", photo_dir / "rocket.jpg",
                 "-s", "stages=")
    assert result.exit_code == 0, result.output
    assert json.loads(run("--db", db, "-s", "stages=", "stats", "--json").output)["stages"] == {}


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


def test_blank_api_key(run, tmp_path):
    one_line_error(run("serve", "--db", tmp_path / "db", "--api-key", " "), "--api-key", "blank")
    one_line_error(run("--db", tmp_path / "db", "serve", "--allowed-host", "http://x/"),
                   "allowed host")


@pytest.mark.parametrize("make", ["file", "under_a_file", "proc"])
def test_a_data_folder_that_cannot_be_made(run, tmp_path, make):
    (tmp_path / "plain").write_text("not a folder")
    db = {"file": tmp_path / "plain", "under_a_file": tmp_path / "plain" / "db",
          "proc": "/proc/picorigin-no-such"}[make]
    for args in (["--db", db, "stats"], ["stats", "--db", db], ["index", tmp_path, "--db", db]):
        one_line_error(run(*args), "--db", str(db))


def test_the_real_command_prints_no_traceback(tmp_path):
    (tmp_path / "plain").write_text("x")
    root = os.path.dirname(os.path.dirname(_imaging.__file__))
    done = subprocess.run([sys.executable, "-m", "picorigin", "--db", str(tmp_path / "plain" / "d"),
                           "serve"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and done.stderr.startswith("Error: --db")


def test_an_unlistable_subfolder_is_a_failure(run, tmp_path, photo_dir, monkeypatch):
    tree = tmp_path / "tree"
    (tree / "locked").mkdir(parents=True)
    (tree / "open").mkdir()
    shutil.copy(photo_dir / "rocket.jpg", tree / "open" / "rocket.jpg")
    shutil.copy(photo_dir / "coffee.jpg", tree / "locked" / "coffee.jpg")
    locked = tree / "locked"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):  # root lists anything: make the OS refuse as it would
            real = os.scandir

            def refuse(path="."):
                if os.fspath(path) == str(locked):
                    raise PermissionError(13, "Permission denied", str(locked))
                return real(path)

            monkeypatch.setattr(os, "scandir", refuse)
        assert list(_imaging.expand_sources([tree])) == [str(locked),
                                                         str(tree / "open" / "rocket.jpg")]
        result = run("index", tree, "--db", tmp_path / "db", "-w", "1", "-s", "stages=")
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 1, result.output
    assert f"failed: {locked}: " in result.output
    assert "cannot list this folder: Permission denied" in result.output
    assert "indexed 1, skipped 0, failed 1" in result.output


def test_an_unreadable_list_file_is_a_failure(run, tmp_path, monkeypatch):
    listing = tmp_path / "list.txt"
    listing.write_text("a.jpg\n")

    def refuse(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_imaging, "_read_list", refuse)
    assert list(_imaging.expand_sources([listing])) == [str(listing)]
