"""Reading images safely: sources (paths, folders, list files, URLs, bytes) to bytes, bytes to RGB.

Every input is untrusted. Sizes are checked from the header before any pixel is decoded, only
the formats picorigin needs are opened (never, say, EPS, which runs Ghostscript), and whatever
Pillow raises or warns on bad data becomes one of the errors in ``_errors``.

Memory: a decode is refused before any pixel is decoded when the header says it would need more
than ``max_decode_bytes`` (:data:`DECODE_BUDGET`, 256 MiB) for the decoded pixels and their RGB
copy; :func:`decode_cost` is the estimate. JPEG is decoded at reduced size (1/2 to 1/8 in the
DCT domain), so its cost is that of the reduced image; PNG, GIF, WebP, TIFF, BMP and HEIF can
only be decoded whole. Measured peak of one decode above the process's baseline (ru_maxrss,
the largest admitted PNG of each kind): 8000 x 8000 RGB 288 MiB in 1.3 s, 7200 x 7200 grey
292 MiB, 5700 x 5700 RGBA 292 MiB, 6000 x 6000 16-bit 250 MiB in 0.9 s (903 MiB and 3.7 s
before 16-bit conversion went by strips); so about 300 MiB per request at most. A 10000 x
10000 16-bit PNG (668 MiB estimated) is refused in milliseconds. Decodes run side by side in
threads (no process-wide lock), so concurrent requests' peaks add up.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import logging
import os
import re
import stat
import struct
import threading
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from ._errors import CorruptImage, ImageError, ImageTooLarge, UnsupportedFormat
from ._fetch import fetch
from ._metadata import iter_jpeg_segments, read_metadata
from ._settings import SETTINGS, resolve_settings

__all__ = ["DECODE_BUDGET", "IMAGE_EXTENSIONS", "LIST_EXTENSIONS", "Decoded", "decode",
           "decode_cost", "expand_sources", "read_source"]

logger = logging.getLogger("picorigin")

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .png .gif .webp .bmp .tif .tiff .avif .heic .heif".split()
)
"""File name endings picked up when a folder is indexed (compared in lower case)."""

LIST_EXTENSIONS = frozenset(".txt .lst .list".split())
"""File name endings of list files: one path or URL a line, ``#`` comments."""

# Pillow format ids opened; "HEIF" (pillow-heif) and "AVIF" only once a decoder is registered.
_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF")
_PLUGINS = {"HEIF": ("pillow_heif", "pillow-heif"), "AVIF": ("pillow_avif", "pillow-avif-plugin")}
_HEIF_BRANDS = frozenset([b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"])
_AVIF_BRANDS = frozenset([b"avif", b"avis"])

# What Pillow's decoders raise on damaged data besides OSError; none of it is a bug of ours.
_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                   struct.error, ZeroDivisionError)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_ORIENTATION = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset(["RGBA", "LA", "PA", "RGBa"])
_WIDE_MODES = frozenset(["I;16", "I;16B", "I;16L", "I;16N", "I", "F"])
# JPEG segments that describe the picture rather than encode it: APP0..APP15 and COM. APP14
# (Adobe) is kept, because its colour-transform flag changes the decoded colours.
_JPEG_METADATA_MARKERS = frozenset([*range(0xE0, 0xEE), 0xEF, 0xFE])

_DEFAULTS = {setting.name: setting.default for setting in SETTINGS}

DECODE_BUDGET = 256 * 2**20
"""Most memory one decode may need, in bytes, as :func:`decode_cost` estimates it from the
header. 256 MiB admits a 64 MP RGB PNG or a 50 MP grey or palette one, and any JPEG up to
``max_pixels`` (decoded reduced); it refuses uploads far dearer than their size: a 194 KB
10000 x 10000 16-bit PNG (700 MB decoded, 3 GB and 9 s per search before), or its 12 KB
1-bit twin (500 MB, 3 s)."""

# Bytes Pillow keeps per pixel, by mode: 1 for one-byte modes, 2 for 16-bit grey, 4 for every
# other (multi-band modes, RGB included, are stored padded to 32 bits).
_STORED_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Pixels converted at a time from 16/32-bit and float modes: bounds the float temporaries.
_STRIP_PIXELS = 1 << 22


@dataclass(frozen=True)
class Decoded:
    """One decoded image, ready for the feature stages.

    Attributes
    ----------
    image : PIL.Image.Image
        Mode ``RGB``, EXIF orientation applied; when the original's longer side exceeds the
        ``working_side`` asked for, cheaply reduced so its longer side lies in
        ``[working_side, 2 * working_side]``, else full size. Shape (height, width, 3) as an array.
    width, height : int
        The full image's size after orientation.
    format : str
        ``"JPEG"``, ``"PNG"``, ``"GIF"``, ``"WEBP"``, ``"BMP"``, ``"TIFF"``, ``"AVIF"``, ``"HEIF"``.
    pixel_sha256 : str
        Hex digest that is equal for files whose decoded pixels are equal; for JPEG the hash of
        every segment but metadata, so stripping EXIF keeps it.
    metadata : dict
        See :func:`picorigin._metadata.read_metadata`.
    """

    image: Image.Image
    width: int
    height: int
    format: str
    pixel_sha256: str
    metadata: dict[str, str | bool]


def read_source(
    source: str | os.PathLike[str] | bytes, settings: Mapping[str, Any] | None = None
) -> tuple[str, bytes]:
    """Read one source's bytes.

    Parameters
    ----------
    source : str, os.PathLike or bytes
        A file path, an ``http(s)://`` URL, or the image's bytes.
    settings : mapping, optional
        As from :func:`picorigin._settings.resolve_settings`: ``max_bytes``, ``fetch_timeout``,
        ``fetch_max_redirects`` and ``allow_private_urls`` are used. Defaults to resolving them.

    Returns
    -------
    uri : str
        The absolute path, the URL as given, or ``"<bytes>"``.
    data : bytes

    Raises
    ------
    ImageError
        No such file, a folder, not a regular file, unreadable.
    ImageTooLarge
        More than ``max_bytes``.
    FetchError
        A URL that could not be fetched (see :func:`picorigin._fetch.fetch`).
    """
    settings = resolve_settings() if settings is None else settings
    max_bytes = settings["max_bytes"]
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check_byte_count(len(data), max_bytes, "<bytes>")
        return "<bytes>", data
    if isinstance(source, str) and _URL.match(source):
        _, body, _ = fetch(
            source,
            timeout=settings["fetch_timeout"],
            max_bytes=max_bytes,
            max_redirects=settings["fetch_max_redirects"],
            allow_private=settings["allow_private_urls"],
        )
        return source, body
    return _read_file(source, max_bytes)


def expand_sources(args: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Turn command-line style arguments into single image sources, in a stable order.

    Parameters
    ----------
    args : iterable of str or os.PathLike
        Files, folders (searched recursively, in sorted order, for names ending in
        :data:`IMAGE_EXTENSIONS`; hidden names starting with ``.`` are skipped), list files
        (:data:`LIST_EXTENSIONS`: one path or URL a line, blank lines and ``#`` comments
        skipped, relative paths taken from the list's folder; entries expand in turn) and URLs.

    Yields
    ------
    str
        A file path or URL. A path that does not exist, a folder that cannot be listed and a
        list file that cannot be read are yielded too, so that reading them reports the error
        rather than losing it.
    """
    seen_lists: set[str] = set()
    for arg in args:
        yield from _expand(os.fspath(arg), seen_lists)


def decode(
    data: bytes,
    *,
    source: str = "<bytes>",
    working_side: int | None = 512,
    max_pixels: int = _DEFAULTS["max_pixels"],
    max_side: int = _DEFAULTS["max_side"],
    max_decode_bytes: int = DECODE_BUDGET,
) -> Decoded:
    """Decode image bytes into one working form: an upright RGB uint8 image.

    Parameters
    ----------
    data : bytes
        The image file's bytes.
    source : str
        Where they came from; carried by every error.
    working_side : int or None
        The longer side the caller needs. A larger image is reduced while decoding (JPEG: in
        the DCT domain, the main speed lever) or right after. None decodes at full size.
    max_pixels, max_side : int
        Images whose header states more pixels, or a longer side, are refused before decoding.
        Pillow's own limit applies too (it refuses over twice ``Image.MAX_IMAGE_PIXELS``, about
        179 million pixels) and is reported the same way.
    max_decode_bytes : int
        Images whose decode would need more memory (:func:`decode_cost`, after JPEG's reduced
        decoding is chosen) are refused before decoding.

    Returns
    -------
    Decoded

    Raises
    ------
    UnsupportedFormat
        Not an image, a format not read here, or AVIF/HEIC without its plugin installed.
    CorruptImage
        Empty, truncated or damaged data.
    ImageTooLarge
        Over ``max_pixels``, ``max_side`` or ``max_decode_bytes``.
    """
    if not data:
        raise CorruptImage("empty file (0 bytes)", source=source)
    with _pillow_warnings_logged(source):
        image = _open(data, source)
        width, height = image.size
        _check_dimensions(width, height, max_pixels, max_side, source)
        is_jpeg = image.format in ("JPEG", "MPO")
        if is_jpeg and working_side and max(width, height) > working_side:
            # draft() takes the largest DCT scale (1/2, 1/4, 1/8) keeping both sides >= the
            # request; asking 1 px of the shorter side lets the longer one alone decide.
            image.draft("RGB", (working_side, 1) if width >= height else (1, working_side))
        _check_cost(image, max_decode_bytes, source)
        try:
            image.load()
            metadata = read_metadata(image, data)
            orientation = _orientation(image)
            rgb = _to_rgb(image, source)
        except _DECODER_ERRORS as exc:
            raise CorruptImage(f"damaged or truncated {image.format} data: {exc}",
                               source=source) from None
    if orientation in _TRANSPOSE:
        rgb = rgb.transpose(_TRANSPOSE[orientation])
    if orientation >= 5:
        width, height = height, width
    pixel_sha256 = _jpeg_sha256(data, orientation) if is_jpeg else _rgb_sha256(rgb)
    if working_side and max(rgb.size) >= 2 * working_side:
        rgb = rgb.reduce(max(rgb.size) // working_side)
    return Decoded(
        image=rgb,
        width=width,
        height=height,
        format="JPEG" if is_jpeg else str(image.format),
        pixel_sha256=pixel_sha256,
        metadata=metadata,
    )


def decode_cost(mode: str, width: int, height: int, *, transparency: bool = False) -> int:
    """Bytes of memory decoding an image to RGB needs at its peak, estimated from its header.

    Parameters
    ----------
    mode : str
        Pillow's mode of the decoded pixels (``"RGB"``, ``"I;16"``, ``"1"``, ...).
    width, height : int
        The size decoded (for JPEG, after the reduction chosen by ``draft``).
    transparency : bool
        A palette or grey image with a transparent colour: composited through RGBA.

    Returns
    -------
    int
        Decoded pixels, plus the RGB copy (4 bytes a pixel) when the mode is not RGB, plus an
        8-bit grey step for 16/32-bit and float modes and an RGBA step for transparency.
    """
    stored = _STORED_BYTES.get(mode, 4)
    if mode == "RGB":
        return width * height * stored
    extra = 4 + (1 if mode in _WIDE_MODES else 0)
    if mode != "RGBA" and (mode in _ALPHA_MODES or transparency):
        extra += 4  # the RGBA image composited over white
    return width * height * (stored + extra)


def _check_cost(image: Image.Image, budget: int, source: str) -> None:
    width, height = image.size
    cost = decode_cost(image.mode, width, height, transparency="transparency" in image.info)
    if cost > budget:
        raise ImageTooLarge(
            f"{width}x{height} {image.mode} {image.format} image: decoding it would take about "
            f"{cost / 2**20:,.0f} MiB, more than the {budget / 2**20:,.0f} MiB allowed per image "
            "(only JPEG can be decoded at reduced size); send a smaller version or a JPEG",
            source=source,
        )


def _read_file(source: str | os.PathLike[str], max_bytes: int) -> tuple[str, bytes]:
    path = os.path.abspath(os.path.expanduser(os.fspath(source)))
    try:
        # stat before open: opening a FIFO or device could block or never end.
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            try:
                os.scandir(path).close()
            except OSError as error:  # what indexing a folder tree yields for such a folder
                raise ImageError(f"cannot list this folder: {error.strerror or error}",
                                 source=path) from None
            raise ImageError("is a folder, not an image file (index it to read the images in it)",
                             source=path)
        if not stat.S_ISREG(mode):
            raise ImageError("not a regular file", source=path)
        with open(path, "rb") as file:
            _check_byte_count(os.fstat(file.fileno()).st_size, max_bytes, path)
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise ImageError("no such file", source=path) from None
    except PermissionError:
        raise ImageError("permission denied", source=path) from None
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}", source=path) from None
    _check_byte_count(len(data), max_bytes, path)  # the file may have grown since fstat
    return path, data


def _check_byte_count(count: int, max_bytes: int, source: str) -> None:
    if count > max_bytes:
        raise ImageTooLarge(f"{count} bytes, more than max_bytes={max_bytes}", source=source)


def _expand(source: str, seen_lists: set[str]) -> Iterator[str]:
    if _URL.match(source):
        yield source
        return
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        yield from _walk(path)
    elif os.path.isfile(path) and os.path.splitext(path)[1].lower() in LIST_EXTENSIONS:
        real = os.path.realpath(path)
        if real in seen_lists:  # listed twice, or lists that include each other
            return
        seen_lists.add(real)
        try:
            entries = list(_read_list(path))
        except OSError:  # unreadable: yielded, so that reading it reports why
            yield source
            return
        for entry in entries:
            yield from _expand(entry, seen_lists)
    else:
        yield source


def _walk(folder: str) -> Iterator[str]:
    # A folder that cannot be listed is yielded itself: reading it then fails with the reason,
    # so the index reports it as a failure instead of silently indexing less.
    unlistable: list[OSError] = []
    for parent, folders, files in os.walk(folder, onerror=unlistable.append):
        yield from (error.filename for error in unlistable)
        unlistable.clear()
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(parent, name)
    yield from (error.filename for error in unlistable)


def _read_list(path: str) -> Iterator[str]:
    folder = os.path.dirname(path)
    with open(path, encoding="utf-8-sig", errors="replace") as lines:
        for line in lines:
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            if not _URL.match(entry):
                entry = os.path.join(folder, os.path.expanduser(entry))
            yield entry


# warnings.catch_warnings swaps process-wide state (Python < 3.14), so two threads each entering
# it could restore each other's filters. Instead the first decode in flight installs one logging
# hook and the last one out restores what was there; in between, a warning is logged with the
# source its own thread is decoding, and warnings of threads not decoding go where they went.
_HOOK_LOCK = threading.Lock()
_HOOK: dict[str, Any] = {"users": 0, "saved": None}
_DECODING = threading.local()


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    source = getattr(_DECODING, "source", None)
    if source is not None:
        logger.debug("%s: %s", source, message)
    else:
        _HOOK["saved"]._showwarning(message, category, filename, lineno, file, line)


@contextlib.contextmanager
def _pillow_warnings_logged(source: str) -> Iterator[None]:
    """Log, rather than emit, what Pillow warns about untrusted input (bombs, bad EXIF, ...)."""
    with _HOOK_LOCK:
        if _HOOK["users"] == 0:
            saved = warnings.catch_warnings()
            saved.__enter__()
            warnings.simplefilter("always")  # also over an "error" filter: bad input is no bug
            warnings.showwarning = _log_warning
            _HOOK["saved"] = saved
        _HOOK["users"] += 1
    outer, _DECODING.source = getattr(_DECODING, "source", None), source
    try:
        yield
    finally:
        _DECODING.source = outer
        with _HOOK_LOCK:
            _HOOK["users"] -= 1
            if _HOOK["users"] == 0:
                _HOOK.pop("saved").__exit__(None, None, None)
                _HOOK["saved"] = None


def _open(data: bytes, source: str) -> Image.Image:
    try:
        return _open_pillow(data, source)
    except UnidentifiedImageError:
        kind = _heif_kind(data)
        if kind is None:
            raise UnsupportedFormat("not an image, or in a format picorigin does not read",
                                    source=source) from None
        if not _register_plugin(kind):
            package = _PLUGINS[kind][1]
            raise UnsupportedFormat(
                f"{kind} image: install the Pillow plugin {package} (pip install {package})",
                source=source,
            ) from None
    try:
        return _open_pillow(data, source)
    except UnidentifiedImageError:
        raise UnsupportedFormat(f"{kind} image its plugin cannot read", source=source) from None


def _open_pillow(data: bytes, source: str) -> Image.Image:
    Image.init()
    try:
        return Image.open(io.BytesIO(data), formats=[f for f in _FORMATS if f in Image.OPEN])
    except UnidentifiedImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"refused as a decompression bomb: {exc}", source=source) from None
    except _DECODER_ERRORS as exc:
        raise CorruptImage(f"unreadable image header: {exc}", source=source) from None


def _heif_kind(data: bytes) -> str | None:
    """``"AVIF"`` or ``"HEIF"`` when ``data`` starts with an ISO-BMFF ``ftyp`` box naming one."""
    if data[4:8] != b"ftyp":
        return None
    box_end = min(int.from_bytes(data[:4], "big"), 256)
    brands = {data[i : i + 4] for i in range(8, box_end - 3, 4)}
    if brands & _AVIF_BRANDS:
        return "AVIF"
    return "HEIF" if brands & _HEIF_BRANDS else None


@functools.cache
def _register_plugin(kind: str) -> bool:
    """Import the plugin for ``kind`` on first need; whether a decoder is now registered."""
    module_name, _ = _PLUGINS[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    if kind == "HEIF":
        module.register_heif_opener()  # pillow_avif registers itself on import
    return True


def _check_dimensions(width: int, height: int, max_pixels: int, max_side: int,
                      source: str) -> None:
    if width <= 0 or height <= 0:
        raise CorruptImage(f"header states an empty image ({width}x{height})", source=source)
    if max(width, height) > max_side:
        raise ImageTooLarge(f"{width}x{height} pixels: a side is longer than max_side={max_side}",
                            source=source)
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{width}x{height} = {width * height} pixels, more than max_pixels={max_pixels}",
            source=source,
        )


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 (upright) to 8; 1 when absent or invalid."""
    try:
        value = image.getexif().get(_ORIENTATION)
    except _DECODER_ERRORS:  # damaged EXIF costs the orientation, not the image
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(image: Image.Image, source: str) -> Image.Image:
    """Convert any decoded mode to RGB uint8; transparency is composited over white."""
    if image.mode in _WIDE_MODES:
        image = _to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba)  # an RGBA mask pastes through its alpha, with no copy of it
        return flat
    if image.mode == "RGB":
        return image  # convert() would copy, which costs as much as a reduced JPEG decode
    try:
        # CMYK: Pillow already reads JPEG CMYK as Adobe-inverted, so this gives plain RGB.
        return image.convert("RGB")
    except ValueError:
        raise UnsupportedFormat(f"colour mode {image.mode} is not supported",
                                source=source) from None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Map 16-bit, 32-bit integer and float greyscale to 8-bit ``L``, a strip of rows at a time
    (whole, the float64 temporaries took 3 GB for a 10000 x 10000 16-bit image)."""
    if image.mode.startswith("I;16"):
        scale = 1 / 257
    else:
        # Modes I and F carry no range; judge it from the values (1.0, 255 or 65535 white).
        peak = float(image.getextrema()[1])
        if image.mode == "F" and peak <= 1.0:
            scale = 255.0
        elif peak <= 255:
            scale = 1.0
        elif peak <= 65535:
            scale = 1 / 257
        else:
            scale = 255 / peak
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        strip = np.asarray(image.crop((0, top, width, min(height, top + rows))), np.float64)
        np.clip(np.rint(strip * scale), 0, 255, out=strip)
        out[top : top + len(strip)] = strip
    return Image.fromarray(out)


def _jpeg_sha256(data: bytes, orientation: int) -> str:
    """Hash a JPEG's coded picture (tables, frame, scans) but none of its metadata segments."""
    digest = hashlib.sha256(b"JPEG")
    view = memoryview(data)
    scan_start = None
    for marker, start, end in iter_jpeg_segments(data):
        if marker not in _JPEG_METADATA_MARKERS:
            digest.update(view[start:end])
        if marker == 0xDA:
            scan_start = end
    if scan_start is None:  # segments Pillow decoded but we could not walk: hash the file
        return hashlib.sha256(data).hexdigest()
    # Entropy-coded data never holds FF D9 (a coded FF is followed by 00 or RSTn), so the first
    # one is the end of image; what follows (MPO's other pictures, trailers) is not this picture.
    end_of_image = data.find(b"\xff\xd9", scan_start)
    digest.update(view[scan_start : end_of_image + 2 if end_of_image >= 0 else len(data)])
    if orientation != 1:  # the upright pixels differ, so the hash must too
        digest.update(b"orientation %d" % orientation)
    return digest.hexdigest()


def _rgb_sha256(rgb: Image.Image) -> str:
    digest = hashlib.sha256(b"RGB %d %d\n" % rgb.size)
    width, height = rgb.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):  # strips: tobytes() of the whole would copy it whole
        digest.update(rgb.crop((0, top, width, min(height, top + rows))).tobytes())
    return digest.hexdigest()
