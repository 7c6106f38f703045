"""picorigin's HTTP API and web page.

::

    from picorigin import Engine
    from picorigin.server import create_app, serve

    with Engine("data") as engine:
        serve(engine, host="127.0.0.1", port=8000)          # or: uvicorn.run(create_app(engine))

Needs the ``server`` extra (fastapi, uvicorn, python-multipart, jinja2).
"""

from ._app import create_app, is_loopback, serve

__all__ = ["create_app", "is_loopback", "serve"]
