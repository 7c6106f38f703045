"""A data folder written before the one store (schema 1: fingerprints in an images column,
local.sqlite and deep.sqlite beside the catalog) opens with everything findable."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
from helpers import jpeg_bytes, photo

from picorigin import Engine
from picorigin._features import fingerprint
from picorigin._imaging import decode
from picorigin._stages.deep import DeepStage
from picorigin._stages.local import LocalStage


def _schema_1_folder(folder, data: bytes) -> None:
    decoded = decode(data, working_side=640)
    code = fingerprint.compute(decoded.image)
    size = (decoded.width, decoded.height)
    catalog = sqlite3.connect(folder / "catalog.sqlite")
    catalog.executescript("""
        CREATE TABLE images (id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
            pixel_sha256 TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
            format TEXT NOT NULL, byte_size INTEGER NOT NULL, fingerprint BLOB NOT NULL,
            orientation INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
            signals TEXT NOT NULL DEFAULT '{}', added_at TEXT NOT NULL);
        CREATE TABLE locations (id INTEGER PRIMARY KEY, image_id INTEGER NOT NULL
            REFERENCES images (id) ON DELETE CASCADE, uri TEXT NOT NULL,
            page_url TEXT NOT NULL DEFAULT '', page_title TEXT, alt TEXT, caption TEXT,
            author TEXT, author_source TEXT, license TEXT, published TEXT, file_size INTEGER,
            file_mtime REAL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, removed_at TEXT,
            UNIQUE (uri, page_url));
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('epoch', '1'), ('schema', '1');
    """)
    catalog.execute(
        "INSERT INTO images VALUES (1, 'old-sha', 'old-pixels', ?, ?, 'JPEG', ?, ?, ?, '{}',"
        " '{}', '2020-01-01')",
        (*size, len(data), code.code.tobytes(), fingerprint.ORIENTATIONS.index(code.orientation)))
    catalog.execute("INSERT INTO locations (image_id, uri, first_seen, last_seen)"
                    " VALUES (1, '/old/chelsea.jpg', '2020-01-01', '2020-01-01')")
    catalog.commit()
    catalog.close()
    features = LocalStage.compute(decoded.image, size)
    local = sqlite3.connect(folder / "local.sqlite")
    local.execute("CREATE TABLE features (id INTEGER PRIMARY KEY, width INTEGER, height INTEGER,"
                  " points BLOB, descriptors BLOB, words BLOB)")
    local.execute("INSERT INTO features VALUES (1, ?, ?, ?, ?, x'')",
                  (*size, features.points.astype(np.float32).tobytes(),
                   features.descriptors.tobytes()))
    local.commit()
    local.close()
    signal = DeepStage.compute(decoded.image)
    deep = sqlite3.connect(folder / "deep.sqlite")
    deep.execute("CREATE TABLE signals (id INTEGER PRIMARY KEY, embedding BLOB, labels TEXT,"
                 " palette BLOB)")
    deep.execute("INSERT INTO signals VALUES (1, ?, ?, ?)",
                 (np.asarray(signal.embedding, np.float32).tobytes(),
                  json.dumps([[c, p] for c, p in signal.labels]),
                  np.asarray(signal.palette, np.float32).tobytes()))
    deep.commit()
    deep.close()


def test_a_schema_1_folder_is_upgraded_and_every_signal_found(tmp_path):
    cat = photo("chelsea").resize((900, 600))
    _schema_1_folder(tmp_path, jpeg_bytes(cat, 92))
    with Engine(tmp_path) as engine:
        assert engine.missing_signals() == {}
        assert not (tmp_path / "local.sqlite").exists()
        assert (tmp_path / "local.sqlite.imported").exists()
        near = engine.search(jpeg_bytes(cat.resize((450, 300)), 70)).matches[0]
        assert (near.id, near.kind) == (1, "near_duplicate")
        crop = engine.search(jpeg_bytes(cat.crop((150, 50, 600, 450)))).matches[0]
        assert (crop.id, crop.kind) == (1, "partial")
        assert engine.search(jpeg_bytes(cat), label="cat").matches[0].id == 1
