"""``/webhooks``: register, list, read, change, rotate, enable, disable, test, delete, recover."""

from __future__ import annotations

from datetime import timedelta

from litestar import Router, delete, get, patch, post, put
from litestar.params import JSONBody

from ...core.endpoint_fields import MAX_ROTATION_GRACE
from ..bootstrap import Runtime
from .auth import SECURITY, Account
from .deliveries import delivery_page
from .params import (
    cursor_parameter,
    id_parameter,
    limit_parameter,
    page_size,
    since_parameter,
    since_time,
    status_parameter,
    statuses,
)
from .problems import problems
from .resources import (
    DeliveryList,
    NewWebhook,
    RecoverResult,
    RotateSecret,
    SecretBody,
    SendTest,
    SentTest,
    Webhook,
    WebhookChanges,
    WebhookList,
    webhook_body,
)

__all__ = ["webhook_routes"]

MAX_GRACE_SECONDS = int(MAX_ROTATION_GRACE.total_seconds())
_ID = id_parameter("webhook (`wh_…`)")
#: The problems each kind of operation can answer with (besides 500).
_READ = problems(401, 404)
_COMMAND = problems(401, 404, 409)
_WITH_BODY = problems(400, 401, 404, 409, 413, 422)


def webhook_routes(runtime: Runtime) -> Router:
    service = runtime.service

    @post("/", status_code=201, summary="Register a webhook", responses=problems(400, 401, 413, 422))
    async def create(account: Account, data: JSONBody[NewWebhook]) -> Webhook:
        await runtime.check_target(data.url)
        view = await service.register_endpoint(
            account,
            data.url,
            data.events,
            data.secret,
            data.description,
            data.standard_webhooks,
            ordered=data.ordered,
            rate_limit=data.rate_limit or None,  # 0: no limit
            rate_limit_burst=data.rate_limit_burst,
            circuit_breaker_threshold=data.circuit_breaker_threshold or None,  # 0: no breaker
        )
        return webhook_body(view, with_secret=True)

    @get("/", summary="List webhooks", responses=problems(401, 422))
    async def list_webhooks(
        account: Account, limit: str | None = limit_parameter(50), cursor: str | None = cursor_parameter()
    ) -> WebhookList:
        size = page_size(limit, 50)
        page = await service.queries.endpoints(account, after=cursor, limit=size)
        return WebhookList(tuple(webhook_body(view) for view in page.items), page.next_cursor)

    @get("/{webhook_id:str}", summary="Get a webhook", responses=_READ)
    async def read(account: Account, webhook_id: str = _ID) -> Webhook:
        return webhook_body(await service.endpoint(account, webhook_id))

    async def change(account: str, webhook_id: str, data: WebhookChanges) -> Webhook:
        if data.url is not None:
            await runtime.check_target(data.url)
        view = await service.update_endpoint(
            account,
            webhook_id,
            url=data.url,
            event_types=data.events,
            description=data.description,
            standard_webhooks=data.standard_webhooks,
            ordered=data.ordered,
            rate_limit=data.rate_limit,
            rate_limit_burst=data.rate_limit_burst,
            circuit_breaker_threshold=data.circuit_breaker_threshold,
        )
        return webhook_body(view)

    @put(
        "/{webhook_id:str}",
        summary="Update a webhook (fields left out keep their value)",
        responses=_WITH_BODY,
    )
    async def replace(account: Account, data: JSONBody[WebhookChanges], webhook_id: str = _ID) -> Webhook:
        return await change(account, webhook_id, data)

    @patch("/{webhook_id:str}", summary="Update some fields of a webhook", responses=_WITH_BODY)
    async def update(account: Account, data: JSONBody[WebhookChanges], webhook_id: str = _ID) -> Webhook:
        return await change(account, webhook_id, data)

    @delete(
        "/{webhook_id:str}",
        status_code=204,
        summary="Delete a webhook; its pending deliveries stop",
        responses=_COMMAND,
    )
    async def remove(account: Account, webhook_id: str = _ID) -> None:
        await service.delete_endpoint(account, webhook_id)

    @get("/{webhook_id:str}/secret", summary="Reveal the signing secret", responses=_READ)
    async def reveal(account: Account, webhook_id: str = _ID) -> SecretBody:
        view = await service.endpoint(account, webhook_id)
        return SecretBody(view.endpoint.secret)

    @post(
        "/{webhook_id:str}/rotate-secret",
        status_code=200,
        summary="Rotate the signing secret",
        responses=_WITH_BODY,
    )
    async def rotate(
        account: Account, webhook_id: str = _ID, data: JSONBody[RotateSecret | None] = None
    ) -> Webhook:
        body = data or RotateSecret()
        grace = None
        if body.grace_period_seconds is not None:
            # Clamped just past both limits, so that an absurd number (of either sign) is the
            # core's 422, not an overflow of timedelta.
            grace = timedelta(seconds=max(-1, min(body.grace_period_seconds, MAX_GRACE_SECONDS + 1)))
        view = await service.rotate_secret(account, webhook_id, body.secret, grace)
        return webhook_body(view, with_secret=True)

    @post(
        "/{webhook_id:str}/enable",
        status_code=200,
        summary="Enable; held deliveries go out",
        responses=_COMMAND,
    )
    async def enable(account: Account, webhook_id: str = _ID) -> Webhook:
        return webhook_body(await service.enable_endpoint(account, webhook_id))

    @post(
        "/{webhook_id:str}/disable",
        status_code=200,
        summary="Disable; deliveries are held",
        responses=_COMMAND,
    )
    async def disable(account: Account, webhook_id: str = _ID) -> Webhook:
        return webhook_body(await service.disable_endpoint(account, webhook_id))

    @post(
        "/{webhook_id:str}/test",
        status_code=202,
        summary="Send a sample event, marked as a test",
        responses=_WITH_BODY,
    )
    async def send_test(
        account: Account, webhook_id: str = _ID, data: JSONBody[SendTest | None] = None
    ) -> SentTest:
        event_type = data.type if data is not None else None
        if event_type is None:
            event_type = (await service.endpoint(account, webhook_id)).endpoint.event_types[0]
        result = await service.send_test(account, webhook_id, event_type)
        return SentTest(result.event_id, result.delivery_ids[0])

    @get(
        "/{webhook_id:str}/deliveries",
        summary="The delivery log of a webhook, newest first",
        responses=problems(401, 404, 422),
    )
    async def deliveries(
        account: Account,
        webhook_id: str = _ID,
        status: str | None = status_parameter(),
        limit: str | None = limit_parameter(20),
        cursor: str | None = cursor_parameter(),
    ) -> DeliveryList:
        wanted = statuses(status)
        size = page_size(limit, 20)
        return await delivery_page(runtime, account, size, cursor, endpoint_id=webhook_id, statuses=wanted)

    @post(
        "/{webhook_id:str}/recover",
        status_code=202,
        summary="Redeliver every failed delivery since a time",
        responses=problems(401, 404, 409, 422),
    )
    async def recover(
        account: Account, webhook_id: str = _ID, since: str | None = since_parameter()
    ) -> RecoverResult:
        return RecoverResult(await service.recover(account, webhook_id, since_time(since)))

    return Router(
        "/webhooks",
        route_handlers=[
            create,
            list_webhooks,
            read,
            replace,
            update,
            remove,
            reveal,
            rotate,
            enable,
            disable,
            send_test,
            deliveries,
            recover,
        ],
        tags=["webhooks"],
        security=SECURITY,
    )
