"""Build the web app around an engine, and serve it with uvicorn."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path
from typing import Any, Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from .._errors import SettingError
from . import _api, _pages, _watch_api
from ._guards import (HostGuard, UploadCap, _authority, allowed_hosts_from,
                      install_error_handlers)
from ._runner import EngineRunner
from ._uploads import UploadStore

__all__ = ["create_app", "is_loopback", "serve"]

DEFAULT_MAX_UPLOAD_BYTES = 20_000_000


def create_app(
    engine: Any,
    *,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    threads: int = 8,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """The picorigin web app (API under ``/api``, pages at ``/``, OpenAPI at ``/docs``).

    Parameters
    ----------
    engine : picorigin.Engine
        Searched and written from worker threads; the caller closes it after the server stops.
    api_key : str, optional
        When set, adding and removing images need it (``X-API-Key`` or ``Authorization:
        Bearer``). Searching never does.
    max_upload_bytes : int
        Largest uploaded image; bigger uploads are answered with 413 before they are read whole.
    threads : int
        Engine calls running at once.
    allowed_hosts : iterable of str, optional
        Host names (``name`` or ``name:port``; ``*`` for any) the server answers to besides
        127.0.0.1, localhost and [::1] on its port and the address a request arrived on;
        others get 421 (DNS rebinding). Default: ``$PICORIGIN_ALLOWED_HOSTS``, comma-separated.
    """
    if not isinstance(max_upload_bytes, int) or max_upload_bytes < 1:
        raise SettingError(f"max_upload_bytes must be a positive int, got {max_upload_bytes!r}")
    if api_key is not None and not api_key.strip():
        raise SettingError("the API key must not be empty; leave it out to run without one")
    app = FastAPI(
        title="picorigin",
        summary="Self-hosted reverse image search: find copies, crops and edits of an image.",
        version=__version__,
        docs_url=None,  # served below from local files: FastAPI's default loads them from a CDN
        redoc_url=None,
    )
    app.state.runner = EngineRunner(engine, threads=threads)
    app.state.api_key = api_key
    app.state.max_upload_bytes = max_upload_bytes
    app.state.uploads = UploadStore()  # query images a compare link names, in memory only
    app.state.allowed_hosts = allowed_hosts_from(allowed_hosts)
    app.add_middleware(
        UploadCap, cap=max_upload_bytes,
        files_for=lambda path: 2 if path.rstrip("/") == "/api/compare" else 1,
    )
    # Added last, so outermost: a request for another host is refused before anything else.
    app.add_middleware(HostGuard, allowed_hosts=app.state.allowed_hosts)
    install_error_handlers(app, _pages.render_error)
    app.include_router(_api.router)
    app.include_router(_watch_api.router)
    app.include_router(_pages.router)
    app.include_router(_watch_api.pages)
    _mount_docs(app)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")

    @app.get("/healthz", summary="Liveness check", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from the files of the swagger-ui-bundle package: works offline."""
    import swagger_ui_bundle
    from fastapi.openapi.docs import get_swagger_ui_html

    app.mount(
        "/static/swagger",
        StaticFiles(directory=swagger_ui_bundle.swagger_ui_path),
        name="swagger",
    )

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Any:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title="picorigin API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve(
    engine: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    allowed_hosts: Iterable[str] | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the app with uvicorn until interrupted.

    Bound beyond loopback without a key, the server makes one up and ``announce``-s it, so
    that a server reachable from the network never takes writes from anyone. A server bound
    to a host name answers to that name too, besides ``allowed_hosts`` (see `create_app`).
    """
    import uvicorn

    allowed = allowed_hosts_from(allowed_hosts)
    if host not in ("0.0.0.0", "::", "") and not is_loopback(host):
        allowed += (_authority(host, port),)

    if api_key is None and not is_loopback(host):
        api_key = secrets.token_urlsafe(24)
        announce(f"picorigin: {host} is reachable beyond this machine, so adding and removing "
                 f"images needs an API key; use X-API-Key: {api_key}")
    app = create_app(engine, api_key=api_key, max_upload_bytes=max_upload_bytes,
                     allowed_hosts=allowed)
    announce(f"picorigin: serving http://{host}:{port}/ (API docs at /docs)")
    uvicorn.run(app, host=host, port=port, log_level="info", ws="none", lifespan="off")
