"""The reference server of scenario 6: a Litestar hello world on ``serve``'s server settings.

``POST /events`` decodes the JSON body into a dict and answers 202 with a small JSON object;
nothing is stored. uvicorn runs it as ``attribution_webhooks.app.runner.serve`` runs the API:
httptools, uvloop (when installed), lifespan on, no access log, no server header. So the ratio
of ``POST /events`` to this is what our handler, validation and store cost on top of the
framework and server. ``python -m bench.hello --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import uvicorn
from litestar import Litestar, get, post

__all__ = ["app", "main"]


@post("/events", status_code=202)
async def publish(data: dict[str, Any]) -> dict[str, Any]:
    return {"id": "evt_hello", "deliveryIds": [], "duplicate": False}


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar(route_handlers=[publish, healthz], debug=False, logging_config=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hello", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    server = uvicorn.Server(config)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server.serve())
    else:
        with contextlib.suppress(KeyboardInterrupt):
            uvloop.run(server.serve())


if __name__ == "__main__":
    main()
