"""check, repair, backup and restore: a data folder kept sound while in use."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import PHOTOS, jpeg_bytes, photo

from picorigin import Engine

CLI = [sys.executable, "-m", "picorigin"]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=240)


def test_check_finds_a_damaged_checkpoint_and_repair_mends_it(tmp_path, photo_dir):
    db = tmp_path / "db"
    with Engine(db) as engine:
        engine.index([photo_dir], workers=1)
        engine.search(photo_dir / "rocket.jpg")  # loads every index, so close checkpoints them
    done = _cli("check", "--db", str(db), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"]
    for checkpoint in (db / "indexes").glob("local-*.ckpt"):
        checkpoint.write_bytes(b"damaged")
    done = _cli("check", "--db", str(db), "--json")
    findings = json.loads(done.stdout)
    assert done.returncode == 1 and not findings["ok"]
    local = next(i for i in findings["indexes"] if i["signal"] == "local")
    assert not local["checkpoint_usable"]
    assert _cli("repair", "--db", str(db)).returncode == 0
    assert _cli("check", "--db", str(db)).returncode == 0


def test_check_counts_images_a_stage_lacks(tmp_path, photo_dir):
    db = tmp_path / "db"
    with Engine(db, settings={"stages": "local"}) as engine:
        engine.index([photo_dir], workers=1)
    with Engine(db) as engine:  # the deep stage enabled later
        findings = engine.check()
        assert not findings["ok"] and findings["missing_signals"] == {"deep": len(PHOTOS)}
        engine.repair()
        assert engine.check()["ok"]


def test_a_backup_taken_while_writing_restores_everything_committed(tmp_path, photo_dir):
    db, copy = tmp_path / "db", tmp_path / "backup"
    with Engine(db) as engine:
        engine.index([photo_dir], workers=1)
        writer = subprocess.Popen([*CLI, "index", "--db", str(db), "-w", "1", str(photo_dir)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        engine.backup(copy)
        writer.wait(timeout=240)
        engine.add(jpeg_bytes(photo("camera")), uri="/after-the-backup.jpg")
    restored = tmp_path / "restored"
    done = _cli("restore", str(copy), "--db", str(restored))
    assert done.returncode == 0, done.stderr
    assert _cli("restore", str(copy), "--db", str(restored)).returncode == 1  # not over one
    with Engine(restored) as engine:
        assert engine.stats()["images"] == len(PHOTOS)
        assert engine.search(photo_dir / "coffee.jpg").matches[0].kind == "exact"
        crop = jpeg_bytes(photo("rocket").crop((100, 50, 400, 300)))
        assert engine.search(crop).matches[0].kind == "partial"
        assert engine.check()["ok"]
