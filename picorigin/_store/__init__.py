"""Where signals live: the catalog (the truth) and each signal's derived, checkpointed index."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .._errors import SettingError
from .catalog import Catalog, Checkpoint, NewImage, now
from .memory import MemoryCatalog
from .signal_store import DerivedIndex, SignalStore
from .sqlite import SQLiteCatalog

__all__ = ["Catalog", "Checkpoint", "DerivedIndex", "MemoryCatalog", "NewImage", "SQLiteCatalog",
           "SignalStore", "catalog_locator", "now", "open_catalog", "open_catalog_at"]

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
