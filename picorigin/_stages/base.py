"""What every stage is: a signal computed from an image, stored in the catalog, searched through
an index derived from it.

A stage class has two halves. Its class methods are pure and run anywhere, worker processes and
Dask workers included: ``compute`` (one signature for every stage) and ``compute_batch``. An
instance is bound to a catalog and keeps the signal's derived index in step with it through a
:class:`~picorigin._store.signal_store.SignalStore` (or, with the setting ``index``, a
:class:`~picorigin._store.shared_store.SharedStore` over a Milvus collection); it encodes
signals for the catalog (``encode``, ``terms``), decodes them (``decode``), and answers its own
kind of search.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, ClassVar

from .._settings import Settings
from .._store import Catalog, open_signal_store

__all__ = ["Stage"]


class Stage(abc.ABC):
    """One signal's computation, storage and index.

    Parameters
    ----------
    catalog : Catalog
    folder : Path
        The data folder; the derived index's checkpoints live in its ``indexes/``.
    settings : Settings
    """

    name: ClassVar[str]
    working_side: ClassVar[int]
    """Longer side of the decoded image ``compute`` needs at ingest (see ``_imaging.decode``)."""
    query_side: ClassVar[int]
    """... and for a query."""

    def __init__(self, catalog: Catalog, folder: Path, settings: Settings) -> None:
        self.catalog = catalog
        self.folder = Path(folder)
        self.settings = settings
        self.store = open_signal_store(catalog, self.folder, self, settings)

    # -- pure: any process -------------------------------------------------------------------

    @classmethod
    def check(cls) -> None:
        """Raise StageUnavailable (or ImportError) when this stage cannot run here."""

    @classmethod
    @abc.abstractmethod
    def compute(cls, image: Any, full_size: tuple[int, int], *, query: bool = False) -> Any:
        """The signal of a decoded image.

        Parameters
        ----------
        image : PIL.Image.Image
            RGB, possibly reduced (longer side >= ``working_side`` or ``query_side``).
        full_size : tuple of int
            The original ``(width, height)``: positions are reported in these pixels.
        query : bool
            A query's signal (some stages compute more for a query).
        """

    @classmethod
    def compute_batch(cls, images: list[Any], sizes: list[tuple[int, int]]) -> list[Any]:
        """:meth:`compute` for several images at ingest (stages with a network batch them)."""
        return [cls.compute(image, size) for image, size in zip(images, sizes)]

    # -- bound to a catalog --------------------------------------------------------------------

    @abc.abstractmethod
    def encode(self, signal: Any) -> bytes:
        """The signal as stored in the catalog."""

    @abc.abstractmethod
    def decode(self, data: bytes) -> Any:
        """The inverse of :meth:`encode`."""

    def terms(self, signal: Any) -> list[tuple[int, float]]:
        """Searchable ``(term, weight)`` pairs stored beside the signal (none by default)."""
        return []

    @abc.abstractmethod
    def new_index(self) -> Any:
        """An empty derived index (see ``picorigin._store.signal_store.DerivedIndex``)."""

    @abc.abstractmethod
    def load_index(self, path: Path) -> Any:
        """A derived index saved by its ``save``."""

    def shared_index(self, connection: Any) -> Any:
        """The index every process shares, on a Milvus ``connection`` (see
        ``picorigin._store.shared_store.SharedIndex``)."""
        raise NotImplementedError(f"the {self.name} stage has no shared index")

    def index_meta(self) -> dict[str, Any]:
        """What a checkpoint must have been built with to be usable (e.g. a vocabulary)."""
        return {}

    def index_entry(self, data: bytes) -> Any:
        """What the derived index keeps of one stored signal (default: the decoded signal)."""
        return self.decode(data)

    def add(self, ids: list[int], signals: list[Any]) -> None:
        """Store signals of catalogued images (replacing any); durable once this returns."""
        if len(ids) != len(signals):
            raise ValueError("ids and signals differ in length")
        self.catalog.put_signals(self.name, [(int(i), self.encode(s)) for i, s in zip(ids, signals)],
                                 {int(i): self.terms(s) for i, s in zip(ids, signals)})

    def stored(self, ids: list[int]) -> dict[int, Any]:
        """Decoded signals of these ids (missing ones left out)."""
        return {i: self.decode(data) for i, data in self.catalog.signals(self.name, ids).items()}

    def ids(self) -> set[int]:
        """Every catalogued image holding this signal."""
        return self.catalog.signal_ids(self.name)

    def save(self, *, force: bool = False) -> None:
        """Checkpoint the derived index when due (always with ``force``, if it changed)."""
        self.store.checkpoint(force=force)

    def close(self) -> None:
        self.save(force=True)
        self.store.close()

    def stats(self) -> dict[str, Any]:
        """Counts and sizes, for ``picorigin stats``."""
        return {"images": self.catalog.count_signals(self.name), **self.store.stats()}
