"""The one table of settings: it drives CLI help, validation, the environment and the README.

:class:`Settings` is the table: each field is a setting with its type, default and help. A
setting is read, in order of precedence, from an explicit argument (``Engine(settings={...})``
or ``-s NAME=VALUE``), from the environment variable ``PICORIGIN_<NAME>`` (upper case), or from
its default. Every part that needs settings is handed the resolved, immutable ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

from ._errors import SettingError

__all__ = ["SETTINGS", "Setting", "Settings", "resolve_settings"]


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, eq=False)
class Settings(Mapping):
    """Every setting's value; read as attributes (``settings.max_bytes``) or as a mapping."""

    max_bytes: int = _setting(50_000_000, "Largest input file or download accepted, in bytes.")
    max_pixels: int = _setting(100_000_000, "Largest image accepted, in pixels (width x "
                               "height); larger ones are refused as decompression bombs.")
    max_side: int = _setting(30_000, "Largest width or height accepted, in pixels.")
    max_decode_bytes: int = _setting(268_435_456, "Most memory one decode may use, estimated "
                                     "from the image's header before decoding (a 16-bit or "
                                     "huge PNG past it is refused; JPEGs decode reduced).")
    fetch_timeout: float = _setting(20.0, "Seconds to wait for an http(s) source before "
                                    "giving up.")
    fetch_max_redirects: int = _setting(5, "Redirects followed when fetching an http(s) "
                                        "source.")
    allow_private_urls: bool = _setting(False, "Fetch URLs that resolve to private, loopback or "
                                        "link-local addresses (off by default so a server "
                                        "cannot be used as an SSRF proxy).")
    near_duplicate_distance: int = _setting(64, "Largest Hamming distance (of 256 bits) between "
                                            "fingerprints that counts as a near-duplicate; see "
                                            "README for how it was measured.")
    stages: str = _setting("local,deep", "Stages run beside the fingerprint, comma-separated: "
                           "local (crops, pasted-in, screenshots; needs only OpenCV), deep "
                           "(similar images, labels, colour; needs the deep extra, off with a "
                           "notice without it). Empty for fingerprint only.")
    similar_min_score: float = _setting(0.8, "Lowest calibrated score for a `similar` match "
                                        "(0-1, the same scale in every collection). On pairs "
                                        "the calibration was not fitted on: at 0.5, 55.7 % of "
                                        "same-kind and 2.3 % of different-kind photo pairs "
                                        "pass; at 0.8, 46.7 % and 0.7 %; at 0.9, 40.2 % and "
                                        "0.35 %.")
    measure_detail: bool = _setting(True, "Measure the traces an enlargement leaves in each "
                                    "image at ingest (a full-size decode up to 4096 px, "
                                    "~30 ms at 500 px, ~120 ms at 2000x1250) so upscaled copies are not reported as higher "
                                    "resolution.")
    workers: int = _setting(0, "Processes used by `index`; 0 means one per CPU core.")
    checkpoint_seconds: float = _setting(60.0, "Seconds between index checkpoints while "
                                         "indexing; the catalog commits every image, and any "
                                         "process catches up from its change log.")
    catalog: str = _setting("", "Where the catalog lives: empty for the SQLite file in the data "
                            "folder, or postgresql://user@host/db for PostgreSQL (the postgres "
                            "extra; many machines, one catalog).")
    index: str = _setting("", "Where each signal's index lives: empty for indexes in every "
                          "process (FAISS, an inverted file) caught up from the catalog; "
                          "milvus://host:19530 for collections of a Milvus server that every "
                          "process shares; milvus-lite://index.db for Milvus Lite, one process "
                          "(a relative path is in the data folder). Needs the milvus extra.")
    milvus_binary_index: str = _setting("BIN_FLAT", "Milvus index of the fingerprints "
                                        "(Hamming): BIN_FLAT, exact; or BIN_IVF_FLAT "
                                        "nlist=1024 nprobe=32, sub-linear and approximate "
                                        "(a server only).")
    milvus_dense_index: str = _setting("FLAT", "Milvus index of the deep descriptors (inner "
                                       "product): FLAT (exact), IVF_FLAT, IVF_SQ8 or IVF_PQ "
                                       "(nlist=1024 nprobe=32, IVF_PQ m=32 nbits=8), HNSW "
                                       "(M=16 efConstruction=200 ef=128); Milvus Lite has "
                                       "FLAT and IVF_FLAT.")
    ingest: str = _setting("", "Where `index` analyses images: empty for local worker processes, "
                           "or dask://host:8786 for a Dask cluster's workers (the dask extra).")
    thumbnail_side: int = _setting(256, "Longer side of the JPEG thumbnail kept per image "
                                   "(0 keeps none).")
    watch_seconds: float = _setting(5.0, "Seconds between rounds of `serve`'s watcher: new "
                                    "images checked against watches, due webhooks sent.")
    webhook_retry_seconds: float = _setting(30.0, "Wait before a failed webhook's second try; "
                                            "it doubles with each failure (at most an hour).")
    webhook_max_attempts: int = _setting(12, "Tries of one webhook delivery before it is "
                                         "marked failed (every attempt is recorded).")
    webhook_timeout: float = _setting(10.0, "Seconds one webhook POST may take.")

    def __getitem__(self, name: str) -> Any:
        if name not in _BY_NAME:
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(_BY_NAME)

    def __len__(self) -> int:
        return len(_BY_NAME)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (validated like any other source)."""
        return resolve_settings({**self, **changes}, environ={})


@dataclass(frozen=True)
class Setting:
    """One row of the table: name, default, help (and the type, from the default)."""

    name: str
    default: Any
    help: str

    @property
    def type(self) -> type:
        return type(self.default)

    def parse(self, value: Any) -> Any:
        """Coerce ``value`` (possibly a string from the environment or the CLI) to this type."""
        kind = self.type
        try:
            if kind is bool and isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in {"1", "true", "yes", "on"}:
                    return True
                if lowered in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            if kind is bool:
                return bool(value)
            if kind is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return kind(value)
        except (TypeError, ValueError, OverflowError):
            raise SettingError(
                f"setting {self.name!r} takes a {kind.__name__}, got {value!r}"
            ) from None


SETTINGS: tuple[Setting, ...] = tuple(
    Setting(f.name, f.default, f.metadata["help"]) for f in dataclasses.fields(Settings)
)

_BY_NAME = {setting.name: setting for setting in SETTINGS}


def resolve_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Every setting's value: overrides beat ``PICORIGIN_<NAME>`` beats the default."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_BY_NAME))
    if unknown:
        known = ", ".join(sorted(_BY_NAME))
        raise SettingError(f"unknown setting(s) {', '.join(unknown)}; known: {known}")
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if overrides.get(setting.name) is not None:
            values[setting.name] = setting.parse(overrides[setting.name])
        elif f"PICORIGIN_{setting.name.upper()}" in environ:
            values[setting.name] = setting.parse(environ[f"PICORIGIN_{setting.name.upper()}"])
        else:
            values[setting.name] = setting.default
    return Settings(**values)
