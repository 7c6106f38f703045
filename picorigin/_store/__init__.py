"""Where signals live: the catalog (the truth) and each signal's derived index: checkpointed in
every process (the default), or one every process shares (setting ``index``: Milvus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .._errors import SettingError
from .catalog import Catalog, Checkpoint, NewImage, now
from .memory import MemoryCatalog
from .shared_store import SharedStore
from .signal_store import DerivedIndex, SignalStore
from .sqlite import SQLiteCatalog

__all__ = ["Catalog", "Checkpoint", "DerivedIndex", "MemoryCatalog", "NewImage", "SQLiteCatalog",
           "SharedStore", "SignalStore", "catalog_locator", "now", "open_catalog",
           "open_catalog_at", "open_signal_store"]

_POSTGRES = ("postgresql://", "postgres://")


def open_catalog(settings: Mapping[str, Any], folder: Path) -> Catalog:
    """The catalog the setting ``catalog`` names: empty for ``catalog.sqlite`` in ``folder``,
    ``postgresql://...`` for PostgreSQL.

    Raises
    ------
    SettingError
        An unknown kind of catalog, a missing extra, or a server that cannot be reached.
    """
    target = str(settings["catalog"] or "").strip()
    return open_catalog_at(target or str(Path(folder) / "catalog.sqlite"))


def open_catalog_at(locator: str, **options: Any) -> Catalog:
    """Open a catalog from :func:`catalog_locator`'s string (worker processes use this)."""
    if locator.startswith(_POSTGRES):
        from .postgres import PostgresCatalog

        return PostgresCatalog(locator, **options)
    if "://" in locator:
        raise SettingError(f"setting 'catalog': {locator.split('://', 1)[0]}:// is not a kind "
                           "of catalog picorigin knows; use postgresql://user@host/db, or leave "
                           "it empty for the SQLite file in the data folder")
    return SQLiteCatalog(Path(locator))


def catalog_locator(catalog: Catalog) -> str | None:
    """A string another process can open the same catalog from (None for one in memory)."""
    dsn = getattr(catalog, "dsn", None)
    if dsn:
        return str(dsn)
    path = getattr(catalog, "path", None)
    return str(path) if path is not None else None


def open_signal_store(catalog: Catalog, folder: Path, keeper: Any,
                      settings: Mapping[str, Any]) -> SignalStore | SharedStore:
    """The store of ``keeper``'s signal that the setting ``index`` names: empty for an index in
    this process, checkpointed under ``folder/indexes``; ``milvus://`` or ``milvus-lite://`` for
    a Milvus collection every process shares.

    Raises
    ------
    SettingError
        An unknown kind of index, a bad index type, a missing extra, or a Milvus that cannot
        be reached.
    """
    from .._index import milvus

    folder = Path(folder)
    seconds = float(settings["checkpoint_seconds"])
    target = milvus.parse_target(settings["index"], folder)
    if target is None:
        return SignalStore(catalog, folder / "indexes", keeper, checkpoint_seconds=seconds)
    for name in ("milvus_binary_index", "milvus_dense_index"):  # refused here, not at a search
        milvus.parse_index_spec(settings[name], name, lite=target.lite)
    return SharedStore(catalog, folder / "indexes", keeper, milvus.connect(target),
                       checkpoint_seconds=seconds)
