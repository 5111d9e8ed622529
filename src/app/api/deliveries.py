"""``/deliveries``: one delivery with its attempts, and redelivering it by hand."""

from __future__ import annotations

from collections.abc import Collection

from litestar import Router, get, post
from litestar.params import Parameter

from ...core.delivery import DeliveryStatus
from ...core.views import DeliveryView
from ..bootstrap import Runtime
from .auth import SECURITY, Account
from .resources import Delivery, DeliveryList, delivery_body

__all__ = ["delivery_page", "delivery_routes", "with_attempts"]

_ID = Parameter(description="The delivery's id (`dlv_…`).")


async def with_attempts(runtime: Runtime, views: Collection[DeliveryView]) -> list[Delivery]:
    store = runtime.service.store
    return [delivery_body(view, await store.attempts(view.delivery.delivery_id)) for view in views]


async def delivery_page(
    runtime: Runtime,
    account: Account,
    size: int,
    cursor: str | None,
    *,
    endpoint_id: str | None = None,
    statuses: Collection[DeliveryStatus] | None = None,
) -> DeliveryList:
    views = await runtime.service.store.deliveries(
        account, endpoint_id=endpoint_id, statuses=statuses, before=cursor, limit=size + 1
    )
    page = await with_attempts(runtime, views[:size])
    return DeliveryList(tuple(page), page[-1].id if len(views) > size else None)


def delivery_routes(runtime: Runtime) -> Router:
    service = runtime.service

    @get("/{delivery_id:str}", summary="Get a delivery with every attempt")
    async def read(account: Account, delivery_id: str = _ID) -> Delivery:
        view = await service.delivery(account, delivery_id)
        return delivery_body(view, await service.store.attempts(delivery_id))

    @post("/{delivery_id:str}/retry", status_code=202, summary="Send a finished delivery again")
    async def retry(account: Account, delivery_id: str = _ID) -> Delivery:
        view = await service.redeliver(account, delivery_id)
        return delivery_body(view, await service.store.attempts(delivery_id))

    return Router("/deliveries", route_handlers=[read, retry], tags=["deliveries"], security=SECURITY)
