"""Where signals live: the catalog (the truth) and each signal's derived, checkpointed index."""

from .catalog import Catalog, Checkpoint, NewImage, now
from .memory import MemoryCatalog
from .signal_store import DerivedIndex, SignalStore
from .sqlite import SQLiteCatalog

__all__ = ["Catalog", "Checkpoint", "DerivedIndex", "MemoryCatalog", "NewImage", "SQLiteCatalog",
           "SignalStore", "now"]
