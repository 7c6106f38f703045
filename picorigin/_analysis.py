"""Turning one source into everything the index needs: read, hash, decode once, compute.

Runs in worker processes, so it takes and returns plain picklable data, and never raises for a
bad source in a batch (``analyse_safely``, ``analyse_batch``): the failure is returned with its
reason, and the rest of the batch goes on.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from . import _imaging, _stages
from ._catalog import Catalog
from ._errors import PicoriginError
from ._features import fingerprint
from ._provenance import origin

__all__ = [
    "BATCH",
    "FINGERPRINT_SIDE",
    "analyse",
    "analyse_batch",
    "analyse_safely",
    "decode",
    "file_stat",
    "stage_signal",
    "working_side",
]

# The fingerprint needs little: a JPEG is decoded at 1/8 scale when that still leaves this much.
FINGERPRINT_SIDE = 128
_ORIENTATION_CODES = {g: i for i, g in enumerate(fingerprint.ORIENTATIONS)}


@dataclass
class Known:
    """A source whose bytes are already catalogued: it only adds a location."""

    uri: str
    sha256: str
    image_id: int
    location: dict[str, Any]


@dataclass
class Analysed:
    """Everything computed for a new image, ready for the catalog and the index."""

    uri: str
    record: dict[str, Any]
    location: dict[str, Any]
    thumbnail: bytes | None
    signals: dict[str, Any]
    # The decoded image, kept only until batched stages have run (never pickled back).
    pending: Any = None


@dataclass
class Failed:
    source: str
    reason: str



_worker_catalog: Catalog | None = None


def init_worker(catalog_path: str) -> None:
    global _worker_catalog
    _worker_catalog = Catalog(Path(catalog_path))


def analyse_batch_in_worker(
    sources: list[str], settings: dict[str, Any], stages: tuple[str, ...]
) -> list[Known | Analysed | Failed]:
    known = _worker_catalog.find_by_sha256 if _worker_catalog else None
    return analyse_batch(sources, settings, known=known, stages=stages)


def file_stat(source: Any) -> tuple[int, float] | None:
    if isinstance(source, (str, Path)) and not str(source).startswith(("http://", "https://")):
        try:
            stat = os.stat(source)
        except OSError:
            return None
        return stat.st_size, stat.st_mtime
    return None


def analyse(
    source: Any,
    settings: dict[str, Any],
    *,
    known: Callable[[str], int | None] | None = None,
    uri: str | None = None,
    stages: tuple[str, ...] = (),
    defer: tuple[str, ...] = (),
) -> Known | Analysed:
    """Read, hash, decode, fingerprint one source, and compute each stage's signal.

    Stages in ``defer`` are left to the caller, who batches them (``analyse_batch``); the
    decoded image waits in ``pending`` for them.

    Raises
    ------
    ImageError, FetchError
    """
    stat = file_stat(source)
    read_uri, data = _imaging.read_source(source, settings)
    uri = uri or read_uri
    location = {"uri": uri}
    if stat is not None:
        location.update(file_size=stat[0], file_mtime=stat[1])
    sha256 = hashlib.sha256(data).hexdigest()
    image_id = known(sha256) if known else None
    if image_id is not None:
        return Known(uri, sha256, image_id, location)
    decoded = decode(data, uri, settings, working_side(stages))
    code = fingerprint.compute(decoded.image)
    signals = {name: stage_signal(name, decoded) for name in stages if name not in defer}
    record = {
        "sha256": sha256,
        "pixel_sha256": decoded.pixel_sha256,
        "width": decoded.width,
        "height": decoded.height,
        "format": decoded.format,
        "byte_size": len(data),
        "fingerprint": code.code.tobytes(),
        "orientation": _ORIENTATION_CODES[code.orientation],
        "metadata": decoded.metadata,
        "signals": detail_signals(data, uri, settings) if settings["measure_detail"] else {},
    }
    thumbnail = _thumbnail(decoded.image, settings["thumbnail_side"])
    return Analysed(uri, record, location, thumbnail, signals, decoded if defer else None)


BATCH = 8
"""Images a worker analyses together, so a network stage runs once on a batch of them."""


def analyse_batch(
    sources: list[Any],
    settings: dict[str, Any],
    *,
    known: Callable[[str], int | None] | None = None,
    stages: tuple[str, ...] = (),
) -> list[Known | Analysed | Failed]:
    """``analyse_safely`` for several sources; stages with ``compute_batch`` (the deep network)
    run once for all of them: about half the cost per image of one call each."""
    batched = tuple(n for n in stages if hasattr(_stages.stage_class(n), "compute_batch"))
    results = [
        analyse_safely(source, settings, known=known, stages=stages, defer=batched)
        for source in sources
    ]
    waiting = [r for r in results if isinstance(r, Analysed) and r.pending is not None]
    for name in batched:
        if not waiting:
            break
        try:
            signals = _stages.stage_class(name).compute_batch([r.pending.image for r in waiting])
        except PicoriginError as error:
            results = [Failed(r.uri, str(error)) if r in waiting else r for r in results]
            waiting = []
            break
        for result, signal in zip(waiting, signals):
            result.signals[name] = signal
    for result in waiting:
        result.pending = None
    return results


def working_side(stages: Iterable[str]) -> int:
    """The size to decode at: the largest any of these stages (or the fingerprint) wants."""
    return max([FINGERPRINT_SIDE, *(_stages.stage_class(name).working_side for name in stages)])


def stage_signal(name: str, decoded: "_imaging.Decoded", *, query: bool = False) -> Any:
    """One stage's signal of a decoded image (in the stage's own form)."""
    compute = _stages.stage_class(name).compute
    parameters = _parameters(compute)
    kwargs: dict[str, Any] = {}
    if "full_size" in parameters:
        # Stages that report boxes need the original size, not the reduced one they see.
        kwargs["full_size"] = (decoded.width, decoded.height)
    if query and "query" in parameters:
        kwargs["query"] = True
    return compute(decoded.image, **kwargs)


@functools.lru_cache(maxsize=None)
def _parameters(function: Callable) -> frozenset[str]:
    return frozenset(inspect.signature(function).parameters)


def detail_signals(data: bytes, uri: str, settings: dict[str, Any]) -> dict[str, Any]:
    """How much real detail the image holds, and how hard it was compressed: the evidence that
    tells a genuine larger version from an upscale, and an original from a recompressed copy."""
    full = _imaging.decode(
        data,
        source=uri,
        working_side=origin.DETAIL_SIDE,
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
    )
    signals: dict[str, Any] = {"detail": round(origin.compute_detail(full.image), 4)}
    quality = origin.jpeg_quality(data)
    if quality is not None:
        signals["jpeg_quality"] = quality
    return signals


def analyse_safely(source: Any, settings: dict[str, Any], **kwargs: Any) -> Known | Analysed | Failed:
    """``analyse`` for batches: a bad source becomes a ``Failed`` with its reason."""
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        return analyse(source, settings, **kwargs)
    except PicoriginError as error:
        return Failed(label, str(error))
    except (OSError, ValueError, MemoryError) as error:  # unreadable file, odd decoder failure
        return Failed(label, f"{type(error).__name__}: {error}")


def decode(
    data: bytes, uri: str, settings: dict[str, Any], side: int = FINGERPRINT_SIDE
) -> "_imaging.Decoded":
    return _imaging.decode(
        data,
        source=uri,
        working_side=side,
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
    )


def _thumbnail(image, side: int) -> bytes | None:
    if side <= 0:
        return None
    thumb = image.copy()
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=80, optimize=True)
    return buffer.getvalue()
