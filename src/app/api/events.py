"""``/events`` and ``/event-types``: publishing (the ingest path) and the catalog."""

from __future__ import annotations

import inspect

from litestar import Router, get, post
from litestar.params import JSONBody

from ...adapters.payloads import check_event_data, json_schema
from ...core.catalog import EventType as CatalogType
from ...core.catalog import check_event_type, payload_class
from ...core.errors import NotFound
from ...core.samples import SAMPLE_DATA
from ..bootstrap import Runtime
from ..services import NewEvent
from .auth import SECURITY, Account
from .params import id_parameter
from .problems import problems
from .resources import Event, EventType, EventTypeList, Published, PublishEvent, event_body

__all__ = ["catalog", "event_routes"]


def catalog() -> EventTypeList:
    """Every event type with its payload schema and the spec's example: built once."""
    return EventTypeList(
        tuple(
            EventType(
                type=member.value,
                description=inspect.cleandoc(payload_class(member).__doc__ or "").replace("``", "`"),
                schema=json_schema(payload_class(member)),
                example=SAMPLE_DATA[member],
            )
            for member in CatalogType
        )
    )


def event_routes(runtime: Runtime) -> list[Router]:
    service = runtime.service
    types = catalog()

    @post(
        "/",
        status_code=202,
        summary="Publish an event to every subscribed webhook",
        responses=problems(400, 401, 409, 413, 422),
    )
    async def publish(account: Account, data: JSONBody[PublishEvent]) -> Published:
        event_type = check_event_type(data.type).value
        check_event_data(event_type, data.data)
        result = await service.publish(account, NewEvent(event_type, data.data, data.id, data.timestamp))
        if runtime.tracer is not None and not result.duplicate:
            runtime.tracer.published(account, result.event_id, event_type, result.delivery_ids)
        return Published(result.event_id, result.delivery_ids, result.duplicate)

    @get(
        "/{event_id:str}",
        summary="Get a published event and its deliveries",
        responses=problems(401, 404, 410),
    )
    async def read(account: Account, event_id: str = id_parameter("event (`evt_…`)")) -> Event:
        try:
            return event_body(await service.queries.event_record(account, event_id))
        except NotFound:
            gone = await runtime.purged.event(account, event_id)
            if gone is not None:
                raise gone from None
            raise

    @get(
        "/",
        summary="The event types a webhook can subscribe to, with schemas and examples",
        responses=problems(401),
    )
    async def list_types(account: Account) -> EventTypeList:
        return types

    return [
        Router("/events", route_handlers=[publish, read], tags=["events"], security=SECURITY),
        Router("/event-types", route_handlers=[list_types], tags=["events"], security=SECURITY),
    ]
