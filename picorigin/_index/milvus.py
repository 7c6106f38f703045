"""Milvus collections as the indexes of every signal (setting ``index``; the milvus extra).

With ``index=milvus://host:19530`` (a Milvus server) or ``index=milvus-lite://file.db`` (Milvus
Lite, embedded in this process), each signal's derived index is a Milvus collection keyed by
image id instead of a FAISS index or inverted file in every process:

- **fingerprint**: ``BINARY_VECTOR`` (256 bits), ``HAMMING`` metric, range search within the
  radius (:class:`MilvusBinaryIndex`); ``BIN_FLAT`` (exact, the only binary index Lite has) or
  ``BIN_IVF_FLAT`` (sub-linear, approximate) by the setting ``milvus_binary_index``.
- **deep**: ``FLOAT_VECTOR`` (256 dimensions), ``IP`` metric on L2-normalised descriptors: the
  cosine the FAISS dense index computes (:class:`MilvusDenseIndex`); ``FLAT``, ``IVF_FLAT``,
  ``IVF_SQ8``, ``IVF_PQ`` or ``HNSW`` by ``milvus_dense_index`` (Lite: FLAT, IVF_FLAT).
- **local**: ``SPARSE_FLOAT_VECTOR`` of tf-idf weights, ``SPARSE_INVERTED_INDEX``, ``IP``
  (:class:`MilvusSparseIndex`). The inverted file scores histogram intersection,
  ``sum_w min(q_w, d_w)`` of L1-normalised weights, which no Milvus metric computes. Milvus
  stores the square roots of those weights, so its inner product is the Bhattacharyya
  coefficient ``sum_w sqrt(q_w d_w)``, an upper bound of the intersection (``min(a, b) <=
  sqrt(ab)``) that ranks images much as it does; it shortlists by that, and the shortlist is re-scored by the
  exact intersection, from the words the catalog holds (the local stage passes a lookup:
  pymilvus decodes a returned sparse vector at about 2.5 ms a row, the catalog read costs
  less), or else from the vectors Milvus returns (their squares are the weights). The order is
  then the inverted file's for every image the shortlist holds; ``tests/index/test_milvus.py``
  and ``bench/index_scale.py`` measure how often the inverted file's best images fall outside
  it (on Zipf-distributed words with their idf, 600 images: a 100-image shortlist held 97 %
  of the inverted file's top 20 and always its first; ranking by the cosine of the weights
  themselves held about 95 %).

Every collection has the primary key ``id`` (the image id), so an insert is an upsert and
replaying a change twice is harmless. Searches ask for ``Strong`` consistency: they see every
write acknowledged before them, whichever client made it. The collection's description holds a
random token made when it was created, so a collection dropped and made anew (empty) is noticed
(see ``picorigin._store.shared_store``, which keeps collections in step with the catalog).

Locators: ``milvus://[user:password@]host[:port][/database][?prefix=NAME]`` and
``milvus-lite://PATH.db[?prefix=NAME]`` (a relative PATH is inside the data folder:
``milvus-lite://index.db``; ``milvus-lite:///srv/index.db`` is absolute). Collections are named
``{prefix}_{signal}`` (prefix ``picorigin`` by default): one prefix per catalog. Milvus Lite
serves one process at a time; processes that share an index need a Milvus server.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from .._errors import SettingError
from .base import BinaryIndex
from .inverted import tfidf

__all__ = ["IndexSpec", "MilvusBinaryIndex", "MilvusDenseIndex", "MilvusSparseIndex", "Target",
           "connect", "parse_index_spec", "parse_target"]

_EXTRA = "pip install 'picorigin[milvus]'"
TOP_K_MAX = 16_384  # Milvus's largest limit (top-k) for one search
_WRITE_BATCH = 5000  # rows a single insert or delete carries (well under gRPC's 64 MB)
_FILTER_IDS = 8000  # ids a single ``id in [...]`` filter carries
SHORTLIST_FACTOR = 5  # the local shortlist: this many times the images asked for ...
SHORTLIST_MIN = 100  # ... and at least this many, re-scored exactly


# -- where ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """A parsed ``index`` setting: what :func:`connect` opens.

    Attributes
    ----------
    uri : str
        What ``pymilvus.MilvusClient`` takes: a ``.db`` path (Lite) or ``http://host:port``.
    lite : bool
    prefix : str
        Collections are named ``{prefix}_{signal}``.
    token, db_name : str
        Credentials (``user:password``) and database of a server; empty for the defaults.
    """

    uri: str
    lite: bool
    prefix: str = "picorigin"
    token: str = field(default="", repr=False)
    db_name: str = ""

    def __str__(self) -> str:
        """The locator without credentials, for messages and ``stats``."""
        if self.lite:
            return f"milvus-lite://{self.uri}"
        database = f"/{self.db_name}" if self.db_name else ""
        return f"milvus://{self.uri.split('://', 1)[1]}{database}"

    def collection(self, signal: str) -> str:
        return f"{self.prefix}_{signal}"


_LITE_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,36}$")  # what Milvus Lite accepts as a file name
_PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")


def parse_target(text: str, folder: Path) -> Target | None:
    """The :class:`Target` the ``index`` setting names; None for the in-process default.

    Raises
    ------
    SettingError
        Not a Milvus locator, or one Milvus cannot use.
    """
    text = str(text or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    prefix = query.get("prefix", ["picorigin"])[-1]
    if not _PREFIX.match(prefix):
        raise SettingError(f"setting 'index': prefix {prefix!r} is not a Milvus collection "
                           "name (letters, digits and _, not starting with a digit)")
    if parts.scheme == "milvus-lite":
        raw = text[len("milvus-lite://"):].split("?", 1)[0]
        path = Path(raw) if raw.startswith("/") else Path(folder) / raw
        if path.suffix != ".db" or not _LITE_NAME.match(path.name):
            raise SettingError(f"setting 'index': Milvus Lite needs a file named *.db of at most "
                               f"36 letters, digits, '.', '-' or '_'; got {path.name!r}")
        return Target(str(path.absolute()), True, prefix)
    if parts.scheme == "milvus":
        if not parts.hostname:
            raise SettingError("setting 'index': milvus:// needs a host, e.g. "
                               "milvus://localhost:19530")
        token = ""
        if parts.username:
            token = unquote(parts.username) + (f":{unquote(parts.password)}"
                                               if parts.password else "")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return Target(f"http://{host}:{parts.port or 19530}", False, prefix, token,
                      parts.path.strip("/"))
    raise SettingError(f"setting 'index': {text.split(':', 1)[0]!r} is not a kind of index "
                       "picorigin knows; use milvus://host:19530 or milvus-lite://file.db, or "
                       "leave it empty for the in-process indexes")


# -- index types ------------------------------------------------------------------------------

_BINARY_TYPES = {"BIN_FLAT": (), "BIN_IVF_FLAT": ("nlist",)}
_DENSE_TYPES = {"FLAT": (), "IVF_FLAT": ("nlist",), "IVF_SQ8": ("nlist",),
                "IVF_PQ": ("nlist", "m", "nbits"), "HNSW": ("M", "efConstruction")}
_LITE_TYPES = {"BIN_FLAT", "FLAT", "IVF_FLAT"}  # what Milvus Lite 2.5 builds
_SEARCH_KEYS = {"nprobe", "ef"}
_DEFAULTS = {"nlist": 1024, "nprobe": 32, "m": 32, "nbits": 8, "M": 16, "efConstruction": 200,
             "ef": 128}


@dataclass(frozen=True)
class IndexSpec:
    """An index type with its build and search parameters (from a setting's text)."""

    type: str
    build: dict[str, int]
    search: dict[str, int]


def parse_index_spec(text: str, setting: str, *, lite: bool) -> IndexSpec:
    """``"HNSW M=16 efConstruction=200 ef=128"`` -> IndexSpec; unset parameters get defaults.

    Raises
    ------
    SettingError
        An unknown type or parameter, or a type Milvus Lite does not build.
    """
    words = str(text).split()
    known = _BINARY_TYPES if setting == "milvus_binary_index" else _DENSE_TYPES
    kind = words[0].upper() if words else ""
    if kind not in known:
        raise SettingError(f"setting {setting!r}: {kind or '(empty)'} is not one of "
                           f"{', '.join(known)}")
    if lite and kind not in _LITE_TYPES:
        raise SettingError(f"setting {setting!r}: Milvus Lite builds only "
                           f"{', '.join(sorted(_LITE_TYPES & set(known)))}; {kind} needs a "
                           "Milvus server (milvus://host:19530)")
    build_keys = known[kind]
    search_keys = {"nprobe"} if "nlist" in build_keys else {"ef"} if kind == "HNSW" else set()
    values = {key: _DEFAULTS[key] for key in (*build_keys, *search_keys)}
    for word in words[1:]:
        key, _, value = word.partition("=")
        if key not in values or not value.isdigit():
            raise SettingError(f"setting {setting!r}: {word!r} is not a parameter of {kind} "
                               f"(it takes {', '.join(sorted(values)) or 'none'}, as key=number)")
        values[key] = int(value)
    return IndexSpec(kind, {k: v for k, v in values.items() if k not in _SEARCH_KEYS},
                     {k: v for k, v in values.items() if k in _SEARCH_KEYS})


# -- connections ------------------------------------------------------------------------------

def _pymilvus(lite: bool) -> Any:
    """The pymilvus module, imported on first use, with a clear error without the extra."""
    try:
        with warnings.catch_warnings():
            # milvus-lite 2.5 imports pkg_resources, which warns that it is deprecated
            warnings.simplefilter("ignore")
            import pymilvus

            if lite:
                import milvus_lite.server_manager  # noqa: F401
    except ImportError as error:
        raise SettingError(f"setting 'index': Milvus needs the milvus extra ({_EXTRA}): "
                           f"{error}") from None
    return pymilvus


class _BenignLiteWarning(logging.Filter):
    """Drops pymilvus's warning that Milvus Lite gives an id iterator no snapshot time: it then
    uses its own clock, which is what Strong consistency asks for anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("failed to get mvccTs")


class _Client:
    """One ``MilvusClient`` per server (or Lite file) in this process, shared by its users."""

    def __init__(self, target: Target) -> None:
        self.pymilvus = _pymilvus(target.lite)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.client = self.pymilvus.MilvusClient(
                    uri=target.uri, token=target.token, db_name=target.db_name, timeout=20)
        except self.pymilvus.exceptions.MilvusException as error:
            if target.lite:
                raise SettingError(
                    f"setting 'index': cannot open Milvus Lite file {target.uri} (Milvus Lite "
                    "serves one process: is another one using it? Processes that share an "
                    "index need a Milvus server, milvus://host:19530)") from None
            raise SettingError(f"setting 'index': cannot connect to Milvus at {target}: "
                               f"{getattr(error, 'message', error)}") from None
        self.lite_path = target.uri if target.lite else None
        self.users = 0
        if target.lite:
            logger = logging.getLogger("pymilvus.client.iterator.query_iterator")
            if not any(isinstance(f, _BenignLiteWarning) for f in logger.filters):
                logger.addFilter(_BenignLiteWarning())

    def close(self) -> None:
        self.client.close()
        if self.lite_path:
            # pymilvus keeps a Lite server until the process ends; let another process open
            # the file once this one is done with it.
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(self.lite_path)


@dataclass(frozen=True)
class Connection:
    """A user's handle on this process's client of a target's server (see :func:`connect`)."""

    target: Target
    shared: _Client = field(repr=False)

    @property
    def client(self) -> Any:
        return self.shared.client

    @property
    def pymilvus(self) -> Any:
        return self.shared.pymilvus


_clients: dict[tuple[str, str, str], _Client] = {}
_clients_lock = threading.Lock()


def connect(target: Target) -> Connection:
    """A handle on this process's client of ``target``'s server, opened on first use; give it
    back with :func:`release`.

    Raises
    ------
    SettingError
        The milvus extra is missing, or the server (or Lite file) cannot be opened.
    """
    key = (target.uri, target.token, target.db_name)
    with _clients_lock:
        shared = _clients.get(key)
        if shared is None:
            shared = _clients[key] = _Client(target)
        shared.users += 1
        return Connection(target, shared)


def release(connection: Connection) -> None:
    """Give back a :func:`connect`; the last user closes the client (and a Lite server)."""
    with _clients_lock:
        shared = connection.shared
        shared.users -= 1
        if shared.users <= 0:
            for key, value in list(_clients.items()):
                if value is shared:
                    del _clients[key]
            shared.close()


# -- one collection ---------------------------------------------------------------------------

class _Collection:
    """A collection ``id -> vector``, created on first use (schema, index, identity token)."""

    def __init__(self, connection: Connection, signal: str, field: str, dtype: str,
                 metric: str, spec: IndexSpec, **field_params: Any) -> None:
        self.connection = connection
        self.client = connection.client
        self.name = connection.target.collection(signal)
        self.field = field
        self.metric = metric
        self.spec = spec
        pymilvus = connection.pymilvus
        if not self.client.has_collection(self.name):
            schema = self.client.create_schema(auto_id=False, description=secrets.token_hex(8))
            schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
            schema.add_field(field, getattr(pymilvus.DataType, dtype), **field_params)
            index = self.client.prepare_index_params()
            index.add_index(field, index_type=spec.type, metric_type=self.metric,
                            params=spec.build)
            try:
                self.client.create_collection(self.name, schema=schema, index_params=index,
                                              consistency_level="Strong")
            except pymilvus.exceptions.MilvusException:
                if not self.client.has_collection(self.name):  # not made by another process
                    raise
        # the token of whichever process created it, whoever won a race to create it
        self.identity = str(self.client.describe_collection(self.name)["description"])
        self.client.load_collection(self.name)
        existing = self.client.describe_index(self.name, field) or {}
        self.built = str(existing.get("index_type", spec.type))
        if self.built != spec.type:
            # Chosen when the collection was made; changing it means rebuilding it, which
            # every process would have to agree on: drop the collection to have it made anew.
            logging.getLogger("picorigin").warning(
                "Milvus collection %s has a %s index, not the %s the settings ask for; drop "
                "it to rebuild it with %s", self.name, self.built, spec.type, spec.type)
            self.spec = IndexSpec(self.built, {}, {})

    def insert(self, rows: list[dict[str, Any]]) -> None:
        """Add rows whose ids are not stored (a bulk load; otherwise :meth:`upsert`)."""
        for start in range(0, len(rows), _WRITE_BATCH):
            self.client.insert(self.name, rows[start:start + _WRITE_BATCH])

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), _WRITE_BATCH):
            self.client.upsert(self.name, rows[start:start + _WRITE_BATCH])

    def delete(self, ids: list[int]) -> None:
        for start in range(0, len(ids), _WRITE_BATCH):
            self.client.delete(self.name, ids=[int(i) for i in ids[start:start + _WRITE_BATCH]])

    def present(self, ids: list[int]) -> list[int]:
        """Those of ``ids`` the collection holds."""
        found = []
        for start in range(0, len(ids), _FILTER_IDS):
            chunk = [int(i) for i in ids[start:start + _FILTER_IDS]]
            found += [int(row["id"]) for row in self.client.query(
                self.name, filter=f"id in {chunk}", output_fields=["id"],
                consistency_level="Strong")]
        return found

    def count(self) -> int:
        rows = self.client.query(self.name, filter="", output_fields=["count(*)"],
                                 consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def iter_ids(self) -> Iterator[np.ndarray]:
        """Every stored id, in batches."""
        iterator = self.client.query_iterator(self.name, batch_size=TOP_K_MAX, filter="",
                                              output_fields=["id"], consistency_level="Strong")
        try:
            while batch := iterator.next():
                yield np.fromiter((row["id"] for row in batch), np.int64, len(batch))
        finally:
            iterator.close()

    def search(self, data: list, limit: int, params: dict[str, Any], *,
               filter: str = "", output: tuple[str, ...] = ()) -> list:
        return self.client.search(self.name, data=data, anns_field=self.field, limit=limit,
                                  filter=filter, output_fields=list(output),
                                  search_params={"metric_type": self.metric, "params": params},
                                  consistency_level="Strong")


class _Shared:
    """What the three indexes share: the derived-index protocol of the signal store."""

    _collection: _Collection

    @property
    def identity(self) -> str:
        """Changes when the collection is made anew (see ``picorigin._store.shared_store``)."""
        return self._collection.identity

    def update(self, removed: list[int], added: list[tuple[int, Any]]) -> None:
        """Delete ``removed`` ids not in ``added``, then upsert ``added`` (idempotent)."""
        kept = {int(i) for i, _ in added}
        gone = [int(i) for i in removed if int(i) not in kept]
        if gone:
            self._collection.delete(gone)
        if added:
            self._collection.upsert([self._row(int(i), entry) for i, entry in added])

    def _row(self, image_id: int, entry: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _remove(self, ids: Any) -> int:
        """Delete these ids; how many were stored."""
        ids = [int(i) for i in np.asarray(ids).ravel()]
        if not ids:
            return 0
        present = self._collection.present(ids)
        self._collection.delete(ids)
        return len(present)

    def ids(self) -> set[int]:
        return {int(i) for batch in self._collection.iter_ids() for i in batch}

    def __len__(self) -> int:
        return self._collection.count()

    def save(self, path: Path) -> None:
        raise TypeError("a Milvus collection persists itself: it has no checkpoint file")


# -- fingerprints -----------------------------------------------------------------------------

class MilvusBinaryIndex(_Shared, BinaryIndex):
    """Radius search over packed binary codes in a Milvus collection (``BINARY_VECTOR``).

    Parameters
    ----------
    bits : int
    connection : Connection
    signal : str
        Names the collection (``{prefix}_{signal}``).
    spec : IndexSpec, optional
        Default ``BIN_FLAT``.

    Notes
    -----
    Milvus returns at most 16,384 codes per query code (its largest top-k); FAISS returns every
    code within the radius.
    """

    def __init__(self, bits: int, connection: Connection, signal: str = "fingerprint",
                 spec: IndexSpec | None = None) -> None:
        super().__init__(bits)
        spec = spec or IndexSpec("BIN_FLAT", {}, {})
        self._collection = _Collection(connection, signal, "code", "BINARY_VECTOR", "HAMMING",
                                       spec, dim=bits)

    def _row(self, image_id: int, code: np.ndarray) -> dict[str, Any]:
        return {"id": image_id, "code": np.ascontiguousarray(code, np.uint8).tobytes()}

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add (or replace) codes."""
        codes = np.asarray(codes, np.uint8).reshape(-1, self.bits // 8)
        self._collection.upsert([self._row(int(i), c) for i, c in zip(np.asarray(ids), codes)])

    def remove(self, ids: np.ndarray) -> int:
        return self._remove(ids)

    def search(self, codes: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
        codes = np.asarray(codes, np.uint8).reshape(-1, self.bits // 8)
        if not len(codes):
            return []
        # Milvus's range search keeps range_filter <= distance < radius.
        params = {"radius": int(radius) + 1, "range_filter": 0, **self._collection.spec.search}
        found = self._collection.search([c.tobytes() for c in codes], TOP_K_MAX, params)
        return [(row, int(hit["id"]), int(round(hit["distance"])))
                for row, hits in enumerate(found) for hit in hits]

    @property
    def backend(self) -> str:
        """``"Milvus BIN_FLAT"`` (the index type built)."""
        return f"Milvus {self._collection.built}"

    def memory_bytes(self) -> int:
        """Bytes the collection holds in the Milvus server (codes and ids; an estimate)."""
        return len(self) * (self.bits // 8 + 8)

    @classmethod
    def load(cls, path: Path, bits: int) -> "MilvusBinaryIndex":
        raise TypeError("a Milvus collection persists itself: it has no checkpoint file")


# -- deep descriptors -------------------------------------------------------------------------

class MilvusDenseIndex(_Shared):
    """Inner-product search over L2-normalised float32 vectors in a Milvus collection.

    The same interface as ``picorigin._index.faiss_dense.DenseIndex`` (``add`` replaces,
    ``remove``, ``search`` with ``allowed``), answered by Milvus.

    Parameters
    ----------
    dim : int
    connection : Connection
    signal : str
    spec : IndexSpec, optional
        Default ``FLAT`` (exact).
    """

    def __init__(self, dim: int, connection: Connection, signal: str = "deep",
                 spec: IndexSpec | None = None) -> None:
        self.dim = dim
        spec = spec or IndexSpec("FLAT", {}, {})
        self._collection = _Collection(connection, signal, "vector", "FLOAT_VECTOR", "IP", spec,
                                       dim=dim)

    @property
    def kind(self) -> str:
        """The Milvus index type, e.g. ``"milvus FLAT"``."""
        return f"milvus {self._collection.built}"

    def _row(self, image_id: int, vector: np.ndarray) -> dict[str, Any]:
        return {"id": image_id, "vector": np.asarray(vector, np.float32).reshape(self.dim)}

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (or replace) vectors, shape (n, dim), L2-normalised."""
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        if len(ids) != len(vectors):
            raise ValueError("ids and vectors differ in length")
        self._collection.upsert([self._row(int(i), v) for i, v in zip(np.asarray(ids), vectors)])

    def remove(self, ids: np.ndarray) -> int:
        """Remove every vector with one of these ids; how many were removed."""
        return self._remove(ids)

    def search(self, queries: np.ndarray, k: int, *,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar stored vectors to each query (see ``DenseIndex.search``).

        Returns
        -------
        similarities : ndarray of float32, shape (q, k)
            Inner products, best first; -inf where fewer than k exist.
        ids : ndarray of int64, shape (q, k)
            -1 where fewer than k exist.
        """
        queries = np.asarray(queries, np.float32).reshape(-1, self.dim)
        similarities = np.full((len(queries), k), -np.inf, np.float32)
        ids = np.full((len(queries), k), -1, np.int64)
        if k <= 0 or not len(queries):
            return similarities, ids
        k_asked = min(k, TOP_K_MAX)
        filters = [""]
        if allowed is not None:
            allowed = np.unique(np.asarray(allowed, np.int64)).tolist()
            filters = [f"id in {allowed[s:s + _FILTER_IDS]}"
                       for s in range(0, len(allowed), _FILTER_IDS)]
        params = dict(self._collection.spec.search)
        if "ef" in params:
            params["ef"] = max(params["ef"], k_asked)  # HNSW's ef must be at least k
        hits: list[list[tuple[float, int]]] = [[] for _ in queries]
        for condition in filters:
            found = self._collection.search(list(queries), k_asked, params, filter=condition)
            for row, row_hits in enumerate(found):
                hits[row] += [(float(h["distance"]), int(h["id"])) for h in row_hits]
        for row, row_hits in enumerate(hits):
            best = sorted(row_hits, key=lambda h: (-h[0], h[1]))[:k]
            if best:
                similarities[row, :len(best)] = [s for s, _ in best]
                ids[row, :len(best)] = [i for _, i in best]
        return similarities, ids

    def memory_bytes(self) -> int:
        """Bytes the collection holds in the Milvus server (raw vectors and ids; an estimate:
        the index's own structures come on top)."""
        return len(self) * (4 * self.dim + 8)


# -- visual words -----------------------------------------------------------------------------

class MilvusSparseIndex(_Shared):
    """Images as sparse tf-idf vectors of visual words in a Milvus collection.

    The interface of ``picorigin._index.inverted.InvertedFile`` (``update``, ``query``), with
    the scoring described in the module docstring: a Bhattacharyya shortlist re-scored by
    histogram intersection.

    Parameters
    ----------
    idf : ndarray of float32, shape (n_words,)
    connection : Connection
    signal : str
    lookup : callable, optional
        ``lookup(ids) -> {id: words}``: the stored words of images (from the catalog), to
        re-score the shortlist with; without it, Milvus returns the shortlist's vectors.
    """

    def __init__(self, idf: np.ndarray, connection: Connection, signal: str = "local",
                 lookup: Callable[[list[int]], dict[int, np.ndarray]] | None = None) -> None:
        self.idf = np.asarray(idf, np.float32)
        self.lookup = lookup
        spec = IndexSpec("SPARSE_INVERTED_INDEX", {"drop_ratio_build": 0}, {})
        self._collection = _Collection(connection, signal, "words", "SPARSE_FLOAT_VECTOR", "IP",
                                       spec)

    def _row(self, image_id: int, words: np.ndarray) -> dict[str, Any]:
        unique, weights = tfidf(words, self.idf)
        return {"id": image_id, "words": dict(zip(unique.tolist(), np.sqrt(weights).tolist()))}

    def add(self, image_id: int, words: np.ndarray) -> None:
        """Index one image given its words, shape (n,); replaces an earlier entry."""
        self.update([], [(image_id, words)])

    def remove(self, image_id: int) -> bool:
        """Forget one image; whether it was there."""
        return bool(self._remove([image_id]))

    def query(self, words: np.ndarray, top: int, *,
              max_postings: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images whose word histograms best intersect the query's (``InvertedFile.query``).

        ``max_postings`` is accepted for the interface and ignored: Milvus's sparse index
        bounds its own work (its WAND-style pruning), and every query word is used.

        Returns
        -------
        ids : ndarray of int64, shape (m,), best first (m <= top)
        scores : ndarray of float32, shape (m,), in [0, 1]
        """
        unique, q = tfidf(words, self.idf)
        if top <= 0 or not len(unique):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        shortlist = min(TOP_K_MAX, max(SHORTLIST_FACTOR * top, SHORTLIST_MIN))
        query = dict(zip(unique.tolist(), np.sqrt(q).tolist()))
        found = self._collection.search([query], shortlist, {"drop_ratio_search": 0},
                                        output=() if self.lookup else ("words",))[0]
        ids = np.fromiter((int(h["id"]) for h in found), np.int64, len(found))
        if self.lookup is not None:
            stored = self.lookup(ids.tolist())
            weighted = [tfidf(stored[i], self.idf) if i in stored else (ids[:0], q[:0])
                        for i in ids.tolist()]
        else:
            weighted = [_unpack(h["entity"]["words"]) for h in found]
        scores = np.array([_intersection(unique, q, *w) for w in weighted], np.float32)
        order = np.lexsort((ids, -scores))[:top]
        order = order[scores[order] > 0]
        return ids[order], scores[order]

    def nbytes(self) -> int:
        """Bytes this process holds for the index: none (it lives in Milvus)."""
        return 0


def _unpack(stored: dict) -> tuple[np.ndarray, np.ndarray]:
    """Words and L1-normalised weights of a sparse vector as stored (their square roots)."""
    words = np.fromiter(stored.keys(), np.int64, len(stored))
    return words, np.square(np.fromiter(stored.values(), np.float32, len(stored)))


def _intersection(unique: np.ndarray, q: np.ndarray, words: np.ndarray,
                  weights: np.ndarray) -> float:
    """``sum_w min(q_w, d_w)`` of the L1-normalised query and stored weights."""
    if not len(words):
        return 0.0
    at = np.searchsorted(unique, words)
    at[at == len(unique)] = 0
    common = unique[at] == words
    return float(np.minimum(q[at[common]], weights[common]).sum())
