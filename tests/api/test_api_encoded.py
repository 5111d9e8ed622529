"""``wire.Encoded``, the ingest path's pre-encoded answer: the same status, headers and bytes, and
the same OpenAPI schema, as a handler returning the attrs value through ``WireDTO``; Litestar's
own rendering when the route adds headers."""

from __future__ import annotations

from typing import Any

from litestar import Litestar, post
from litestar.testing import TestClient

from attribution_webhooks.app.api.openapi import CamelAttrsSchemaPlugin
from attribution_webhooks.app.api.resources import Published
from attribution_webhooks.app.api.wire import Encoded, WireDTO

VALUES = [
    Published("evt_1", ()),
    Published("evt_2", ("dlv_a", "dlv_b"), duplicate=True),
    Published("evt_é\u2028", ("dlv_\U0001f600",)),
]


def app_for(value: Published) -> Litestar:
    @post("/plain", status_code=202)
    async def plain() -> Published:
        return value

    @post("/encoded", status_code=202)
    async def encoded() -> Encoded[Published]:
        return Encoded(value, status_code=202)

    @post("/headed", status_code=202, response_headers={"x-extra": "1"})
    async def headed() -> Encoded[Published]:
        return Encoded(value, status_code=202)

    return Litestar(
        route_handlers=[plain, encoded, headed],
        dto=WireDTO,
        return_dto=WireDTO,
        plugins=[CamelAttrsSchemaPlugin()],
        debug=False,
        logging_config=None,
    )


def test_the_same_answer_as_the_dto() -> None:
    for value in VALUES:
        with TestClient(app_for(value)) as client:
            plain = client.post("/plain")
            encoded = client.post("/encoded")
            assert encoded.status_code == plain.status_code == 202
            assert encoded.headers.raw == plain.headers.raw
            assert encoded.content == plain.content


def test_route_headers_go_through_litestar() -> None:
    with TestClient(app_for(VALUES[1])) as client:
        plain = client.post("/plain")
        headed = client.post("/headed")
        assert headed.status_code == 202
        assert headed.headers["x-extra"] == "1"
        assert headed.headers["content-type"] == "application/json"
        assert headed.content == plain.content


def test_the_same_schema() -> None:
    paths: dict[str, Any] = app_for(VALUES[0]).openapi_schema.to_schema()["paths"]
    assert paths["/encoded"]["post"]["responses"] == paths["/plain"]["post"]["responses"]
