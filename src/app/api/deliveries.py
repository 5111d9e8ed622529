"""``/deliveries``: one delivery with its attempts, and redelivering it by hand."""

from __future__ import annotations

from collections.abc import Collection

from litestar import Router, get, post

from ...core.delivery import DeliveryStatus
from ...core.errors import NotFound
from ..bootstrap import Runtime
from .auth import SECURITY, Account
from .params import id_parameter
from .problems import problems
from .resources import Delivery, DeliveryList, delivery_body

__all__ = ["delivery_page", "delivery_routes"]

_ID = id_parameter("delivery (`dlv_…`)")


async def delivery_page(
    runtime: Runtime,
    account: Account,
    size: int,
    cursor: str | None,
    *,
    endpoint_id: str | None = None,
    statuses: Collection[DeliveryStatus] | None = None,
) -> DeliveryList:
    page = await runtime.service.queries.deliveries(
        account, endpoint_id=endpoint_id, statuses=statuses, before=cursor, limit=size
    )
    return DeliveryList(tuple(delivery_body(record) for record in page.items), page.next_cursor)


def delivery_routes(runtime: Runtime) -> Router:
    service = runtime.service

    @get("/{delivery_id:str}", summary="Get a delivery with every attempt", responses=problems(401, 404, 410))
    async def read(account: Account, delivery_id: str = _ID) -> Delivery:
        try:
            return delivery_body(await service.queries.delivery_record(account, delivery_id))
        except NotFound:
            raise await runtime.purged.delivery_error(delivery_id) from None

    @post(
        "/{delivery_id:str}/retry",
        status_code=202,
        summary="Send a finished delivery again",
        responses=problems(401, 404, 409, 410),
    )
    async def retry(account: Account, delivery_id: str = _ID) -> Delivery:
        try:
            await service.redeliver(account, delivery_id)
        except NotFound:
            raise await runtime.purged.delivery_error(delivery_id) from None
        return delivery_body(await service.queries.delivery_record(account, delivery_id))

    return Router("/deliveries", route_handlers=[read, retry], tags=["deliveries"], security=SECURITY)
