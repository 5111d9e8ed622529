"""What needs an account's attention: the dashboard's banner, the same facts the operational
notices report (ADR 0017), read from the read models rather than from the notices, so that it
holds whether or not a webhook subscribes to them."""

from __future__ import annotations

from datetime import timedelta

from attrs import frozen

from ...core import endpoint as ep
from ...core.delivery import DeliveryStatus
from ...core.ports import Clock, Storage

__all__ = ["ATTENTION_WINDOW", "Attention", "attention"]

ATTENTION_WINDOW = timedelta(hours=24)
#: The banner counts exhausted deliveries up to this many ("1000+" beyond): its cost stays flat.
EXHAUSTED_SHOWN = 1000


@frozen
class Attention:
    """Webhooks failing now (their latest attempts failed), webhooks disabled, deliveries that
    failed their last retry within the window (``exhausted_more``: there are more than counted)."""

    failing: int
    disabled: int
    exhausted: int
    exhausted_more: bool = False

    @property
    def quiet(self) -> bool:
        """Nothing to show."""
        return not (self.failing or self.disabled or self.exhausted)


async def attention(store: Storage, clock: Clock, account_id: str) -> Attention:
    """The account's webhooks failing or disabled, and its deliveries exhausted in the last 24 h."""
    views = await store.list_endpoints(account_id, limit=10_000)
    enabled = [v for v in views if v.endpoint.status is ep.EndpointStatus.ENABLED]
    failed = await store.deliveries(
        account_id,
        statuses=(DeliveryStatus.FAILED,),
        since=clock.now() - ATTENTION_WINDOW,
        limit=EXHAUSTED_SHOWN + 1,
    )
    return Attention(
        failing=sum(v.failing_since is not None for v in enabled),
        disabled=sum(v.endpoint.status is ep.EndpointStatus.DISABLED for v in views),
        exhausted=min(len(failed), EXHAUSTED_SHOWN),
        exhausted_more=len(failed) > EXHAUSTED_SHOWN,
    )
