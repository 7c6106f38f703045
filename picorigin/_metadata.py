"""Provenance metadata (EXIF, IPTC, XMP, C2PA) read from an image file's non-pixel parts.

Only text the file itself states is returned; nothing is guessed or fetched. Earlier sources
win: EXIF, then IPTC, then XMP fill only the keys still missing.
"""

from __future__ import annotations

import logging
import re
import struct
import xml.etree.ElementTree as ElementTree
from typing import Iterator

from PIL import Image, IptcImagePlugin

__all__ = ["iter_jpeg_segments", "read_metadata"]

logger = logging.getLogger("picorigin")

# EXIF tag numbers (TIFF/EXIF 2.32).
_EXIF_IFD = 0x8769
_EXIF_TEXT = {0x013B: "creator", 0x8298: "copyright", 0x0131: "software", 0x010E: "description"}
_DATE_TIME, _DATE_TIME_ORIGINAL, _MAKE, _MODEL = 0x0132, 0x9003, 0x010F, 0x0110

# IPTC IIM (record 2) datasets.
_IPTC_TEXT = {(2, 80): "creator", (2, 110): "credit", (2, 116): "copyright", (2, 5): "title"}

_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_DC = "{http://purl.org/dc/elements/1.1/}"
_PHOTOSHOP = "{http://ns.adobe.com/photoshop/1.0/}"
_XMP_RIGHTS = "{http://ns.adobe.com/xap/1.0/rights/}"
_PLUS = "{http://ns.useplus.org/ldf/xmp/1.0/}"
_IPTC_CORE = "{http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/}"
_XMP_PROPERTIES = {
    f"{_DC}creator": "creator",
    f"{_DC}rights": "copyright",
    f"{_PHOTOSHOP}Credit": "credit",
    f"{_DC}title": "title",
    f"{_PHOTOSHOP}DateCreated": "date_taken",
    # IPTC Photo Metadata's rights: the licence (Web Statement of Rights) and usage terms.
    f"{_XMP_RIGHTS}WebStatement": "web_statement",
    f"{_XMP_RIGHTS}UsageTerms": "usage_terms",
}
# Structures: (property, {field: key}) read from each item of the property's list.
_XMP_STRUCTURES = (
    (f"{_PLUS}Licensor", {f"{_PLUS}LicensorName": "licensor",
                          f"{_PLUS}LicensorURL": "licensor_url"}),
    (f"{_IPTC_CORE}CreatorContactInfo", {f"{_IPTC_CORE}CiEmailWork": "creator_contact",
                                          f"{_IPTC_CORE}CiUrlWork": "creator_contact"}),
)
# Formats whose XMP Pillow puts in ``info``; others (GIF, HEIF, ...) are searched byte by byte.
_XMP_EXPOSED = frozenset(["JPEG", "MPO", "PNG", "WEBP", "TIFF", "AVIF"])
# The packet's root: x:xmpmeta, x:xapmeta from old writers, or a bare rdf:RDF.
_XMP_PACKET = re.compile(rb"<(x:xmpmeta|x:xapmeta|rdf:RDF)[\s>].*?</\1>", re.DOTALL)

# Markers that stand alone, without a length field: TEM and RST0..RST7.
_STANDALONE_MARKERS = frozenset([0x01, *range(0xD0, 0xD8)])
_SOS, _APP11 = 0xDA, 0xEB
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_metadata(image: Image.Image, data: bytes) -> dict[str, str | bool]:
    """Return the provenance metadata an image file states about itself.

    Parameters
    ----------
    image : PIL.Image.Image
        The file opened with Pillow (and loaded, so PNG chunks after the pixels are seen).
    data : bytes
        The file's bytes, searched for XMP and C2PA when Pillow does not expose them.

    Returns
    -------
    dict
        Keys among ``creator``, ``copyright``, ``credit``, ``date_taken``, ``camera``,
        ``software``, ``title``, ``description``, the XMP rights fields ``web_statement``
        (the licence URL), ``usage_terms``, ``licensor``, ``licensor_url`` (where to acquire
        a licence) and ``creator_contact`` (e-mail; URL) (str, stripped, non-empty) and ``c2pa``
        (``True`` when a C2PA manifest is embedded). Only keys present in the file appear.
        The claims of credit and rights come with ``<key>_source``, the field the claim was
        read from (``"exif:Artist"``, ``"iptc:By-line"``, ``"xmp:dc:creator"``,
        ``"xmp:plus:Licensor"``, ...).
    """
    found: dict[str, str | bool] = {}
    for reader in (_exif, _iptc, _xmp):
        try:
            fields = reader(image, data)
        except Exception as exc:  # noqa: BLE001 - damaged metadata must not cost the image
            logger.debug("skipping unreadable %s metadata: %s", reader.__name__[1:], exc)
            continue
        for key, value in fields.items():
            if value and key not in found:
                found[key] = value
                if (reader, key) in _SOURCES:
                    found[f"{key}_source"] = _SOURCES[reader, key]
    if _has_c2pa(data):
        found["c2pa"] = True
    return found


def iter_jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """Yield the marker segments of a JPEG up to and including its first SOS (start of scan).

    Parameters
    ----------
    data : bytes
        A JPEG file, starting with SOI (``FF D8``).

    Yields
    ------
    marker : int
        The marker's second byte (``0xE1`` for APP1, ``0xDA`` for SOS, ...).
    start, end : int
        ``data[start:end]`` is the whole segment, marker bytes included.
        Malformed or truncated data ends the iteration quietly.
    """
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            yield marker, pos, pos + 2
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        end = pos + 2 + length
        if length < 2 or end > len(data):
            return
        yield marker, pos, end
        if marker == _SOS:
            return
        pos = end


def _text(value: object) -> str:
    """Decode one metadata value to clean text ("" when there is none)."""
    if isinstance(value, (list, tuple)):
        return "; ".join(filter(None, (_text(item) for item in value)))
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    if not isinstance(value, str):
        return ""
    # EXIF Copyright holds "photographer\0editor"; other fields may be NUL-padded.
    parts = (part.strip() for part in value.split("\x00"))
    return "; ".join(part for part in parts if part)


def _exif(image: Image.Image, data: bytes) -> dict[str, str]:
    exif = image.getexif()
    fields = {key: _text(exif.get(tag)) for tag, key in _EXIF_TEXT.items()}
    exif_ifd = exif.get_ifd(_EXIF_IFD)
    fields["date_taken"] = _text(exif_ifd.get(_DATE_TIME_ORIGINAL)) or _text(exif.get(_DATE_TIME))
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    # Most cameras repeat the make in the model ("Canon" + "Canon EOS R5").
    fields["camera"] = model if model.lower().startswith(make.lower()) else f"{make} {model}".strip()
    return fields


def _iptc(image: Image.Image, data: bytes) -> dict[str, str]:
    # Pillow reads IPTC from JPEG (Photoshop APP13) and TIFF; other formats give None.
    info = IptcImagePlugin.getiptcinfo(image) or {}
    return {key: _text(info.get(dataset)) for dataset, key in _IPTC_TEXT.items()}


def _xmp(image: Image.Image, data: bytes) -> dict[str, str]:
    packet = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if isinstance(packet, str):
        packet = packet.encode("utf-8")
    if not packet and image.format not in _XMP_EXPOSED:
        packet = data  # ~1 ms a megabyte, so only where Pillow would not have found it
    match = _XMP_PACKET.search(packet or b"")
    if match is None:
        return {}
    xml = match.group()
    # A DTD is the one way XML reaches outside itself (external entities) or blows up
    # (entity expansion); XMP never needs one, so a packet with a DTD is not read at all.
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        logger.debug("ignoring an XMP packet that declares a DTD")
        return {}
    fields: dict[str, str] = {}
    for description in ElementTree.fromstring(xml).iter(f"{_RDF}Description"):
        for name, key in _XMP_PROPERTIES.items():
            value = description.get(name)
            element = description.find(name)
            if not value and element is not None:
                value = _xmp_value(element)
            if value and value.strip() and key not in fields:
                fields[key] = value.strip()
        for name, parts in _XMP_STRUCTURES:
            element = description.find(name)
            if element is None:
                continue
            found: dict[str, list[str]] = {}
            for item in _xmp_items(element):
                for part, key in parts.items():
                    if (value := _xmp_field(item, part)):
                        found.setdefault(key, []).append(value)
            for key, values in found.items():
                fields.setdefault(key, "; ".join(dict.fromkeys(values)))
    return fields


def _xmp_items(element: ElementTree.Element) -> list[ElementTree.Element]:
    """The structures a property holds: each ``rdf:li`` of a list, or the property itself."""
    container = next(iter(element), None)
    if container is not None and container.tag in (f"{_RDF}Seq", f"{_RDF}Bag", f"{_RDF}Alt"):
        return container.findall(f"{_RDF}li")
    return [element]


def _xmp_field(structure: ElementTree.Element, name: str) -> str:
    """One field of a structure, written as an attribute, a child element, or either of those
    inside a nested ``rdf:Description``."""
    for node in (structure, structure.find(f"{_RDF}Description")):
        if node is None:
            continue
        value = node.get(name)
        child = node.find(name)
        if not value and child is not None:
            value = _xmp_value(child)
        if value and value.strip():
            return value.strip()
    return ""


def _xmp_value(element: ElementTree.Element) -> str:
    """The text of a simple property, the default of an ``rdf:Alt``, the items of a list."""
    container = next(iter(element), None)
    if container is None:
        return element.text or ""
    items = container.findall(f"{_RDF}li")
    if container.tag == f"{_RDF}Alt":
        default = [item for item in items if item.get(_XML_LANG) == "x-default"]
        items = (default or items)[:1]
    return "; ".join(text.strip() for item in items if (text := item.text) and text.strip())


_SOURCES = {
    (_exif, "creator"): "exif:Artist",
    (_exif, "copyright"): "exif:Copyright",
    (_iptc, "creator"): "iptc:By-line",
    (_iptc, "credit"): "iptc:Credit",
    (_iptc, "copyright"): "iptc:CopyrightNotice",
    (_xmp, "creator"): "xmp:dc:creator",
    (_xmp, "copyright"): "xmp:dc:rights",
    (_xmp, "credit"): "xmp:photoshop:Credit",
    (_xmp, "web_statement"): "xmp:xmpRights:WebStatement",
    (_xmp, "usage_terms"): "xmp:xmpRights:UsageTerms",
    (_xmp, "licensor"): "xmp:plus:Licensor",
    (_xmp, "licensor_url"): "xmp:plus:LicensorURL",
    (_xmp, "creator_contact"): "xmp:Iptc4xmpCore:CreatorContactInfo",
}


def _has_c2pa(data: bytes) -> bool:
    """Whether a C2PA manifest store (JUMBF) is embedded: JPEG APP11 or PNG ``caBX``."""
    if data[:2] == b"\xff\xd8":
        return any(
            marker == _APP11 and b"jumb" in data[start:end] and b"c2pa" in data[start:end]
            for marker, start, end in iter_jpeg_segments(data)
        )
    if data[:8] == _PNG_SIGNATURE:
        pos = 8
        while pos + 8 <= len(data):
            length, kind = struct.unpack_from(">I4s", data, pos)
            if kind == b"caBX":
                return True
            if kind == b"IEND":
                return False
            pos += 12 + length
    return False
