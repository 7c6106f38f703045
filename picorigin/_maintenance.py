"""Keeping a data folder sound: check, repair, backup and restore.

``check`` asks the catalog database whether it is sound, and loads each signal's recorded
checkpoint afresh (as a new process would), catches it up from the change log and compares it,
id for id, with the catalog's rows; it also counts images a stage holds no signal for.
``repair`` rebuilds every index from the rows, records fresh checkpoints and computes the
missing signals. ``backup`` takes a consistent snapshot of the catalog while other processes
keep reading and writing (SQLite's online backup); the indexes are derived, so a restored folder
rebuilds them on first use.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import PicoriginError

if TYPE_CHECKING:  # pragma: no cover
    from ._engine import Engine

__all__ = ["backup", "check", "repair", "restore"]

_CATALOG = "catalog.sqlite"
_KEPT_FILES = ("local_vocabulary.npz",)  # trained on this collection: not derivable cheaply


def check(engine: "Engine") -> dict[str, Any]:
    """Whether every index agrees with the catalog; see the module docstring."""
    problems = engine._catalog.integrity()
    indexes = [stage.store.check() for stage in engine._stages.values()]
    missing = {name: len(ids) for name, ids in engine.missing_signals().items()}
    return {"ok": not problems and all(i["ok"] for i in indexes) and not missing,
            "database": problems or ["ok"], "indexes": indexes, "missing_signals": missing}


def repair(engine: "Engine") -> dict[str, Any]:
    """Rebuild every index from the catalog's rows, then compute missing signals."""
    for stage in engine._stages.values():
        stage.store.rebuild()
    report = engine.reindex()
    return {"rebuilt": list(engine._stages), "reindexed": report.to_dict(),
            "check": check(engine)}


def backup(engine: "Engine", destination: str | Path) -> Path:
    """Write a restorable copy of the data folder to ``destination`` (a new or empty folder)."""
    destination = Path(destination)
    if destination.exists() and any(destination.iterdir()):
        raise PicoriginError(f"{destination} is not empty: back up into a new folder")
    destination.mkdir(parents=True, exist_ok=True)
    engine._catalog.backup(destination / _CATALOG)
    for name in _KEPT_FILES:
        if (engine.path / name).exists():
            shutil.copy2(engine.path / name, destination / name)
    return destination


def restore(source: str | Path, destination: str | Path, *, force: bool = False) -> Path:
    """Copy a backup into the data folder ``destination`` (refused over an existing catalog
    unless ``force``; no process may be using it then)."""
    source, destination = Path(source), Path(destination)
    if not (source / _CATALOG).is_file():
        raise PicoriginError(f"{source} holds no backup ({_CATALOG} missing)")
    if (destination / _CATALOG).exists() and not force:
        raise PicoriginError(f"{destination} already holds a catalog; restore with --force "
                             "to replace it (stop every process using it first)")
    destination.mkdir(parents=True, exist_ok=True)
    for stale in [destination / f"{_CATALOG}-wal", destination / f"{_CATALOG}-shm",
                  *(destination / "indexes").glob("*.ckpt")]:
        stale.unlink(missing_ok=True)
    for name in (_CATALOG, *_KEPT_FILES):
        if (source / name).exists():
            shutil.copy2(source / name, destination / name)
    return destination
