"""Settings → Webhooks: the list, Add Webhook, a webhook's page and its actions.

Every change goes through the use cases (``WebhookService``) with the same checks as the API
(``Runtime.check_target`` for URLs), so a refusal reads the same here as there.
"""

from __future__ import annotations

import inspect
import json
from datetime import timedelta
from typing import Any

from attrs import frozen
from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict
from litestar.params import Parameter
from litestar.response import Template

from ...core.catalog import SUBSCRIBABLE_TYPES, payload_class
from ...core.endpoint_fields import MAX_ROTATION_GRACE
from ...core.errors import ValidationError
from ...core.samples import SAMPLE_DATA
from ..bootstrap import Runtime
from ..services.reports import Reports
from .rendering import page, see_other

__all__ = ["CATALOG", "WEBHOOK_ID", "CatalogEntry", "signed_in", "webhook_handlers"]


@frozen
class CatalogEntry:
    """An event type as the forms show it: its description and an example ``data``."""

    type: str
    description: str
    example: str


def _description(event_type: str) -> str:
    text = inspect.cleandoc(payload_class(event_type).__doc__ or "").replace("``", "")
    return text.removeprefix(f"{event_type}: ")  # the checkbox's label already names the type


#: The spec's types, then the operational notices (ADR 0017) a webhook may also subscribe to.
CATALOG = tuple(
    CatalogEntry(member, _description(member), json.dumps(SAMPLE_DATA[member], indent=2))
    for member in SUBSCRIBABLE_TYPES
)


def signed_in(request: Request[Any, Any, Any]) -> str:
    account: str = request.state["dashboard_account"]
    return account


def _form_values(form: FormMultiDict) -> dict[str, Any]:
    return {
        "url": str(form.get("url", "")).strip(),
        "events": tuple(str(e) for e in form.getall("events", [])),
        "description": str(form.get("description", "")).strip(),
        "secret": str(form.get("secret", "")).strip(),
        "standard_webhooks": form.get("standard_webhooks") == "on",
        "ordered": form.get("ordered") == "on",
        "rate_limit": str(form.get("rate_limit", "")).strip(),
        "rate_limit_burst": str(form.get("rate_limit_burst", "")).strip(),
        "circuit_breaker_threshold": str(form.get("circuit_breaker_threshold", "")).strip(),
    }


def _whole_number(values: dict[str, Any], name: str) -> int:
    """A policy field of the edit form: blank is 0 (off, or no burst)."""
    text = values[name]
    if not text:
        return 0
    if not text.isdigit() or len(text) > 6:
        raise ValidationError(name, f"give a whole number, or leave it blank for none; got {text!r}")
    return int(text)


#: The ``{webhook_id}`` path parameter of every page of a webhook.
WEBHOOK_ID = Parameter(description="The webhook's id.")


def webhook_handlers(runtime: Runtime, reports: Reports) -> list[Any]:
    service = runtime.service

    @get("/webhooks", include_in_schema=False)
    async def list_webhooks(request: Request[Any, Any, Any]) -> Template:
        account = signed_in(request)
        views = await reports.webhooks(account)
        return page(request, "webhooks.html", webhooks=views, health=await reports.health(account))

    @get("/webhooks/new", include_in_schema=False)
    async def new_form(request: Request[Any, Any, Any]) -> Template:
        blank = {
            "url": "",
            "events": (),
            "description": "",
            "secret": "",
            "standard_webhooks": False,
            "ordered": False,
        }
        return page(request, "webhook_new.html", catalog=CATALOG, values=blank, error=None)

    @post("/webhooks/new", include_in_schema=False)
    async def create(request: Request[Any, Any, Any]) -> Template:
        account = signed_in(request)
        values = _form_values(await request.form())
        try:
            await runtime.check_target(values["url"])
            view = await service.register_endpoint(
                account,
                values["url"],
                values["events"],
                values["secret"] or None,
                values["description"],
                values["standard_webhooks"],
                ordered=values["ordered"],
            )
        except ValidationError as error:
            return page(request, "webhook_new.html", 422, catalog=CATALOG, values=values, error=str(error))
        # The secret is shown on this response only: it is not kept in the session.
        return page(request, "webhook_created.html", 201, webhook=view.endpoint)

    async def show(
        request: Request[Any, Any, Any], webhook_id: str, status: int = 200, **extra: Any
    ) -> Template:
        view = await service.endpoint(signed_in(request), webhook_id)
        extra.setdefault("error", None)
        extra.setdefault("values", None)
        return page(
            request,
            "webhook.html",
            status,
            webhook=view.endpoint,
            failing_since=view.failing_since,
            failures=view.failures,
            disabled_since=await reports.disabled_since(view),
            catalog=CATALOG,
            max_grace_hours=int(MAX_ROTATION_GRACE.total_seconds() // 3600),
            **extra,
        )

    @get("/webhooks/{webhook_id:str}", include_in_schema=False)
    async def read(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Template:
        return await show(request, webhook_id)

    @post("/webhooks/{webhook_id:str}", include_in_schema=False)
    async def update(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        account = signed_in(request)
        values = _form_values(await request.form())
        try:
            await service.endpoint(account, webhook_id)
            await runtime.check_target(values["url"])
            await service.update_endpoint(
                account,
                webhook_id,
                url=values["url"],
                event_types=values["events"],
                description=values["description"],
                standard_webhooks=values["standard_webhooks"],
                ordered=values["ordered"],
                rate_limit=_whole_number(values, "rate_limit"),
                rate_limit_burst=_whole_number(values, "rate_limit_burst"),
                circuit_breaker_threshold=_whole_number(values, "circuit_breaker_threshold"),
            )
        except ValidationError as error:
            return await show(request, webhook_id, 422, error=str(error), values=values)
        return see_other(f"/dashboard/webhooks/{webhook_id}?saved=1")

    @post("/webhooks/{webhook_id:str}/enable", include_in_schema=False)
    async def enable(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        await service.enable_endpoint(signed_in(request), webhook_id)
        return see_other(f"/dashboard/webhooks/{webhook_id}")

    @post("/webhooks/{webhook_id:str}/disable", include_in_schema=False)
    async def disable(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        await service.disable_endpoint(signed_in(request), webhook_id)
        return see_other(f"/dashboard/webhooks/{webhook_id}")

    @post("/webhooks/{webhook_id:str}/rotate", include_in_schema=False)
    async def rotate(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        form = await request.form()
        hours = str(form.get("grace_hours", "24")).strip()
        try:
            if not hours.isdigit():
                raise ValidationError("grace_hours", f"give a whole number of hours, got {hours!r}")
            grace = timedelta(hours=min(int(hours), 10_000))
            view = await service.rotate_secret(signed_in(request), webhook_id, None, grace)
        except ValidationError as error:
            return await show(request, webhook_id, 422, error=str(error))
        return await show(request, webhook_id, rotated=True, secret=view.endpoint.secret)

    @post("/webhooks/{webhook_id:str}/reveal", include_in_schema=False)
    async def reveal(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Template:
        view = await service.endpoint(signed_in(request), webhook_id)
        return await show(request, webhook_id, secret=view.endpoint.secret)

    @get("/webhooks/{webhook_id:str}/delete", include_in_schema=False)
    async def confirm_delete(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Template:
        view = await service.endpoint(signed_in(request), webhook_id)
        return page(request, "webhook_delete.html", webhook=view.endpoint)

    @post("/webhooks/{webhook_id:str}/delete", include_in_schema=False)
    async def remove(request: Request[Any, Any, Any], webhook_id: str = WEBHOOK_ID) -> Response[Any]:
        await service.delete_endpoint(signed_in(request), webhook_id)
        return see_other("/dashboard/webhooks?deleted=1")

    return [
        list_webhooks,
        new_form,
        create,
        read,
        update,
        enable,
        disable,
        rotate,
        reveal,
        confirm_delete,
        remove,
    ]
