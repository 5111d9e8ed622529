"""The Attribution API as a small Litestar app that embeds the webhooks package.

Routes (JSON, camelCase as in the webhooks guide; errors are RFC 9457 problem details):

- ``POST /partners`` ``{name, type, status?}`` → 201, and ``partner.created``
- ``GET /partners/{id}``; ``PATCH /partners/{id}`` ``{name?, type?, status?}`` → the partner and
  ``changes``, and ``partner.updated`` when anything changed
- ``POST /tracked-events`` ``{events: [{userId, partnerId, type, timestamp?}]}`` → 201 ``{ids}``,
  and one ``event.tracked`` per touchpoint, published as one batch
- ``POST /deals`` ``{userId, amount, model, closedAt?, halfLifeDays?}`` → 201 the attribution,
  and ``deal.attributed``
- ``POST /webhooks`` ``{url, events, secret?}`` → 201 ``{id, url, events}``: subscribe a receiver

The app delivers its own webhooks: ``Webhooks.running()`` for the app's lifetime, on its loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from litestar import Litestar, Request, Response, get, patch, post
from litestar.exceptions import HTTPException
from litestar.params import JSONBody, Parameter
from litestar.status_codes import HTTP_201_CREATED

from attribution_webhooks import Webhooks
from attribution_webhooks.core.errors import ValidationError
from attribution_webhooks.core.wire import parse_timestamp

from .domain import AttributionService, Invalid, NotFound, Tracked, deal_data

__all__ = ["create_app"]

PROBLEM = "application/problem+json"
_PARTNER_ID = Parameter(description="The partner's id")


def _problem(status: int, title: str, detail: str) -> Response[dict[str, Any]]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return Response(body, status_code=status, media_type=PROBLEM)


def _invalid(_: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    return _problem(422, "Unprocessable Content", str(error))


def _not_found(_: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    return _problem(404, "Not Found", str(error))


def _http(_: Request[Any, Any, Any], error: Exception) -> Response[dict[str, Any]]:
    assert isinstance(error, HTTPException)
    return _problem(
        error.status_code, "Bad Request" if error.status_code == 400 else "Error", str(error.detail)
    )


_KINDS = {str: "a string", int: "a whole number", list: "an array"}


def _field(body: dict[str, Any], name: str, kind: type, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise Invalid(name, f"required, as {_KINDS[kind]}")
    return value


def _time(body: dict[str, Any], name: str) -> Any:
    raw = _field(body, name, str, required=False)
    if raw is None:
        return None
    return parse_timestamp(raw, name)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("body", "a JSON object")
    return body


def create_app(service: AttributionService, *, deliver: bool = True) -> Litestar:
    """The API over ``service``; with ``deliver`` the app runs the delivery engine too."""
    hooks: Webhooks = service.hooks

    @post("/partners", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def create_partner(data: JSONBody[Any]) -> dict[str, Any]:
        body = _object(data)
        status = _field(body, "status", str, required=False) or "active"
        partner = service.create_partner(_field(body, "name", str), _field(body, "type", str), status)
        return {"id": partner.id, "name": partner.name, "type": partner.type, "status": partner.status}

    @get("/partners/{partner_id:str}", sync_to_thread=True)
    def read_partner(partner_id: str = _PARTNER_ID) -> dict[str, Any]:
        partner = service.partner(partner_id)
        return {"id": partner.id, "name": partner.name, "type": partner.type, "status": partner.status}

    @patch("/partners/{partner_id:str}", sync_to_thread=True)
    def update_partner(data: JSONBody[Any], partner_id: str = _PARTNER_ID) -> dict[str, Any]:
        body = _object(data)
        unknown = set(body) - {"name", "type", "status"}
        if unknown:
            raise Invalid(sorted(unknown)[0], "not a partner field (name, type, status)")
        partner, changes = service.update_partner(
            partner_id,
            name=_field(body, "name", str, required=False),
            type=_field(body, "type", str, required=False),
            status=_field(body, "status", str, required=False),
        )
        return {
            "id": partner.id,
            "name": partner.name,
            "type": partner.type,
            "status": partner.status,
            "changes": changes,
        }

    @post("/tracked-events", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def track(data: JSONBody[Any]) -> dict[str, Any]:
        items = _field(_object(data), "events", list)
        tracked = []
        for index, item in enumerate(items):
            item = _object(item)
            try:
                tracked.append(
                    Tracked(
                        _field(item, "userId", str),
                        _field(item, "partnerId", str),
                        _field(item, "type", str),
                        _time(item, "timestamp"),
                    )
                )
            except Invalid as error:
                raise Invalid(f"events[{index}].{error.field}", error.reason) from None
        return {"ids": service.track(tracked)}

    @post("/deals", status_code=HTTP_201_CREATED, sync_to_thread=True)
    def close_deal(data: JSONBody[Any]) -> dict[str, Any]:
        body = _object(data)
        half_life = body.get("halfLifeDays")
        if half_life is not None and (not isinstance(half_life, int | float) or isinstance(half_life, bool)):
            raise Invalid("halfLifeDays", "a number of days")
        deal = service.close_deal(
            _field(body, "userId", str),
            _field(body, "amount", int),
            _field(body, "model", str),
            closed_at=_time(body, "closedAt"),
            half_life=None if half_life is None else timedelta(days=half_life),
        )
        return deal_data(deal)

    @post("/webhooks", status_code=HTTP_201_CREATED)
    async def subscribe(data: JSONBody[Any]) -> dict[str, Any]:
        body = _object(data)
        view = await hooks.register(
            _field(body, "url", str),
            _field(body, "events", list),
            secret=_field(body, "secret", str, required=False),
        )
        endpoint = view.endpoint
        return {"id": endpoint.endpoint_id, "url": endpoint.url, "events": list(endpoint.event_types)}

    @asynccontextmanager
    async def delivering(_: Litestar) -> AsyncIterator[None]:
        if not deliver:
            yield
            return
        async with hooks.running():
            yield

    return Litestar(
        [create_partner, read_partner, update_partner, track, close_deal, subscribe],
        lifespan=[delivering],
        exception_handlers={
            Invalid: _invalid,
            ValidationError: _invalid,
            NotFound: _not_found,
            HTTPException: _http,
        },
    )
