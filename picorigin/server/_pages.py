"""Server-rendered HTML: the search page, one image's record, the collection.

The search page is static HTML; ``static/app.js`` posts to ``/api/search`` and draws the results,
so the page and API clients see exactly the same answers.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from starlette.exceptions import HTTPException

from ._api import MAX_ID, http_url, public
from ._uploads import UPLOAD_ID

__all__ = ["render_error", "router", "templates"]

templates = Jinja2Templates(directory=str(FsPath(__file__).parent / "templates"))
router = APIRouter(include_in_schema=False)

# Pages load only their own script and style; images may come from anywhere (a URL query's
# preview) or from the page itself (blob: for uploads and pastes).
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob: http: https:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def _creator_name(creator: Any) -> str | None:
    if isinstance(creator, dict):
        return creator.get("name") or None
    return str(creator) if creator else None


def _is_web_link(value: Any) -> bool:
    # Only http(s) values become links: a recorded "javascript:" URI must stay text.
    return isinstance(value, str) and urlsplit(value).scheme.lower() in ("http", "https")


def _megapixels(width: Any, height: Any) -> str:
    try:
        return f"{int(width) * int(height) / 1e6:.1f} MP"
    except (TypeError, ValueError):
        return ""


def _when(value: Any) -> str:
    """``2026-11-28T18:56:19+00:00`` -> ``2026-11-28 18:56 UTC`` (other text unchanged)."""
    text = str(value)
    if len(text) >= 16 and text[10] == "T":
        return text[:10] + " " + text[11:16] + (" UTC" if text.endswith(("+00:00", "Z")) else "")
    return text


_LABELS = {"uri": "URI", "page_url": "Page", "sha256": "SHA-256", "pixel_sha256": "Pixel SHA-256"}


def _label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _basename(uri: str) -> str:
    return uri.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if uri else ""


templates.env.filters["creator_name"] = _creator_name
templates.env.filters["when"] = _when
templates.env.filters["label"] = _label
templates.env.filters["basename"] = _basename
templates.env.filters["megapixels"] = lambda info: _megapixels(info.get("width"), info.get("height"))
templates.env.tests["web_link"] = _is_web_link
templates.env.globals["urlencode"] = urlencode


def _page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    context = {"api_key_required": request.app.state.api_key is not None, **context}
    return templates.TemplateResponse(request, name, context, status_code=status, headers=_HEADERS)


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    return _page(request, "error.html", {"status": status, "message": message}, status)


@router.get("/", response_class=HTMLResponse)
async def search_page(request: Request) -> HTMLResponse:
    runner = request.app.state.runner
    stats = public(await runner.read(runner.engine.stats))
    return _page(request, "search.html", {"stats": stats,
                                          "max_upload_bytes": request.app.state.max_upload_bytes})


@router.get("/images/{image_id}", response_class=HTMLResponse)
async def image_page(request: Request, image_id: int = Path(ge=0, le=MAX_ID)) -> HTMLResponse:
    runner = request.app.state.runner
    info = public(await runner.read(runner.engine.info, image_id))
    columns = [  # location fields that any location fills in, in the catalog's order
        name for name in (info["locations"][0] if info.get("locations") else {})
        if name != "rights"   # its claims are listed, with their sources, under "Credit and rights"
        and any(loc.get(name) not in (None, "") for loc in info["locations"])
    ]
    # "orientation" is how the image was stored (its canonical form), not a fact about it.
    shown = {"id", "uri", "uris", "width", "height", "format", "creator", "rights", "locations",
             "metadata", "byte_size", "added_at", "signals", "orientation"}
    extra = {k: v for k, v in info.items() if k not in shown and v not in (None, "", [], {})}
    return _page(request, "image.html", {"info": info, "extra": extra, "loc_columns": columns,
                                         "has_thumbnail": runner.has("thumbnail")})


@router.get("/collection", response_class=HTMLResponse)
async def collection_page(
    request: Request,
    offset: int = Query(0, ge=0, le=MAX_ID),
    q: str | None = Query(None, max_length=500),
) -> HTMLResponse:
    runner = request.app.state.runner
    stats = public(await runner.read(runner.engine.stats))
    page = None
    if runner.has("list_images"):
        page = public(await runner.read(runner.engine.list_images, offset=offset, limit=48,
                                        q=q or None))
    return _page(request, "collection.html", {
        "stats": stats, "page": page, "offset": offset, "limit": 48, "q": q or "",
        "has_thumbnail": runner.has("thumbnail"),
        "max_upload_bytes": request.app.state.max_upload_bytes,
    })


@router.get("/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request,
    b: int = Query(ge=0, le=MAX_ID, description="the indexed image's id"),
    q: str | None = Query(None, max_length=64, description="id of an upload the server keeps"),
    url: str | None = Query(None, max_length=2048, description="or the query image's URL"),
) -> HTMLResponse:
    """Your image against an indexed one: aligned, flipped, wiped, differenced.

    The page is a shell: ``static/app.js`` asks ``/api/compare`` and draws the answer, so a
    link to it (``/compare?q=UPLOAD&b=ID`` or ``/compare?url=URL&b=ID``) can be shared.
    """
    if (q is None) == (url is None):
        raise HTTPException(400, "name the query image with q (an upload id) or url, not both")
    if q is not None and not UPLOAD_ID.match(q):
        raise HTTPException(400, "q must be the 24-character id of an upload")
    if url is not None:
        url = http_url(url)
    runner = request.app.state.runner
    info = public(await runner.read(runner.engine.info, b))
    return _page(request, "compare.html", {"info": info, "upload": q, "url": url,
                                           "has_thumbnail": runner.has("thumbnail")})
