"""What one image costs to keep: bytes per image of each signal in the SQLite and the
PostgreSQL catalog, of each stage's derived index in RAM and in its checkpoint file, and the
peak memory of the processes that index and search. The README's sizing at 1 M / 100 M / 1 B
images multiplies these.

``python -m bench.sizing [--images 300] [--dsn postgresql://...]``

The same distinct photos as the Dask bar (:func:`bench.dask_bar.photo_tiles`) are indexed with
every stage by ``picorigin index`` (the local pool) into a data folder with the SQLite catalog
and into one whose catalog is PostgreSQL (a server started for the run with Debian's
``postgresql``, as the tests do, or ``--dsn``: give an empty database). Then, per catalog:

- per signal (fingerprint, local, deep): rows; ``payload`` = the stored bytes themselves
  (SQLite ``length(data)``, PostgreSQL ``pg_column_size(data)``, compressed as stored); its
  ``signal_terms`` rows (the deep stage's labels, searched by term); and ``stored`` = the pages
  its rows take with their B-tree indexes, measured by copying that signal's rows alone into
  tables of the same schema: SQLite's ``dbstat``, PostgreSQL's main forks of table, TOAST
  and indexes after ``VACUUM ANALYZE`` (the free-space and visibility maps left out: a fixed
  ~32 KB a table that only small tables show);
- the rest per image, the same way: images, locations, thumbnails, the change log (what is
  left of it: it is pruned below the checkpoints); of each, the part that is secondary B-tree
  indexes (what PostgreSQL should keep cached); the sum without the change log; and the
  whole catalog as it is at this size (the SQLite file after a WAL checkpoint;
  ``pg_database_size`` less an empty database's).

The local stage's keypoints and distinct visual words per image, and the time to quantise
one image's descriptors into words (what the committing ``index`` process does per image).
From the SQLite data folder: each stage's derived index in RAM (``picorigin stats``) and its
checkpoint file; the peak RSS of ``index`` and of a ``search`` with every stage (process
start, models and indexes loaded: a ``serve`` replica's fixed cost at this size).

Writes ``bench/results/sizing.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.dask_bar import CLI, RESULTS, PeakMemory, photo_tiles
from bench.scale_out import postgres_database

SIGNALS = ("fingerprint", "local", "deep")


def _run(args: list[str], env: dict | None = None) -> tuple[str, dict]:
    """Run ``picorigin ARGS``; its stdout and its peak RSS (:class:`PeakMemory`)."""
    child = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, **(env or {})})
    memory = PeakMemory(child.pid)
    out = child.stdout.read()
    if child.wait():
        raise SystemExit(f"picorigin {' '.join(args[:2])} failed ({child.returncode}): {out}")
    return out, memory.result()


# Rows are copied until a table holds about this many (or bytes), so the last, part-filled
# page of each B-tree weighs nothing per row.
TARGET_ROWS, TARGET_BYTES = 50_000, 16_000_000
TABLES = ("images", "locations", "thumbnails", "changes")


def _copies(rows: int, size: int) -> int:
    return max(1, min(TARGET_ROWS // max(rows, 1), TARGET_BYTES // max(size, 1)))


def _copy_rows(db, dialect: str, table: str, columns: list[str], where: str, args: tuple,
               copies: int, shift: int, target: str) -> None:
    """Insert ``copies`` copies of ``table``'s rows matching ``where`` into ``target``: ids
    shifted by multiples of ``shift``, the unique text columns given a different tail of the
    same length (their size is what is measured, not their value)."""
    def expression(column: str) -> str:
        if column in ("id", "image_id", "seq"):
            return f"{column} + k.j * {shift}"
        if column in ("sha256", "pixel_sha256", "uri"):
            return (f"substr({column}, 1, length({column}) - 8) || printf('%08d', k.j)"
                    if dialect == "sqlite" else f"left({column}, -8) || lpad(k.j::text, 8, '0')")
        return column

    db.execute(f"WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k"
               f" WHERE j < {copies - 1}) INSERT INTO {target}"
               f" SELECT {', '.join(map(expression, columns))} FROM {table}, k WHERE {where}",
               args)


def sqlite_sizes(path: Path, n: int) -> dict:
    """Bytes per image in the SQLite catalog file ``path`` (see the module docstring)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shift = 1 + max(db.execute("SELECT MAX(id) FROM images").fetchone()[0],
                    db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])

    def alone(parts: list[tuple[str, str, tuple]]) -> tuple[float, float, int]:
        """Copy each (table, where, args)'s rows alone into a database of the same schema,
        enough times; its pages per copy, those of its secondary indexes, and the rows of
        the first part."""
        with tempfile.TemporaryDirectory() as scratch:
            db.execute("ATTACH ? AS alone", (str(Path(scratch) / "alone.sqlite"),))
            size = btree = rows = 0
            for table, where, args in parts:
                for (sql,) in db.execute("SELECT sql FROM sqlite_schema WHERE tbl_name = ? AND"
                                         " sql IS NOT NULL ORDER BY type DESC", (table,)):
                    db.execute(re.sub(r"^(CREATE (?:TABLE|INDEX) (?:IF NOT EXISTS )?)",
                                      r"\1alone.", sql))
                found = db.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}",
                                   args).fetchone()[0]
                rows = rows or found
                copies = _copies(found, _row_bytes(db, table) * found)
                columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
                _copy_rows(db, "sqlite", table, columns, where, args, copies, shift,
                           f"alone.{table}")
                db.commit()
                for kind in ("table", "index"):
                    pages = db.execute(
                        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat('alone') WHERE name IN"
                        " (SELECT name FROM alone.sqlite_schema WHERE tbl_name = ? AND"
                        " type = ?)", (table, kind)).fetchone()[0] / copies
                    size += pages
                    btree += pages if kind == "index" else 0
            db.execute("DETACH alone")
        return size, btree, rows

    signals = {}
    for name in SIGNALS:
        size, btree, rows = alone([("signal_data", "name = ?", (name,)),
                                   ("signal_terms", "name = ?", (name,))])
        payload = db.execute("SELECT SUM(LENGTH(data)) FROM signal_data WHERE name = ?",
                             (name,)).fetchone()[0]
        terms = db.execute("SELECT COUNT(*) FROM signal_terms WHERE name = ?",
                           (name,)).fetchone()[0]
        signals[name] = {"rows": rows, "payload_per_image": round(payload / n),
                         "terms_per_image": round(terms / n, 1),
                         "stored_per_image": round(size / n),
                         "indexes_per_image": round(btree / n)}
    out = {"signals": signals, **_local_words(db), "tables": {}}
    for table in TABLES:
        size, btree, _ = alone([(table, "1 = 1", ())])
        out["tables"][table] = {"stored_per_image": round(size / n),
                                "indexes_per_image": round(btree / n)}
    out["change_log_rows"] = db.execute("SELECT COUNT(*) FROM changes").fetchone()[0]
    db.close()
    out["catalog_file_per_image"] = round(path.stat().st_size / n)
    return out


def _local_words(db) -> dict:
    """Keypoints and distinct visual words per image, read from the local stage's rows (its
    layout: header, points, descriptors, one uint32 word per keypoint): what an inverted
    index or a sparse vector holds per image."""
    from picorigin._index.inverted import Vocabulary
    from picorigin._stages.local import _HEADER, default_vocabulary_path

    vocabulary = Vocabulary.load(default_vocabulary_path())
    keypoints, distinct, quantize = [], [], []
    for (data,) in db.execute("SELECT data FROM signal_data WHERE name = 'local'"):
        count = _HEADER.unpack_from(data)[0]
        descriptors = np.frombuffer(data, np.uint8, 32 * count, _HEADER.size + 8 * count)
        words = np.frombuffer(data, np.uint32, count, _HEADER.size + 40 * count)
        keypoints.append(count)
        distinct.append(len(np.unique(words)))
        started = time.perf_counter()
        # What the committing process does for each image (the stage's encode).
        vocabulary.quantize(descriptors.reshape(count, 32))
        quantize.append(1000 * (time.perf_counter() - started))
    return {"local_keypoints_per_image": round(float(np.mean(keypoints)), 1),
            "local_distinct_words_per_image": round(float(np.mean(distinct)), 1),
            "local_quantize_ms_median": round(float(np.median(quantize)), 2)}


def _row_bytes(db, table: str) -> int:
    """Bytes a row of ``table`` takes on average, from its pages (an estimate for sizing the
    copies)."""
    pages = db.execute("SELECT SUM(pgsize) FROM dbstat WHERE name = ?", (table,)).fetchone()[0]
    rows = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return (pages or 0) // max(rows, 1)


# The main fork of a table, of its TOAST table and of every index on either: its rows' pages,
# without the free-space and visibility maps (a fixed 32 KB or so that only small tables show).
_PG_PAGES = """
SELECT COALESCE(SUM(pg_relation_size(c.oid, 'main')), 0)::bigint FROM pg_class c
WHERE c.oid IN (%(t)s, (SELECT reltoastrelid FROM pg_class WHERE oid = %(t)s))
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid IN
                (%(t)s, (SELECT reltoastrelid FROM pg_class WHERE oid = %(t)s)))
"""


def postgres_sizes(dsn: str, n: int, empty: int) -> dict:
    """Bytes per image in the PostgreSQL catalog at ``dsn``; ``empty``: an empty database's
    size, taken off the whole."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as db:
        def one(query, args=None):
            return db.execute(query, args).fetchone()[0]

        def pages(table: str) -> int:
            return one(_PG_PAGES, {"t": one("SELECT %s::regclass::oid", (table,))})

        shift = 1 + max(one("SELECT MAX(id) FROM images"),
                        one("SELECT COALESCE(MAX(seq), 0) FROM changes"))

        def alone(parts: list[tuple[str, str, tuple]]) -> tuple[float, float, int]:
            size = btree = rows = 0
            for table, where, args in parts:
                found = one(f"SELECT COUNT(*) FROM {table} WHERE {where}", args)
                rows = rows or found
                copies = _copies(found, pages(table) * found // max(one(
                    f"SELECT COUNT(*) FROM {table}"), 1))
                columns = [r[0] for r in db.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " ORDER BY ordinal_position", (table,))]
                db.execute(f"CREATE TABLE alone_{table} (LIKE {table} INCLUDING ALL)")
                _copy_rows(db, "postgresql", table, columns, where, args, copies, shift,
                           f"alone_{table}")
                db.execute(f"VACUUM ANALYZE alone_{table}")
                size += pages(f"alone_{table}") / copies
                btree += one("SELECT pg_indexes_size(%s)", (f"alone_{table}",)) / copies
                db.execute(f"DROP TABLE alone_{table}")
            return size, btree, rows

        signals = {}
        for name in SIGNALS:
            size, btree, rows = alone([("signal_data", "name = %s", (name,)),
                                       ("signal_terms", "name = %s", (name,))])
            signals[name] = {
                "rows": rows,
                "payload_per_image": round(one("SELECT SUM(pg_column_size(data))::bigint FROM"
                                               " signal_data WHERE name = %s", (name,)) / n),
                "terms_per_image": round(one("SELECT COUNT(*) FROM signal_terms WHERE"
                                             " name = %s", (name,)) / n, 1),
                "stored_per_image": round(size / n), "indexes_per_image": round(btree / n)}
        out = {"signals": signals, "tables": {}}
        for table in TABLES:
            size, btree, _ = alone([(table, "true", ())])
            out["tables"][table] = {"stored_per_image": round(size / n),
                                    "indexes_per_image": round(btree / n)}
        out["change_log_rows"] = one("SELECT COUNT(*) FROM changes")
        db.execute("VACUUM ANALYZE")
        out["database_per_image"] = round((one("SELECT pg_database_size(current_database())")
                                           - empty) / n)
    return out


def folder_sizes(folder: Path, n: int) -> dict:
    """Per stage: its derived index's bytes in RAM and its checkpoint file, per image."""
    from picorigin import Engine

    with Engine(folder) as engine:
        engine.checkpoint(force=True)
        stats = engine.stats()
        ram = {"fingerprint": stats["index"]["memory_bytes"],
               "local": stats["stages"]["local"]["bytes_in_ram"],
               "deep": stats["stages"]["deep"]["bytes_in_ram"]}
        files = {}
        for name in SIGNALS:
            recorded = engine._catalog.checkpoint(name)
            path = folder / "indexes" / recorded.file if recorded else None
            files[name] = path.stat().st_size if path and path.exists() else 0
        local = stats["stages"]["local"]
    # The local stage's bytes in RAM include its vocabulary (a fixed cost, not per image).
    ram["local"] = local["bytes_per_image_in_ram"] * n
    return {name: {"ram_per_image": round(ram[name] / n), "checkpoint_per_image":
                   round(files[name] / n)} for name in SIGNALS} | {
        "local_vocabulary_ram": local["bytes_in_ram"] - ram["local"],
        "deep_index": stats["stages"]["deep"]["index"],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--dsn", default=None, help="an empty PostgreSQL database; default: "
                        "start a server for the run")
    args = parser.parse_args(argv)
    with postgres_database(args.dsn) as dsn, \
            tempfile.TemporaryDirectory(prefix="picorigin-sizing-") as tmp:
        import psycopg

        with psycopg.connect(dsn) as db:
            empty = db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        tmp = Path(tmp)
        paths = photo_tiles(tmp / "photos", args.images)
        n = len(paths)
        summary, index_rss = _run(["index", str(tmp / "photos"), "--db", str(tmp / "sqlite")])
        _run(["index", str(tmp / "photos"), "--db", str(tmp / "pg")],
             env={"PICORIGIN_CATALOG": dsn})
        _, search_rss = _run(["search", "--json", "--db", str(tmp / "sqlite"), str(paths[0])])
        out = {
            "meta": {"images": n, "summary": summary.strip()},
            "sqlite": sqlite_sizes(tmp / "sqlite" / "catalog.sqlite", n),
            "postgresql": postgres_sizes(dsn, n, empty),
            "indexes": folder_sizes(tmp / "sqlite", n),
            "peak_rss_mb": {"index_process": index_rss, "search_process": search_rss},
        }
    print(f"bytes per image, {n} distinct photos, every stage ({out['meta']['summary']}):")
    print(f"  {'signal':<12}{'SQLite payload':>15}{'stored':>9}{'PostgreSQL payload':>20}"
          f"{'stored':>9}{'terms':>7}{'RAM':>8}{'checkpoint':>12}")
    for name in SIGNALS:
        lite, pg, index = (out["sqlite"]["signals"][name], out["postgresql"]["signals"][name],
                           out["indexes"][name])
        print(f"  {name:<12}{lite['payload_per_image']:>15}{lite['stored_per_image']:>9}"
              f"{pg['payload_per_image']:>20}{pg['stored_per_image']:>9}"
              f"{lite['terms_per_image']:>7}{index['ram_per_image']:>8}"
              f"{index['checkpoint_per_image']:>12}")
    for table in TABLES:
        lite, pg = out["sqlite"]["tables"][table], out["postgresql"]["tables"][table]
        print(f"  {table:<12}{lite['stored_per_image']:>24}{pg['stored_per_image']:>29}")
    for catalog in ("sqlite", "postgresql"):
        # The change log is left out: it is pruned below the checkpoints.
        parts = [*out[catalog]["signals"].values(),
                 *(v for k, v in out[catalog]["tables"].items() if k != "changes")]
        out[catalog]["sum_per_image"] = sum(p["stored_per_image"] for p in parts)
        out[catalog]["indexes_sum_per_image"] = sum(p["indexes_per_image"] for p in parts)
    print(f"  sum per image: SQLite {out['sqlite']['sum_per_image']} (B-tree indexes "
          f"{out['sqlite']['indexes_sum_per_image']}), PostgreSQL "
          f"{out['postgresql']['sum_per_image']} (B-tree indexes "
          f"{out['postgresql']['indexes_sum_per_image']})")
    print(f"  local stage: {out['sqlite']['local_keypoints_per_image']} keypoints and "
          f"{out['sqlite']['local_distinct_words_per_image']} distinct visual words per image;"
          f" quantising one image's descriptors into words: "
          f"{out['sqlite']['local_quantize_ms_median']} ms (median)")
    print(f"  the whole catalog: SQLite file {out['sqlite']['catalog_file_per_image']},"
          f" PostgreSQL database {out['postgresql']['database_per_image']} (at {n} images,"
          f" change log of {out['sqlite']['change_log_rows']} and"
          f" {out['postgresql']['change_log_rows']} rows)")
    print(f"  peak RSS: index {index_rss['process_mb']} MB (its largest pool process "
          f"{index_rss['largest_descendant_mb']} MB), search with every stage "
          f"{search_rss['process_mb']} MB")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "sizing.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"results written to {path}")
    return out


if __name__ == "__main__":
    main()
