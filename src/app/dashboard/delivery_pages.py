"""The delivery log, a delivery's page (Retry), Recover, Failures and Send Test Event.

Pages that show work in progress poll with htmx (``hx-trigger="every 2s"``) and get back only
their changing part; without JavaScript they are plain pages with a reload link.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Template

from ...core.catalog import SUBSCRIBABLE_TYPES, EventType
from ...core.delivery import DeliveryStatus
from ...core.errors import NotFound, ValidationError
from ...core.samples import SAMPLE_DATA
from ...core.wire import parse_timestamp
from ..bootstrap import Runtime
from ..services.reports import LogFilter, Reports
from .rendering import is_htmx, page, see_other
from .webhook_pages import WEBHOOK_ID, signed_in

__all__ = ["STATUS_FILTERS", "delivery_handlers"]

PAGE_SIZE = 50
BODY_SHOWN = 4096

#: The log's status filter: the four the guide's users ask about, and every other state.
STATUS_FILTERS: dict[str, tuple[DeliveryStatus, ...]] = {
    "succeeded": (DeliveryStatus.SUCCEEDED,),
    "retrying": (DeliveryStatus.RETRYING,),
    "failed": (DeliveryStatus.FAILED,),
    "held": (DeliveryStatus.HELD,),
    "scheduled": (DeliveryStatus.SCHEDULED,),
    "cancelled": (DeliveryStatus.CANCELLED,),
    "problems": (DeliveryStatus.FAILED, DeliveryStatus.RETRYING),
}
_FINAL = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)


def _time(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    # <input type="datetime-local"> sends 2024-01-20T15:00 (read as UTC, as the page says).
    if len(text) == 16:
        text += ":00"
    if not text.endswith("Z") and "+" not in text[10:]:
        text += "Z"
    return parse_timestamp(text, field)


def _filters(query: Any, endpoint_id: str | None = None) -> tuple[LogFilter, dict[str, str]]:
    chosen = {k: str(query.get(k, "") or "") for k in ("webhook", "status", "type", "from", "until")}
    status = chosen["status"]
    if status and status not in STATUS_FILTERS:
        raise ValidationError("status", f"unknown status {status!r}; use one of {', '.join(STATUS_FILTERS)}")
    event_type = chosen["type"]
    if event_type and event_type not in SUBSCRIBABLE_TYPES:
        raise ValidationError("type", f"unknown event type {event_type!r}")
    wanted = LogFilter(
        endpoint_id=endpoint_id or chosen["webhook"] or None,
        statuses=STATUS_FILTERS[status] if status else None,
        event_type=event_type or None,
        created_from=_time(chosen["from"], "from"),
        created_until=_time(chosen["until"], "until"),
    )
    return wanted, chosen


_DELIVERY = Parameter(description="The delivery's id.")


def delivery_handlers(runtime: Runtime, reports: Reports) -> list[Any]:
    service = runtime.service

    async def log(
        request: Request[Any, Any, Any], template: str, fixed: Collection[DeliveryStatus] | None = None
    ) -> Template:
        account = signed_in(request)
        cursor = request.query_params.get("cursor") or None
        error = None
        try:
            wanted, chosen = _filters(request.query_params)
        except ValidationError as problem:
            wanted, chosen, error = LogFilter(), {}, str(problem)
        if fixed is not None and wanted.statuses is None:
            wanted = LogFilter(
                wanted.endpoint_id, fixed, wanted.event_type, wanted.created_from, wanted.created_until
            )
        result = await reports.log(account, wanted, cursor, PAGE_SIZE)
        webhooks = await reports.webhooks(account)
        return page(
            request,
            "_log_rows.html" if is_htmx(request) else template,
            rows=result.rows,
            next_cursor=result.next_cursor,
            cursor=cursor,
            chosen=chosen,
            error=error,
            webhooks={w.endpoint.endpoint_id: w.endpoint for w in webhooks},
            statuses=list(STATUS_FILTERS),
            types=list(SUBSCRIBABLE_TYPES),
            poll=cursor is None,
        )

    @get("/deliveries", include_in_schema=False)
    async def deliveries(request: Request[Any, Any, Any]) -> Template:
        return await log(request, "deliveries.html")

    @get("/failures", include_in_schema=False)
    async def failures(request: Request[Any, Any, Any]) -> Template:
        return await log(request, "failures.html", STATUS_FILTERS["problems"])

    async def delivery_context(
        request: Request[Any, Any, Any], delivery_id: str = _DELIVERY
    ) -> dict[str, Any]:
        account = signed_in(request)
        try:
            view = await service.delivery(account, delivery_id)
        except NotFound:  # removed by retention: the page says so (410)
            raise await runtime.purged.delivery_error(delivery_id) from None
        event = await service.event(account, view.delivery.event_id)
        attempts = await reports.attempts(account, delivery_id)
        headers = await reports.sent_headers(view, attempts, event.body)
        webhook = await reports.endpoint_of(account, view)
        return {
            "d": view,
            "event": event,
            "attempts": list(zip(attempts, headers, strict=True)),
            "webhook": webhook.endpoint,
            "final": view.delivery.status in _FINAL,
            "body_shown": BODY_SHOWN,
        }

    @get("/deliveries/{delivery_id:str}", include_in_schema=False)
    async def delivery(request: Request[Any, Any, Any], delivery_id: str = _DELIVERY) -> Template:
        context = await delivery_context(request, delivery_id)
        name = "_delivery_live.html" if is_htmx(request) else "delivery.html"
        return page(request, name, **context)

    @post("/deliveries/{delivery_id:str}/retry", include_in_schema=False)
    async def retry(request: Request[Any, Any, Any], delivery_id: str = _DELIVERY) -> Response[Any]:
        await service.redeliver(signed_in(request), delivery_id)
        return see_other(f"/dashboard/deliveries/{delivery_id}?retried=1")

    @post("/webhooks/{webhook_id:str}/recover", include_in_schema=False)
    async def recover(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        account = signed_in(request)
        form = await request.form()
        await service.endpoint(account, webhook_id)
        try:
            since = _time(str(form.get("since", "")), "since")
            if since is None:
                raise ValidationError("since", "give the time to recover from")
        except ValidationError as error:
            return page(request, "error.html", 422, title="Recover", detail=str(error))
        count = await service.recover(account, webhook_id, since)
        return see_other(f"/dashboard/deliveries?webhook={webhook_id}&recovered={count}")

    @get("/webhooks/{webhook_id:str}/test", include_in_schema=False)
    async def test_form(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Template:
        view = await service.endpoint(signed_in(request), webhook_id)
        chosen = request.query_params.get("type") or view.endpoint.event_types[0]
        if chosen not in set(EventType):
            chosen = view.endpoint.event_types[0]
        sample = json.dumps(
            {"id": "evt_test_…", "type": chosen, "timestamp": "…", "data": SAMPLE_DATA[chosen]},
            indent=2,
            ensure_ascii=False,
        )
        if is_htmx(request) and request.query_params.get("part") == "sample":
            return page(request, "_sample.html", sample=sample, chosen=chosen)
        sent = request.query_params.get("delivery")
        result = await delivery_context(request, sent) if sent else None
        return page(
            request,
            "test_event.html",
            webhook=view.endpoint,
            chosen=chosen,
            types=[t.value for t in EventType],
            sample=sample,
            result=result,
        )

    @post("/webhooks/{webhook_id:str}/test", include_in_schema=False)
    async def send_test(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        form = await request.form()
        event_type = str(form.get("type", ""))
        result = await service.send_test(signed_in(request), webhook_id, event_type)
        return see_other(
            f"/dashboard/webhooks/{webhook_id}/test?type={event_type}&delivery={result.delivery_ids[0]}"
        )

    @get("/deliveries/{delivery_id:str}/result", include_in_schema=False)
    async def test_result(request: Request[Any, Any, Any], delivery_id: str = _DELIVERY) -> Template:
        return page(request, "_test_result.html", result=await delivery_context(request, delivery_id))

    return [deliveries, failures, delivery, retry, recover, test_form, send_test, test_result]
