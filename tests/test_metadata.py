"""Tests for picorigin._metadata: EXIF, IPTC, XMP and C2PA written into real files, read back."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from skimage import data

from picorigin._imaging import decode
from picorigin._metadata import iter_jpeg_segments, read_metadata


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.coffee())


def save(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def metadata_and_sources(encoded: bytes) -> tuple[dict, dict]:
    image = Image.open(io.BytesIO(encoded))
    image.load()
    found = read_metadata(image, encoded)
    sources = {k.removesuffix("_source"): v for k, v in found.items() if k.endswith("_source")}
    return {k: v for k, v in found.items() if not k.endswith("_source")}, sources


def metadata_of(encoded: bytes) -> dict:
    """The metadata values, without the ``<key>_source`` entries (tested on their own)."""
    return metadata_and_sources(encoded)[0]


def insert_after_soi(jpeg: bytes, segment: bytes) -> bytes:
    return jpeg[:2] + segment + jpeg[2:]


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def iptc_segment(datasets: list[tuple[tuple[int, int], bytes]]) -> bytes:
    """An APP13 Photoshop 3.0 segment holding one 8BIM IPTC-NAA (0x0404) resource."""
    iptc = b"".join(b"\x1c" + bytes(key) + struct.pack(">H", len(value)) + value
                    for key, value in datasets)
    resource = (b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00"  # empty, padded Pascal name
                + struct.pack(">I", len(iptc)) + iptc + b"\x00" * (len(iptc) % 2))
    return jpeg_segment(0xED, b"Photoshop 3.0\x00" + resource)


def png_with_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + chunk + png[iend:]


XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    photoshop:DateCreated="2021-06-01T10:00:00">
   <dc:creator><rdf:Seq><rdf:li>Ann Author</rdf:li><rdf:li> Bob Second </rdf:li></rdf:Seq></dc:creator>
   <dc:rights><rdf:Alt>
     <rdf:li xml:lang="fr">Droits réservés</rdf:li>
     <rdf:li xml:lang="x-default">© 2021 Ann Author</rdf:li>
   </rdf:Alt></dc:rights>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Morning coffee</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
  <rdf:Description rdf:about="" xmlns:ps="http://ns.adobe.com/photoshop/1.0/">
   <ps:Credit>Agency X</ps:Credit>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

XMP_EXPECTED = {
    "creator": "Ann Author; Bob Second",
    "copyright": "© 2021 Ann Author",
    "title": "Morning coffee",
    "date_taken": "2021-06-01T10:00:00",
    "credit": "Agency X",
}


def test_exif_fields(photo):
    exif = Image.Exif()
    exif[0x013B] = "  Jane Doe "
    exif[0x8298] = "Jane Doe\x00Some Editor"
    exif[0x0132] = "2020:01:01 00:00:00"
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R5"
    exif[0x0131] = "Darktable 4.6"
    exif[0x010E] = "A cup of coffee"
    exif.get_ifd(0x8769)[0x9003] = "2019:05:04 03:02:01"
    assert metadata_of(save(photo, exif=exif)) == {
        "creator": "Jane Doe",
        "copyright": "Jane Doe; Some Editor",
        "date_taken": "2019:05:04 03:02:01",
        "camera": "Canon EOS R5",
        "software": "Darktable 4.6",
        "description": "A cup of coffee",
    }


def test_exif_date_time_fallback_and_camera_make(photo):
    exif = Image.Exif()
    exif[0x0132] = "2020:01:01 00:00:00"
    exif[0x010F] = "FUJIFILM"
    exif[0x0110] = "X-T4"
    assert metadata_of(save(photo, exif=exif)) == {
        "date_taken": "2020:01:01 00:00:00", "camera": "FUJIFILM X-T4"}


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF"])
def test_exif_in_other_formats(photo, fmt):
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"
    assert metadata_of(save(photo, fmt, exif=exif))["creator"] == "Jane Doe"


def test_iptc_fields(photo):
    jpeg = insert_after_soi(save(photo), iptc_segment([
        ((1, 90), b"\x1b%G"),  # coded character set: UTF-8
        ((2, 5), "Café".encode()),
        ((2, 80), b"First Photographer"),
        ((2, 80), b"Second Photographer"),
        ((2, 110), b"Agency X"),
        ((2, 116), b"(c) 2022 Agency X"),
    ]))
    assert metadata_of(jpeg) == {
        "title": "Café",
        "creator": "First Photographer; Second Photographer",
        "credit": "Agency X",
        "copyright": "(c) 2022 Agency X",
    }


def test_iptc_latin1_is_decoded(photo):
    jpeg = insert_after_soi(save(photo), iptc_segment([((2, 80), "François".encode("latin-1"))]))
    assert metadata_of(jpeg) == {"creator": "François"}


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_xmp_fields(photo, fmt):
    assert metadata_of(save(photo, fmt, xmp=XMP.encode())) == XMP_EXPECTED


def test_xmp_in_png(photo):
    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", XMP)
    assert metadata_of(save(photo, "PNG", pnginfo=info)) == XMP_EXPECTED


def test_xmp_found_in_raw_bytes(photo):
    # GIF keeps XMP in an application extension Pillow does not expose; the raw bytes have it.
    gif = save(photo.quantize(64), "GIF")
    gif = gif[:-1] + b"!\xffXMP DataXMP" + XMP.encode() + b";"
    assert metadata_of(gif) == XMP_EXPECTED
    bare = XMP[XMP.index("<rdf:RDF") : XMP.index("</x:xmpmeta>")]
    assert metadata_of(save(photo, xmp=bare.encode())) == XMP_EXPECTED


def test_earlier_sources_win(photo):
    exif = Image.Exif()
    exif[0x013B] = "Exif Name"
    jpeg = save(photo, exif=exif, xmp=XMP.encode())
    jpeg = insert_after_soi(jpeg, iptc_segment([((2, 80), b"Iptc Name"), ((2, 110), b"Iptc Credit")]))
    values, sources = metadata_and_sources(jpeg)
    assert values == {**XMP_EXPECTED, "creator": "Exif Name", "credit": "Iptc Credit"}
    assert sources == {
        "creator": "exif:Artist", "credit": "iptc:Credit", "copyright": "xmp:dc:rights",
    }


def test_xmp_external_entities_are_never_read(photo, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    hostile = (f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>'
               '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
               'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
               'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>&xxe;</dc:title>'
               '</rdf:Description></rdf:RDF></x:xmpmeta>')
    assert metadata_of(save(photo, xmp=hostile.encode())) == {}
    laughs = XMP.replace("<rdf:RDF", '<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">]><rdf:RDF')
    assert metadata_of(save(photo, xmp=laughs.encode())) == {}


def test_damaged_metadata_is_skipped(photo):
    broken_xmp = XMP.replace("</dc:title>", "")
    exif = Image.Exif()
    exif[0x013B] = "Jane Doe"
    assert metadata_of(save(photo, exif=exif, xmp=broken_xmp.encode())) == {"creator": "Jane Doe"}
    broken_exif = insert_after_soi(save(photo), jpeg_segment(0xE1, b"Exif\x00\x00II*\x00\xff\xff"))
    decoded = decode(broken_exif, working_side=None)
    assert decoded.metadata == {} and decoded.width == photo.width


def test_c2pa_in_jpeg(photo):
    jumbf = (b"JP\x00\x01\x00\x00\x00\x01" + struct.pack(">I", 33) + b"jumb"
             + struct.pack(">I", 25) + b"jumd" + b"c2pa" + b"\x00" * 12 + b"c2pa\x00")
    jpeg = insert_after_soi(save(photo), jpeg_segment(0xEB, jumbf))
    assert metadata_of(jpeg) == {"c2pa": True}
    assert decode(jpeg).metadata == {"c2pa": True}
    # "c2pa" outside APP11 (here a comment) is not a manifest.
    assert metadata_of(insert_after_soi(save(photo), jpeg_segment(0xFE, b"jumb c2pa"))) == {}


def test_c2pa_in_png(photo):
    png = png_with_chunk(save(photo, "PNG"), b"caBX", b"\x00\x00\x00\x08jumb")
    assert decode(png).metadata == {"c2pa": True}
    assert metadata_of(save(photo, "PNG")) == {}


def test_no_metadata(photo):
    for fmt in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"):
        assert metadata_of(save(photo, fmt)) == {}


def test_iter_jpeg_segments(photo):
    exif = Image.Exif()
    exif[0x013B] = "x"
    jpeg = save(photo, exif=exif, comment=b"hello")
    segments = list(iter_jpeg_segments(jpeg))
    markers = [marker for marker, _, _ in segments]
    assert markers[:2] == [0xE0, 0xE1] and 0xFE in markers and markers[-1] == 0xDA
    assert {0xDB, 0xC0, 0xC4} <= set(markers)  # DQT, SOF0, DHT
    for (_, _, end), (_, start, _) in zip(segments, segments[1:]):
        assert end == start
    assert list(iter_jpeg_segments(jpeg[:40])) == [seg for seg in segments if seg[2] <= 40]
    assert np.asarray(Image.open(io.BytesIO(jpeg))).shape == (400, 600, 3)


# IPTC Photo Metadata rights as Photo Mechanic / Lightroom write them: the Web Statement as an
# attribute, the usage terms as a language alternative, the Licensor a list of structures
# (one written with child elements, one with attributes of a nested rdf:Description), and the
# creator's contact info a structure written with attributes.
XMP_RIGHTS = """<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"
    xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0/"
    xmlns:Iptc4xmpCore="http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
    xmpRights:WebStatement="https://creativecommons.org/licenses/by-nc/4.0/"
    photoshop:Credit="Ann Author / Agency X">
   <dc:creator><rdf:Seq><rdf:li>Ann Author</rdf:li></rdf:Seq></dc:creator>
   <xmpRights:UsageTerms><rdf:Alt>
     <rdf:li xml:lang="x-default">Editorial use only</rdf:li></rdf:Alt></xmpRights:UsageTerms>
   <plus:Licensor><rdf:Seq>
     <rdf:li rdf:parseType="Resource">
      <plus:LicensorName>Agency X</plus:LicensorName>
      <plus:LicensorURL>https://agency.test/buy/123</plus:LicensorURL>
     </rdf:li>
     <rdf:li><rdf:Description plus:LicensorName="Ann Author"
        plus:LicensorURL="https://ann.test/licensing"/></rdf:li>
   </rdf:Seq></plus:Licensor>
   <Iptc4xmpCore:CreatorContactInfo Iptc4xmpCore:CiEmailWork="ann@ann.test"
      Iptc4xmpCore:CiUrlWork="https://ann.test/"/>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>"""


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_xmp_rights_fields(photo, fmt):
    if fmt == "PNG":
        info = PngInfo()
        info.add_itxt("XML:com.adobe.xmp", XMP_RIGHTS)
        encoded = save(photo, "PNG", pnginfo=info)
    else:
        encoded = save(photo, fmt, xmp=XMP_RIGHTS.encode())
    values, sources = metadata_and_sources(encoded)
    assert values == {
        "creator": "Ann Author",
        "credit": "Ann Author / Agency X",
        "web_statement": "https://creativecommons.org/licenses/by-nc/4.0/",
        "usage_terms": "Editorial use only",
        "licensor": "Agency X; Ann Author",
        "licensor_url": "https://agency.test/buy/123; https://ann.test/licensing",
        "creator_contact": "ann@ann.test; https://ann.test/",
    }
    assert sources == {
        "creator": "xmp:dc:creator",
        "credit": "xmp:photoshop:Credit",
        "web_statement": "xmp:xmpRights:WebStatement",
        "usage_terms": "xmp:xmpRights:UsageTerms",
        "licensor": "xmp:plus:Licensor",
        "licensor_url": "xmp:plus:LicensorURL",
        "creator_contact": "xmp:Iptc4xmpCore:CreatorContactInfo",
    }


def test_xmp_rights_structures_may_be_empty(photo):
    # A Licensor with no name and a contact with no fields add nothing, and lose nothing else.
    empty = XMP_RIGHTS.replace("Agency X</plus:LicensorName>", "</plus:LicensorName>").replace(
        'plus:LicensorName="Ann Author"', "").replace('Iptc4xmpCore:CiEmailWork="ann@ann.test"',
                                                      "").replace(
        'Iptc4xmpCore:CiUrlWork="https://ann.test/"', "")
    values = metadata_of(save(photo, xmp=empty.encode()))
    assert "licensor" not in values and "creator_contact" not in values
    assert values["licensor_url"] == "https://agency.test/buy/123; https://ann.test/licensing"
    assert values["web_statement"] == "https://creativecommons.org/licenses/by-nc/4.0/"
