"""Watches and alerts over HTTP (``/api/watches``, ``/api/alerts``) and the Watches page.

Reads are open like searches; every change needs the write key. A webhook URL given here came
from a client of the server, not from its operator, so it may reach private addresses only when
``allow_private_urls`` is on (the command line's ``watch add`` may: the operator typed it).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException

from .._watch import STATUSES, watcher
from ._api import (MAX_ID, _body_doc, _read_body, _runner, _uploaded_uri, http_url,
                   public)
from ._guards import require_key

__all__ = ["pages", "router"]

router = APIRouter(prefix="/api", tags=["watches"])
pages = APIRouter(include_in_schema=False)


def _public_alert(alert: dict[str, Any]) -> dict[str, Any]:
    # "picture" is where the watched picture was read from: a server path, like "uri".
    return {**public(alert), "picture": public(alert.get("picture"), "uri")}


def _watcher(request: Request) -> Any:
    engine = _runner(request).engine
    if not hasattr(engine, "_catalog"):
        raise HTTPException(501, "this engine keeps no watches")
    return watcher(engine)


@router.get("/watches", summary="Watched pictures and their alert counts")
async def list_watches(request: Request) -> JSONResponse:
    watching = _watcher(request)
    return JSONResponse(public({"watches": await _runner(request).read(watching.watches)}))


@router.post("/watches", status_code=201, summary="Watch a picture",
             dependencies=[Depends(require_key)],
             openapi_extra=_body_doc({"file": "the picture to watch"}, {
                 "label": {"type": "string"}, "webhook": {"type": "string", "format": "uri"},
                 "kinds": {"type": "string", "description": "exact,near_duplicate,partial"}}))
async def add_watch(request: Request) -> JSONResponse:
    """Watch an uploaded picture (or URL); copies already indexed become alerts at once. The
    answer carries the webhook's signing secret (shown only here)."""
    body = await _read_body(request, ("file",))
    source, filename = body.source("file", "url")
    if isinstance(source, bytes):
        source = (_uploaded_uri(filename, source), source)
    webhook = body.text("webhook")
    if webhook is not None:
        webhook = http_url(webhook, "webhook")
    kinds = body.text("kinds")
    runner, watching = _runner(request), _watcher(request)
    added = await runner.write(
        watching.add, [source], label=body.text("label"), webhook=webhook,
        kinds=kinds.split(",") if kinds else None,
        allow_private=bool(runner.engine.settings.allow_private_urls))
    return JSONResponse(added, status_code=201)


@router.delete("/watches/{watch_id}", summary="Stop watching",
               dependencies=[Depends(require_key)])
async def remove_watch(request: Request, watch_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    await _runner(request).write(_watcher(request).remove, watch_id)
    return JSONResponse({"deleted": watch_id})


@router.get("/watches/pictures/{picture_id}/thumbnail", summary="A watched picture's JPEG",
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
async def picture_thumbnail(request: Request,
                            picture_id: int = Path(ge=0, le=MAX_ID)) -> Response:
    data = await _runner(request).read(_watcher(request).thumbnail, picture_id)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=300"})


@router.get("/alerts", summary="Alerts, newest first")
async def list_alerts(
    request: Request,
    since: str | None = Query(None, max_length=40, description="ISO date or time"),
    status: str | None = Query(None, pattern="^(" + "|".join(STATUSES) + ")$"),
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(100, ge=1, le=1000),
) -> JSONResponse:
    """Images committed by any process are checked against the watches first."""
    found = await _runner(request).read(_watcher(request).alerts, since=since, status=status,
                                        offset=offset, limit=limit)
    return JSONResponse({"offset": offset, "limit": limit,
                         "alerts": [_public_alert(alert) for alert in found]})


@router.get("/alerts/{alert_id}", summary="One alert with its webhook deliveries")
async def get_alert(request: Request, alert_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    found = await _runner(request).read(_watcher(request).alert, alert_id)
    return JSONResponse(_public_alert(found))


@router.post("/alerts/{alert_id}/dismiss", summary="Dismiss an alert (the pair never alerts "
             "again)", dependencies=[Depends(require_key)])
async def dismiss_alert(request: Request, alert_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    reason = None
    if request.headers.get("content-type", "").startswith(("application/json", "multipart/",
                                                           "application/x-www-form")):
        reason = (await _read_body(request, ())).text("reason")
    runner = _runner(request)
    return JSONResponse(_public_alert(await runner.write(_watcher(request).dismiss, alert_id,
                                                         reason)))


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert",
             dependencies=[Depends(require_key)])
async def acknowledge_alert(request: Request,
                            alert_id: int = Path(ge=0, le=MAX_ID)) -> JSONResponse:
    runner = _runner(request)
    return JSONResponse(_public_alert(await runner.write(_watcher(request).acknowledge,
                                                         alert_id)))


@pages.get("/watches", response_class=HTMLResponse)
async def watches_page(request: Request) -> HTMLResponse:
    from ._pages import _page

    watching = _watcher(request)
    runner = _runner(request)
    watches = public(await runner.read(watching.watches))
    alerts = [_public_alert(a) for a in await runner.read(watching.alerts, limit=200)]
    return _page(request, "watches.html", {"watches": watches, "alerts": alerts})
