"""The JSON API: search, the collection's images, compare, stats and health.

Image sources come in two forms only: uploaded bytes, or an ``http(s)`` URL the engine fetches
(refusing private addresses unless ``allow_private_urls`` is on). Nothing from a request is ever
treated as a path, so no request can make the server read its own files.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from .._models import KINDS
from .._results import SORTS, normalise_domain
from ._guards import require_key
from ._runner import EngineRunner
from ._uploads import UPLOAD_ID

__all__ = ["MAX_ID", "http_url", "public", "router"]

MAX_K = 200
MAX_ID = 2**63 - 1
"""Largest image id and offset: SQLite's integers are 64-bit, and larger ones would reach it
only to overflow there (a 500), so they are refused as requests instead."""
_MAX_TEXT = 2048

router = APIRouter(prefix="/api")


# Keys whose values may be server paths: where an image was indexed from, the data folder.
_PATH_KEYS = frozenset(["uri", "uris", "data_folder", "b_uri"])
_LOCAL_PATH = re.compile(r"^(/|~|[A-Za-z]:[\\/]|\\\\)")
# An absolute path inside a sentence (not a URL's path: that follows a host or "//").
# Greedy across spaces: it may swallow words between two paths, never leave a folder name.
_PATH_IN_TEXT = re.compile(r"(?<![\w:/.])/(?:[^/\n]*/)*([^\s/]+)")


def public(value: Any, key: str | None = None) -> Any:
    """``value`` (an engine answer) with every local path cut to its last name.

    Anyone who can reach the server may read these answers, and absolute paths tell them the
    server's user and folder layout; the file name alone still tells the owner which file it
    is (the id says the rest). URLs and upload labels (``upload:HASH/NAME``) pass unchanged.
    """
    if isinstance(value, dict):
        return {k: public(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [public(v, key) for v in value]
    if key in _PATH_KEYS and isinstance(value, str) and _LOCAL_PATH.match(value):
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or value
    if key == "evidence" and isinstance(value, str):  # "first seen ... on /home/me/a.jpg"
        return _PATH_IN_TEXT.sub(lambda m: m.group(1), value)
    return value


def _runner(request: Request) -> EngineRunner:
    return request.app.state.runner


def _body_doc(image_fields: dict[str, str], extra: dict[str, dict] | None = None) -> dict:
    """OpenAPI for a body that is multipart (files or URLs) or JSON (URLs)."""
    extra = extra or {}
    multipart = {name: {"type": "string", "format": "binary", "description": text}
                 for name, text in image_fields.items()}
    json_props = {name: {"type": "string", "format": "uri",
                         "description": "http(s) URL of the image"} for name in image_fields}
    if list(image_fields) == ["file"]:
        multipart["url"] = {"type": "string", "description": "http(s) URL instead of a file"}
        json_props = {"url": json_props["file"]}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {**multipart, **extra}}},
        "application/json": {"schema": {"type": "object", "properties": {**json_props, **extra}}},
    }}}


_SEARCH_OPTIONS = {
    "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "description": "most matches returned"},
    "kinds": {"type": "string", "description": "comma-separated subset of " + ", ".join(KINDS)},
    "label": {"type": "string", "description": "only images whose best-guess labels include this"},
    "colour": {"type": "string", "description": "only images with 10 % of this colour"},
    "fast": {"type": "boolean", "description": "fingerprint only: exact and near-duplicates"},
    "sort": {"type": "string", "enum": list(SORTS), "description": "order: best match, most "
             "changed, biggest (genuine resolution), oldest or newest first seen"},
    "domain": {"type": "string", "description": "only matches on this host or in this folder "
               "(example.org, example.org/news)"},
    "larger_only": {"type": "boolean", "description": "only copies genuinely larger than yours"},
    "upload": {"type": "string", "description": "instead of a file: the id of an upload this "
               "server still keeps (the answer's `upload`)"},
}
_ADD_FIELDS = {
    name: {"type": "string", "description": text} for name, text in (
        ("page_url", "page where the image was seen"),
        ("page_title", "title of that page"),
        ("creator", "who made the image"),
        ("title", "the image's title"),
        ("uri", "http(s) URL where an uploaded file lives (default: upload:HASH/FILENAME)"),
    )
}


def http_url(value: Any, field: str = "url") -> str:
    """``value`` if it is an absolute http(s) URL, else a 400 saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise HTTPException(400, f"{field} must be an http(s) URL")
    value = value.strip()
    if len(value) > _MAX_TEXT:
        raise HTTPException(400, f"{field} is longer than {_MAX_TEXT} characters")
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    # The engine reads anything that is not a URL as a path: only real http(s) URLs pass.
    if host is None or parts.scheme.lower() not in ("http", "https"):
        raise HTTPException(
            400, f"{field} must be an absolute http:// or https:// URL, got {value[:100]!r}"
        )
    return value


class _Body:
    """A request body, multipart or JSON, as plain fields and image sources."""

    def __init__(self, fields: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> None:
        self.fields = fields
        self.files = files

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise HTTPException(400, f"{name} must be a string")
        if len(value) > _MAX_TEXT:
            raise HTTPException(400, f"{name} is longer than {_MAX_TEXT} characters")
        return value

    def source(self, file_field: str, url_field: str) -> tuple[bytes | str, str | None]:
        """``(bytes or URL, uploaded filename)`` from whichever of the two fields is present."""
        if file_field in self.files and self.fields.get(url_field):
            raise HTTPException(400, f"send either {file_field} or {url_field}, not both")
        if file_field in self.files:
            filename, data = self.files[file_field]
            return data, filename
        if self.fields.get(url_field):
            return http_url(self.fields[url_field], url_field), None
        if self.fields.get(file_field):  # a URL typed into the file field of a form
            return http_url(self.fields[file_field], file_field), None
        raise HTTPException(
            400, f"no image given: send a multipart field {file_field!r} with the image file, "
            f"or JSON {{\"{url_field}\": \"https://...\"}}"
        )


async def _read_body(request: Request, file_fields: tuple[str, ...]) -> _Body:
    try:
        return await _read_body_of(request, file_fields)
    except ClientDisconnect:
        # The client went away mid-upload: nobody reads the answer, and it is no server error
        # worth a traceback in the log (a flood of them once filled a piped stderr).
        raise HTTPException(400, "the client closed the connection during the upload") from None


async def _read_body_of(request: Request, file_fields: tuple[str, ...]) -> _Body:
    cap = request.app.state.max_upload_bytes
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not valid JSON") from None
        except RecursionError:  # [[[[... nested past the parser's stack
            raise HTTPException(400, "the JSON body is nested too deeply") from None
        if not isinstance(data, dict):
            raise HTTPException(400, "the JSON body must be an object, e.g. {\"url\": \"https://...\"}")
        return _Body(data, {})
    if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise HTTPException(
            415, "send multipart/form-data with the image in a 'file' field, or application/json "
            "with {\"url\": \"https://...\"}"
        )
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, bytes]] = {}
    async with request.form(max_files=len(file_fields), max_fields=20) as form:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name not in file_fields:
                    raise HTTPException(400, f"unexpected file field {name!r}; "
                                        f"expected {', '.join(file_fields)}")
                data = await value.read(cap + 1)
                if len(data) > cap:
                    raise HTTPException(
                        413, f"upload too large: this server accepts images of at most {cap:,} "
                        f"bytes ({cap / 1_000_000:g} MB); send a smaller file or a URL to it"
                    )
                if not data:
                    raise HTTPException(400, f"the uploaded {name!r} is empty")
                files[name] = (value.filename or "", data)
            else:
                fields[name] = value
    return _Body(fields, files)


def _options(
    body: _Body, k: int | None, kinds: str | None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    extra = extra or {}
    raw_k = body.fields.get("k", k)
    options: dict[str, Any] = {}
    if raw_k is not None and not (isinstance(raw_k, str) and not raw_k.strip()):
        options["k"] = _whole_number(raw_k, "k")
        if not 1 <= options["k"] <= MAX_K:
            raise HTTPException(400, f"k must be between 1 and {MAX_K}, got {options['k']}")
    raw_kinds = body.fields.get("kinds", kinds)
    if raw_kinds:
        names = raw_kinds.split(",") if isinstance(raw_kinds, str) else raw_kinds
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise HTTPException(400, "kinds must be a list of names or a comma-separated string")
        wanted = [n.strip().lower().replace("-", "_") for n in names if n.strip()]
        unknown = sorted(set(wanted) - set(KINDS))
        if unknown:
            raise HTTPException(400, f"unknown kind(s) {', '.join(unknown)}; "
                                f"choose among {', '.join(KINDS)}")
        options["kinds"] = wanted
    for name in ("label", "colour"):
        value = body.fields.get(name, extra.get(name))
        if isinstance(value, str) and value.strip():
            options[name] = value.strip()
    for name in ("fast", "larger_only"):
        value = body.fields.get(name, extra.get(name))
        if value is not None and value != "":
            options[name] = value is True or str(value).lower() in {"1", "true", "yes", "on"}
    sort = body.fields.get("sort", extra.get("sort"))
    if sort is not None and sort != "":
        if sort not in SORTS:
            raise HTTPException(400, f"unknown sort {str(sort)[:100]!r}; "
                                f"choose among {', '.join(SORTS)}")
        options["sort"] = sort
    domain = body.fields.get("domain", extra.get("domain"))
    if domain is not None and domain != "":
        if not isinstance(domain, str):
            raise HTTPException(400, "domain must be a string, e.g. example.org")
        try:
            options["domain"] = normalise_domain(domain)
        except ValueError as error:
            raise HTTPException(400, str(error)) from None
    return options


def _kept_upload(request: Request, key: Any) -> bytes:
    """The bytes of an upload the server still keeps, else 400 (malformed) or 404 (gone)."""
    if not isinstance(key, str) or not UPLOAD_ID.match(key):
        raise HTTPException(400, "upload must be the 24-character id of an upload "
                            "(the `upload` of a search or compare answer)")
    data = request.app.state.uploads.get(key)
    if data is None:
        raise HTTPException(404, "that uploaded image is no longer kept (uploads are kept in "
                            "this server's memory for an hour at most): upload it again")
    return data


def _whole_number(value: Any, name: str) -> int:
    """``value`` as an int when it is one (7, 7.0, "7"); else 400. JSON's true, 2.5, Infinity
    and NaN are refused, not truncated or left to overflow later."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and len(value) < 100:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise HTTPException(400, f"{name} must be a whole number, got {str(value)[:100]!r}")


def _as_dict(value: Any) -> Any:
    return value.to_dict() if hasattr(value, "to_dict") else value


def _uploaded_uri(filename: str | None, data: bytes) -> str:
    """The location recorded for an upload: ``upload:HASH/NAME``.

    The content hash keeps two different uploads that share a name (every pasted image is
    "image.png") from being recorded as one location; only the base name is kept, so a client's
    directory layout is neither recorded nor mistaken for one of ours.
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]
    digest = hashlib.sha256(data).hexdigest()[:16]
    return f"upload:{digest}/{name}" if name else f"upload:{digest}"


@router.post("/search", summary="Find copies of an image", openapi_extra=_body_doc(
    {"file": "the query image"}, _SEARCH_OPTIONS))
async def search(
    request: Request,
    k: int | None = Query(None, ge=1, le=MAX_K, description="most matches returned"),
    kinds: str | None = Query(None, description="comma-separated subset of " + ", ".join(KINDS)),
    label: str | None = Query(None, description="only images whose labels include this"),
    colour: str | None = Query(None, description="only images with 10 % of this colour"),
    fast: bool | None = Query(None, description="fingerprint only: exact and near-duplicates"),
    sort: str | None = Query(None, description="one of " + ", ".join(SORTS)),
    domain: str | None = Query(None, max_length=500,
                               description="only matches on this host or in this folder"),
    larger_only: bool | None = Query(None, description="only copies larger than yours"),
) -> JSONResponse:
    """Search the collection with an uploaded image (multipart ``file``) or ``{"url": ...}``.

    Answers with the same JSON as ``picorigin search --json``; for an uploaded image also
    ``upload``, an id under which the server keeps it in memory for an hour (pass it back as
    ``upload`` to sort or filter again, or in a ``/compare?q=...`` link).
    """
    body = await _read_body(request, ("file",))
    if body.fields.get("upload") and "file" not in body.files:
        source: bytes | str = _kept_upload(request, body.fields["upload"])
    else:
        source, _ = body.source("file", "url")
    options = _options(body, k, kinds, {"label": label, "colour": colour, "fast": fast,
                                        "sort": sort, "domain": domain,
                                        "larger_only": larger_only})
    runner = _runner(request)
    result = _as_dict(await runner.read(runner.engine.search, source, **options))
    if isinstance(source, bytes):  # read as an image: worth keeping for a compare link
        result["upload"] = request.app.state.uploads.put(source)
    return JSONResponse(public(result))


@router.post("/images", status_code=201, summary="Add an image to the collection",
             dependencies=[Depends(require_key)],
             openapi_extra=_body_doc({"file": "the image to add"}, _ADD_FIELDS))
async def add_image(request: Request) -> JSONResponse:
    """Add an uploaded image or an image URL, with optional page, creator and title."""
    body = await _read_body(request, ("file",))
    source, filename = body.source("file", "url")
    page_url = body.text("page_url")
    if page_url is not None:
        page_url = http_url(page_url, "page_url")
    sighting = {"page_url": page_url, "page_title": body.text("page_title")}
    metadata = {"creator": body.text("creator"), "title": body.text("title")}
    uri = body.text("uri")
    if uri is not None:  # a label only, but never a path: something may fetch it later
        uri = http_url(uri, "uri")
    elif isinstance(source, bytes):
        uri = _uploaded_uri(filename, source)
    runner = _runner(request)
    image_id = await runner.write(
        runner.engine.add, source, uri=uri,
        sighting={k: v for k, v in sighting.items() if v} or None,
        metadata={k: v for k, v in metadata.items() if v} or None,
    )
    info = await runner.read(runner.engine.info, image_id)
    return JSONResponse({"id": image_id, "image": public(info)}, status_code=201)


@router.get("/images", summary="List the collection's images")
async def list_images(
    request: Request,
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(50, ge=1, le=500),
    q: str | None = Query(None, max_length=500, description="substring of a URI or creator"),
) -> JSONResponse:
    runner = _runner(request)
    if not runner.has("list_images"):
        raise HTTPException(501, "this engine cannot list its images yet")
    page = await runner.read(runner.engine.list_images, offset=offset, limit=limit, q=q or None)
    return JSONResponse(public({"offset": offset, "limit": limit, **page}))


@router.get("/images/{image_id}", summary="One image's full record")
async def get_image(request: Request, image_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    runner = _runner(request)
    return JSONResponse(public(await runner.read(runner.engine.info, image_id)))


@router.delete("/images/{image_id}", summary="Remove an image from the collection",
               dependencies=[Depends(require_key)])
async def delete_image(request: Request, image_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    runner = _runner(request)
    await runner.write(runner.engine.remove, image_id)
    return JSONResponse({"deleted": image_id})


@router.get("/images/{image_id}/thumbnail", summary="A small JPEG of the image",
            response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}})
async def thumbnail(request: Request, image_id: int = Path(ge=0, le=MAX_ID)) -> Response:
    runner = _runner(request)
    if not runner.has("thumbnail"):
        raise HTTPException(501, "this engine does not keep thumbnails yet")
    data = await runner.read(runner.engine.thumbnail, image_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})


_COMPARE_OPTIONS = {
    "b_id": {"type": "integer", "minimum": 0, "description": "instead of b: an indexed image's id"},
    "a_upload": {"type": "string", "description": "instead of a: the id of an upload this server "
                 "still keeps (`upload` of a search answer, `a_upload` of a compare answer)"},
}


@router.post("/compare", summary="Compare two images", openapi_extra=_body_doc(
    {"a": "first image (file, or URL string)", "b": "second image (file, or URL string)"},
    _COMPARE_OPTIONS))
async def compare(request: Request) -> JSONResponse:
    """How image ``b`` relates to image ``a``: kind, transform, boxes and changed regions.

    ``b_id`` compares ``a`` with an indexed image instead (read from its first readable
    location, else its thumbnail: ``b_from`` says which). An uploaded ``a`` is kept in memory
    for an hour under ``a_upload``, the id a ``/compare?q=...`` link names.
    """
    runner = _runner(request)
    if not runner.has("compare"):
        raise HTTPException(
            501, "compare is not available: this engine has no compare method yet"
        )
    body = await _read_body(request, ("a", "b"))
    raw_id = body.fields.get("b_id")
    b_id = None
    if raw_id is not None and raw_id != "":
        if "b" in body.files or body.fields.get("b"):
            raise HTTPException(400, "send either b or b_id, not both")
        b_id = _whole_number(raw_id, "b_id")
        if not 0 <= b_id <= MAX_ID:
            raise HTTPException(400, f"b_id must be between 0 and {MAX_ID}")
        if not runner.has("compare_indexed"):
            raise HTTPException(501, "this engine cannot compare with an indexed image yet")
    if body.fields.get("a_upload") and "a" not in body.files and not body.fields.get("a"):
        a: bytes | str = _kept_upload(request, body.fields["a_upload"])
    else:
        a, _ = body.source("a", "a")
    if b_id is not None:
        result = _as_dict(await runner.read(runner.engine.compare_indexed, a, b_id))
    else:
        b, _ = body.source("b", "b")
        result = _as_dict(await runner.read(runner.engine.compare, a, b))
    if isinstance(a, bytes):
        result["a_upload"] = request.app.state.uploads.put(a)
    return JSONResponse(public(result))


@router.get("/uploads/{upload_id}", summary="An uploaded query image the server still keeps",
            response_class=Response, responses={200: {"content": {"image/*": {}}}})
async def kept_upload(request: Request, upload_id: str = Path(max_length=64)) -> Response:
    data = _kept_upload(request, upload_id)
    # Served back only as the image type its header declares, never as a page.
    media = _image_media_type(data)
    if media is None:
        raise HTTPException(415, "that upload is not an image a browser can show")
    return Response(data, media_type=media, headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox"})


_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
          (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"BM", "image/bmp"),
          (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def _image_media_type(data: bytes) -> str | None:
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if data[4:8] == b"ftyp":
        return "image/heic"
    return None


@router.get("/stats", summary="Counts and index sizes")
async def stats(request: Request) -> JSONResponse:
    runner = _runner(request)
    result = public(dict(await runner.read(runner.engine.stats)))
    result["server"] = {
        "max_upload_bytes": request.app.state.max_upload_bytes,
        "api_key_required": request.app.state.api_key is not None,
    }
    return JSONResponse(result)
