"""Tests for picorigin._imaging: reading sources and decoding every kind of input, good and bad."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import io
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, features
from skimage import data

from picorigin._errors import (
    CorruptImage,
    ForbiddenAddress,
    ImageError,
    ImageTooLarge,
    UnsupportedFormat,
)
from picorigin._imaging import decode, expand_sources, read_source
from picorigin._settings import resolve_settings


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photo, (300, 451, 3) uint8: wider than tall, so rotations show in the shape."""
    return data.chelsea()


def encode(image: Image.Image | np.ndarray, fmt: str, **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def pixels(decoded) -> np.ndarray:
    return np.asarray(decoded.image, dtype=np.int16)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels but carries no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
            + chunk(b"IEND", b""))


def strip_jpeg_metadata(jpeg: bytes) -> bytes:
    """Rewrite a JPEG without its APPn (but Adobe APP14) and COM segments, as EXIF strippers do."""
    out, pos = [jpeg[:2]], 2
    while True:
        marker = jpeg[pos + 1]
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        if not (0xE0 <= marker <= 0xEF and marker != 0xEE or marker == 0xFE):
            out.append(jpeg[pos : pos + 2 + length])
        pos += 2 + length
        if marker == 0xDA:
            return b"".join(out) + jpeg[pos:]


# -- formats and colour modes ------------------------------------------------------------------


@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}),
    ("WEBP", {"lossless": True}),
    ("BMP", {}),
    ("TIFF", {}),
    ("TIFF", {"compression": "tiff_deflate"}),
])
def test_lossless_formats_decode_exactly(photo, fmt, options):
    decoded = decode(encode(photo, fmt, **options), working_side=None)
    assert decoded.format == fmt
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (451, 300)
    np.testing.assert_array_equal(np.asarray(decoded.image), photo)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"] + (["AVIF"] if features.check("avif") else []))
def test_lossy_formats_decode_close_to_original(photo, fmt):
    decoded = decode(encode(photo, fmt, quality=92), working_side=None)
    assert decoded.format == fmt
    assert mean_abs_diff(np.asarray(decoded.image), photo) < 4


def test_cmyk_jpeg_becomes_rgb(photo):
    # Pillow writes CMYK JPEGs the Adobe way (inverted, APP14 marker), as Photoshop does.
    jpeg = encode(Image.fromarray(photo).convert("CMYK"), "JPEG", quality=95)
    assert b"Adobe" in jpeg[:256]
    decoded = decode(jpeg, working_side=None)
    assert decoded.image.mode == "RGB"
    assert mean_abs_diff(np.asarray(decoded.image), photo) < 4


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_greyscale_is_scaled_to_8_bit(fmt):
    grey = (data.camera().astype(np.uint32) * 257).astype(np.uint16)
    encoded = encode(Image.fromarray(grey), fmt)
    assert Image.open(io.BytesIO(encoded)).mode.startswith("I;16")
    decoded = decode(encoded, working_side=None)
    expected = np.repeat(data.camera()[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(np.asarray(decoded.image), expected)


def test_32_bit_integer_tiff_is_scaled_by_its_range():
    grey = data.camera().astype(np.int32) * 257  # a 16-bit range held in mode I
    decoded = decode(encode(Image.fromarray(grey), "TIFF"), working_side=None)
    np.testing.assert_array_equal(np.asarray(decoded.image)[:, :, 0], data.camera())


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_and_bilevel_become_grey_rgb(photo, mode):
    source = Image.fromarray(photo).convert(mode)
    decoded = decode(encode(source, "PNG"), working_side=None)
    grey = np.asarray(source.convert("L"))
    np.testing.assert_array_equal(np.asarray(decoded.image), np.stack([grey] * 3, axis=2))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_composited_on_white(photo, mode):
    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    colour = np.asarray(Image.fromarray(photo).convert(mode[:-1]).convert("RGB"), dtype=float)
    source = Image.fromarray(np.dstack([photo, alpha])).convert(mode)
    decoded = decode(encode(source, "PNG"), working_side=None)
    a = alpha[:, :, None] / 255.0
    expected = colour * a + 255 * (1 - a)
    assert np.abs(np.asarray(decoded.image) - expected).max() <= 1.01
    assert (np.asarray(decoded.image)[:, 0] == 255).all()  # alpha 0: white


def test_palette_png_with_transparency(photo):
    palette_image = Image.fromarray(photo).quantize(64)
    indices = np.asarray(palette_image)
    palette = np.array(palette_image.getpalette()[: 64 * 3]).reshape(64, 3)
    # Index 0 fully transparent, index 1 half, the rest opaque.
    alphas = bytes([0, 128] + [255] * 62)
    decoded = decode(encode(palette_image, "PNG", transparency=alphas), working_side=None)
    a = np.frombuffer(alphas, np.uint8)[indices][:, :, None] / 255.0
    expected = palette[indices] * a + 255 * (1 - a)
    assert (indices == 0).any() and (indices == 1).any()
    assert np.abs(pixels(decoded) - expected).max() <= 1.01


def test_animated_gif_uses_first_frame(photo):
    first = Image.fromarray(photo).quantize(128)
    second = Image.fromarray(255 - photo).quantize(128)
    gif = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    decoded = decode(gif, working_side=None)
    assert decoded.format == "GIF"
    np.testing.assert_array_equal(np.asarray(decoded.image), np.asarray(first.convert("RGB")))


# Stored pixels for each EXIF orientation, written from the EXIF definitions of where the stored
# 0th row and column lie in the upright picture, so this does not reuse the code under test.
STORED = {
    1: lambda up: up,
    2: lambda up: up[:, ::-1],
    3: lambda up: up[::-1, ::-1],
    4: lambda up: up[::-1],
    5: lambda up: up.transpose(1, 0, 2),
    6: lambda up: np.rot90(up, 1),
    7: lambda up: up[::-1, ::-1].transpose(1, 0, 2),
    8: lambda up: np.rot90(up, -1),
}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_exif_orientation_gives_upright_pixels(photo, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = np.ascontiguousarray(STORED[orientation](photo))
    jpeg = encode(stored, "JPEG", quality=95, exif=exif)
    decoded = decode(jpeg, working_side=None)
    assert (decoded.width, decoded.height) == (451, 300)
    assert mean_abs_diff(np.asarray(decoded.image), photo) < 3
    small = decode(jpeg, working_side=64).image
    assert small.width > small.height


def test_disallowed_format_is_unsupported(photo):
    with pytest.raises(UnsupportedFormat):
        decode(encode(photo, "PCX"), source="x.pcx")


@pytest.mark.skipif(importlib.util.find_spec("pillow_heif") is not None,
                    reason="pillow-heif installed")
def test_heic_without_plugin_names_the_plugin():
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    with pytest.raises(UnsupportedFormat, match="pillow-heif"):
        decode(heic, source="photo.heic")


@pytest.mark.skipif(importlib.util.find_spec("pillow_heif") is None,
                    reason="pillow-heif not installed")
def test_heic_with_plugin_decodes(photo):
    import pillow_heif

    heic = pillow_heif.from_pillow(Image.fromarray(photo))
    buffer = io.BytesIO()
    heic.save(buffer, quality=95)
    decoded = decode(buffer.getvalue(), working_side=None)
    assert mean_abs_diff(np.asarray(decoded.image), photo) < 5


# -- reduced decoding --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def large_photo() -> np.ndarray:
    """1500 x 1000 RGB, the size of a typical web photo."""
    return np.asarray(Image.fromarray(data.astronaut()).resize((1500, 1000)))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("working_side", [128, 200, 512])
def test_reduced_decode_keeps_longer_side_in_range(large_photo, fmt, working_side):
    decoded = decode(encode(large_photo, fmt, quality=90), working_side=working_side)
    assert working_side <= max(decoded.image.size) <= 2 * working_side
    assert (decoded.width, decoded.height) == (1500, 1000)
    assert decoded.image.mode == "RGB"
    # The reduced picture is the full one, smaller.
    full = Image.fromarray(large_photo).resize(decoded.image.size, Image.Resampling.BOX)
    assert mean_abs_diff(np.asarray(decoded.image), np.asarray(full)) < 6


def test_small_image_is_not_reduced(photo):
    decoded = decode(encode(photo, "JPEG"), working_side=512)
    assert decoded.image.size == (451, 300)


def test_pixel_hash_does_not_depend_on_working_side(large_photo):
    for fmt in ("JPEG", "PNG"):
        encoded = encode(large_photo, fmt)
        hashes = {decode(encoded, working_side=side).pixel_sha256 for side in (128, 512, None)}
        assert len(hashes) == 1


# -- pixel hash --------------------------------------------------------------------------------


def test_jpeg_pixel_hash_ignores_metadata(photo):
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"
    tagged = encode(photo, "JPEG", quality=90, exif=exif, comment=b"a comment")
    stripped = strip_jpeg_metadata(tagged)
    assert stripped != tagged and b"Jane Doe" not in stripped
    np.testing.assert_array_equal(np.asarray(decode(tagged).image), np.asarray(decode(stripped).image))
    assert decode(tagged).pixel_sha256 == decode(stripped).pixel_sha256
    assert decode(tagged).metadata == {"creator": "Jane Doe", "creator_source": "exif:Artist"}


def test_jpeg_pixel_hash_differs_for_other_pixels(photo):
    first = decode(encode(photo, "JPEG", quality=90)).pixel_sha256
    assert decode(encode(photo, "JPEG", quality=89)).pixel_sha256 != first
    edited = photo.copy()
    edited[0, 0] = 255 - edited[0, 0]
    assert decode(encode(edited, "JPEG", quality=90)).pixel_sha256 != first


def test_jpeg_pixel_hash_counts_orientation(photo):
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated = decode(encode(photo, "JPEG", exif=exif)).pixel_sha256
    assert rotated != decode(encode(photo, "JPEG")).pixel_sha256


def test_png_pixel_hash_ignores_compression(photo):
    fast, small = encode(photo, "PNG", compress_level=1), encode(photo, "PNG", compress_level=9)
    assert fast != small
    assert decode(fast).pixel_sha256 == decode(small).pixel_sha256
    assert decode(fast).pixel_sha256 == decode(encode(photo, "BMP")).pixel_sha256
    assert decode(fast).pixel_sha256 != decode(encode(255 - photo, "PNG")).pixel_sha256


# -- bad input ---------------------------------------------------------------------------------


def test_truncated_jpeg_is_corrupt(large_photo):
    jpeg = encode(large_photo, "JPEG")
    for working_side in (None, 128):
        with pytest.raises(CorruptImage) as caught:
            decode(jpeg[: len(jpeg) // 2], source="cut.jpg", working_side=working_side)
        assert caught.value.source == "cut.jpg"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_corrupt(photo):
    png = encode(photo, "PNG")
    with pytest.raises(CorruptImage):
        decode(png[: len(png) // 2])


def test_empty_data_is_corrupt():
    with pytest.raises(CorruptImage, match="empty file"):
        decode(b"", source="empty.jpg")


def test_text_is_unsupported(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture\n")
    uri, data_ = read_source(path, resolve_settings())
    with pytest.raises(UnsupportedFormat) as caught:
        decode(data_, source=uri)
    assert caught.value.source == str(path)


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageTooLarge):
        decode(png_with_header(100_000, 100_000), source="bomb.png")


def test_pillow_bomb_warning_becomes_too_large():
    # 90 Mpx: over Pillow's warning threshold; the warning must neither leak (pytest -W error)
    # nor decide: max_pixels does.
    with pytest.raises(ImageTooLarge, match="max_pixels"):
        decode(png_with_header(10_000, 9_000), max_pixels=50_000_000)


def test_max_pixels_and_max_side_are_checked(photo):
    png = encode(photo, "PNG")
    with pytest.raises(ImageTooLarge, match="max_pixels"):
        decode(png, max_pixels=451 * 300 - 1)
    with pytest.raises(ImageTooLarge, match="max_side"):
        decode(png, max_side=450)
    assert decode(png, max_pixels=451 * 300, max_side=451).width == 451


def test_absurd_gif_dimensions_are_refused():
    gif = b"GIF89a" + struct.pack("<HH", 65_535, 65_535) + b"\x00\x00\x00" + b",\x00" * 8 + b";"
    with pytest.raises(ImageTooLarge):
        decode(gif)


# -- read_source -------------------------------------------------------------------------------


def test_read_source_path_str_and_relative(tmp_path, monkeypatch, photo):
    jpeg = encode(photo, "JPEG")
    (tmp_path / "a.jpg").write_bytes(jpeg)
    monkeypatch.chdir(tmp_path)
    for source in ("a.jpg", tmp_path / "a.jpg", str(tmp_path / "a.jpg")):
        assert read_source(source, resolve_settings()) == (str(tmp_path / "a.jpg"), jpeg)


def test_read_source_bytes():
    assert read_source(b"\xff\xd8abc", resolve_settings()) == ("<bytes>", b"\xff\xd8abc")


def test_read_source_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file") as caught:
        read_source(tmp_path / "gone.jpg", resolve_settings())
    assert type(caught.value) is ImageError
    assert caught.value.source == str(tmp_path / "gone.jpg")


def test_read_source_folder_and_fifo(tmp_path):
    with pytest.raises(ImageError, match="folder"):
        read_source(tmp_path, resolve_settings())
    os.mkfifo(tmp_path / "pipe.jpg")
    with pytest.raises(ImageError, match="not a regular file"):
        read_source(tmp_path / "pipe.jpg", resolve_settings())


def test_read_source_byte_cap(tmp_path):
    settings = resolve_settings({"max_bytes": 10})
    (tmp_path / "big.png").write_bytes(b"x" * 11)
    with pytest.raises(ImageTooLarge, match="max_bytes=10"):
        read_source(tmp_path / "big.png", settings)
    with pytest.raises(ImageTooLarge):
        read_source(b"x" * 11, settings)
    assert read_source(b"x" * 10, settings)[1] == b"x" * 10


@pytest.fixture
def served_folder(tmp_path):
    """A real HTTP server on 127.0.0.1 serving ``tmp_path``; yields its base URL."""
    handler = functools.partial(QuietFileHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


class QuietFileHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def test_read_source_url(tmp_path, served_folder, photo):
    jpeg = encode(photo, "JPEG")
    (tmp_path / "cat.jpg").write_bytes(jpeg)
    url = f"{served_folder}/cat.jpg"
    assert read_source(url, resolve_settings({"allow_private_urls": True})) == (url, jpeg)
    with pytest.raises(ForbiddenAddress):
        read_source(url, resolve_settings())


# -- expand_sources ----------------------------------------------------------------------------


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_expand_folder_recursively_sorted(tmp_path):
    for name in ["b.png", "a.JPG", "notes.txt", "sub/c.webp", "sub/deeper/d.tiff", "z/e.heic",
                 ".hidden/f.jpg", ".g.jpg", "sub/readme.md"]:
        touch(tmp_path / name)
    found = list(expand_sources([tmp_path]))
    assert found == [str(tmp_path / name) for name in
                     ["a.JPG", "b.png", "sub/c.webp", "sub/deeper/d.tiff", "z/e.heic"]]


def test_expand_list_file(tmp_path):
    touch(tmp_path / "pics" / "one.jpg")
    touch(tmp_path / "pics" / "album" / "two.png")
    touch(tmp_path / "elsewhere.gif")
    listing = tmp_path / "pics" / "list.txt"
    listing.write_text(
        "# my pictures\n"
        "\n"
        "one.jpg\n"
        "  https://example.org/x.jpg  \n"
        f"{tmp_path / 'elsewhere.gif'}\n"
        "album\n"
        "missing.jpg\n"
    )
    assert list(expand_sources([str(listing)])) == [
        str(tmp_path / "pics" / "one.jpg"),
        "https://example.org/x.jpg",
        str(tmp_path / "elsewhere.gif"),
        str(tmp_path / "pics" / "album" / "two.png"),
        str(tmp_path / "pics" / "missing.jpg"),
    ]


def test_expand_lists_that_include_each_other(tmp_path):
    touch(tmp_path / "a.jpg")
    (tmp_path / "first.txt").write_text("a.jpg\nsecond.txt\n")
    (tmp_path / "second.txt").write_text("first.txt\n")
    assert list(expand_sources([tmp_path / "first.txt"])) == [str(tmp_path / "a.jpg")]


def test_expand_keeps_missing_paths_urls_and_files(tmp_path):
    touch(tmp_path / "odd.name")
    args = ["no/such/thing.jpg", "http://example.org/a.png", str(tmp_path / "odd.name")]
    assert list(expand_sources(args)) == args
    with pytest.raises(ImageError, match="no such file"):
        read_source(args[0], resolve_settings())


def test_concurrent_decodes_leave_the_warning_filters_as_they_were(photo):
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    before = list(warnings.filters)
    data = encode(photo, "JPEG", quality=90)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: decode(data, working_side=128).width, range(64)))
    assert results == [photo.shape[1]] * 64
    assert warnings.filters == before
