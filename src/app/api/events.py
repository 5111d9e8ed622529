"""``/events`` and ``/event-types``: publishing (the ingest path) and the catalog."""

from __future__ import annotations

import inspect
import re

import msgspec
from litestar import Router, get, post
from litestar.params import JSONBody

from ...adapters.canonical import canonical_text
from ...adapters.payloads import InvalidPayload, check_event_data, check_events, json_schema
from ...core.catalog import SUBSCRIBABLE_TYPES, check_event_type, payload_class
from ...core.errors import NotFound, ValidationError
from ...core.operational import OPERATIONAL_TYPES
from ...core.samples import SAMPLE_DATA
from ..bootstrap import Runtime
from ..services import MAX_BATCH, NewEvent, check_event_id
from .auth import SECURITY, Account
from .params import id_parameter
from .problems import problems
from .resources import (
    Event,
    EventType,
    EventTypeList,
    PublishBatch,
    Published,
    PublishedBatch,
    PublishEvent,
    event_body,
)
from .wire import Encoded

__all__ = ["BATCH_BODY_FACTOR", "catalog", "event_routes"]

#: ``POST /events/batch`` takes a body this many times ``max_body_size`` (16 MiB by default);
#: each of its events is held to ``max_body_size`` alone, as a ``POST /events`` body is.
BATCH_BODY_FACTOR = 16
_encode = msgspec.json.Encoder().encode
_INDEX = re.compile(r"events\[(\d+)\]")


def _by_index(error: tuple[str, str]) -> int:
    """The index of the event an error of a batch is about, to list the errors in its order."""
    found = _INDEX.match(error[0])
    return int(found.group(1)) if found else -1


def catalog() -> EventTypeList:
    """Every event type with its payload schema and an example: the spec's four (the spec's own
    examples), then the operational ones (ADR 0017), marked as such. Built once."""
    return EventTypeList(
        tuple(
            EventType(
                type=member,
                description=inspect.cleandoc(payload_class(member).__doc__ or "").replace("``", "`"),
                schema=json_schema(payload_class(member)),
                example=SAMPLE_DATA[member],
                operational=member in OPERATIONAL_TYPES,
            )
            for member in SUBSCRIBABLE_TYPES
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
    async def publish(account: Account, data: JSONBody[PublishEvent]) -> Encoded[Published]:
        event_type = check_event_type(data.type).value
        check_event_data(event_type, data.data, parsed=True)
        new = NewEvent(event_type, data.data, data.id, data.timestamp, canonical_text(data.data))
        result = await service.publish(account, new)
        if runtime.tracer is not None and not result.duplicate:
            runtime.tracer.published(account, result.event_id, event_type, result.delivery_ids)
        return Encoded(Published(result.event_id, result.delivery_ids, result.duplicate), status_code=202)

    limit = runtime.settings.max_body_size

    @post(
        "/batch",
        status_code=202,
        summary=f"Publish up to {MAX_BATCH:,} events in one transaction",
        description=(
            f"All or nothing: any wrong event (`errors` names it, as `events[3].data.amount`) and"
            f" none is stored. A body may hold {BATCH_BODY_FACTOR} times the size limit of one"
            f" event; more than {MAX_BATCH:,} events is a 422 naming `events`."
        ),
        responses=problems(400, 401, 409, 413, 422),
        request_max_body_size=BATCH_BODY_FACTOR * limit,
    )
    async def publish_batch(account: Account, data: JSONBody[PublishBatch]) -> PublishedBatch:
        events = data.events
        errors: list[tuple[str, str]] = []
        try:
            types = check_events([(event.type, event.data) for event in events], parsed=True)
        except InvalidPayload as error:
            errors += error.errors
        texts: list[str | None] = []
        for index, event in enumerate(events):
            if event.id is not None:
                try:
                    check_event_id(event.id, f"events[{index}].id")
                except ValidationError as error:
                    errors.append((error.field, error.reason))
            try:
                encoded = _encode(event.data)
            except (TypeError, UnicodeError, OverflowError, msgspec.EncodeError):
                texts.append(None)  # a lone surrogate: the core's encoder names it
                continue
            size = len(encoded)
            if size > limit:
                errors.append((f"events[{index}].data", f"{size:,} bytes: an event may be at most {limit:,}"))
            texts.append(canonical_text(event.data, encoded=encoded))
        if errors:
            raise InvalidPayload(sorted(errors, key=_by_index))
        news = [
            NewEvent(t, e.data, e.id, e.timestamp, text)
            for t, e, text in zip(types, events, texts, strict=True)
        ]
        results = await service.publish_batch(account, news)
        return PublishedBatch(tuple(Published(r.event_id, r.delivery_ids, r.duplicate) for r in results))

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
        Router("/events", route_handlers=[publish, publish_batch, read], tags=["events"], security=SECURITY),
        Router("/event-types", route_handlers=[list_types], tags=["events"], security=SECURITY),
    ]
