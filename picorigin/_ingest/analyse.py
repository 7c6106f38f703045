"""Turning one source into everything the catalog needs: read, hash, decode once, compute.

Runs anywhere (this process, a local pool, a Dask worker), so it takes and returns plain
picklable data, and never raises for a bad source in a batch (``analyse_safely``,
``analyse_batch``): the failure is returned with its reason, and the rest of the batch goes on.
Every stage's signal, the fingerprint's included, is computed through the one ``Stage.compute``
signature.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .. import _imaging, _stages
from .._errors import PicoriginError
from .._features import fingerprint
from .._provenance import enlarged, origin

__all__ = [
    "BATCH",
    "FINGERPRINT_SIDE",
    "analyse",
    "analyse_batch",
    "analyse_safely",
    "decode",
    "file_stat",
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
    """Everything computed for a new image, ready for the catalog: ``signals`` holds each
    stage's signal by name (``fingerprint`` always)."""

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
    settings: Mapping[str, Any],
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
    size = (decoded.width, decoded.height)
    signals = {name: _stages.stage_class(name).compute(decoded.image, size)
               for name in ("fingerprint", *stages) if name not in defer}
    code = signals["fingerprint"]
    record = {
        "sha256": sha256,
        "pixel_sha256": decoded.pixel_sha256,
        "width": decoded.width,
        "height": decoded.height,
        "format": decoded.format,
        "byte_size": len(data),
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
    settings: Mapping[str, Any],
    *,
    known: Callable[[str], int | None] | None = None,
    stages: tuple[str, ...] = (),
) -> list[Known | Analysed | Failed]:
    """``analyse_safely`` for several sources; each stage's ``compute_batch`` runs once for all
    of them (the deep network: about half the cost per image of one call each)."""
    batched = tuple(stages)
    results = [
        analyse_safely(source, settings, known=known, stages=stages, defer=batched)
        for source in sources
    ]
    waiting = [r for r in results if isinstance(r, Analysed) and r.pending is not None]
    for name in batched:
        if not waiting:
            break
        try:
            signals = _stages.stage_class(name).compute_batch(
                [r.pending.image for r in waiting],
                [(r.pending.width, r.pending.height) for r in waiting])
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
    return max(_stages.stage_class(name).working_side for name in ("fingerprint", *stages))


def detail_signals(data: bytes, uri: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The traces an enlargement leaves (``enlarged.measure``, on the full-size pixels) and how
    hard the file was compressed: the evidence that tells a genuine larger version from an
    upscale, and an original from a recompressed copy."""
    signals: dict[str, Any] = {}
    full = _imaging.decode(
        data,
        source=uri,
        working_side=enlarged.MAX_SIDE,  # a larger image is reduced: then nothing is measured
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
        max_decode_bytes=settings["max_decode_bytes"],
    )
    if max(full.image.size) == max(full.width, full.height):
        signals.update(enlarged.measure(full.image))
    quality = origin.jpeg_quality(data)
    if quality is not None:
        signals["jpeg_quality"] = quality
    return signals


def analyse_safely(source: Any, settings: Mapping[str, Any], **kwargs: Any) -> Known | Analysed | Failed:
    """``analyse`` for batches: a bad source becomes a ``Failed`` with its reason."""
    label = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        return analyse(source, settings, **kwargs)
    except PicoriginError as error:
        return Failed(label, str(error))
    except Exception as error:  # noqa: BLE001 - one bad file must never stop a batch
        # An unreadable file, an odd decoder or OpenCV failure: reported with the rest.
        return Failed(label, f"{type(error).__name__}: {error}")


def decode(
    data: bytes, uri: str, settings: Mapping[str, Any], side: int = FINGERPRINT_SIDE
) -> "_imaging.Decoded":
    return _imaging.decode(
        data,
        source=uri,
        working_side=side,
        max_pixels=settings["max_pixels"],
        max_side=settings["max_side"],
        max_decode_bytes=settings["max_decode_bytes"],
    )


def _thumbnail(image, side: int) -> bytes | None:
    if side <= 0:
        return None
    thumb = image.copy()
    thumb.thumbnail((side, side))
    buffer = io.BytesIO()
    thumb.save(buffer, "JPEG", quality=80, optimize=True)
    return buffer.getvalue()
