"""The Attribution API's own data and use cases: partners, tracked events (touchpoints), deals.

Each use case writes its rows and publishes its webhook event in one transaction
(``Webhooks.begin`` and ``publish_in``): a partner saved is a ``partner.created`` delivered, a
deal rolled back is no ``deal.attributed`` sent. Event ids are derived from the facts (a
partner's version, a deal's id), so a retried use case cannot publish one fact twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import frozen
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    update,
)

from attribution_webhooks import Webhooks
from attribution_webhooks.adapters.system import UlidGenerator
from attribution_webhooks.app.services import NewEvent
from attribution_webhooks.core.wire import JsonValue, format_timestamp

from .attribution import DEFAULT_HALF_LIFE, Model, Touchpoint, attribute

__all__ = ["AttributionService", "Deal", "Invalid", "NotFound", "Partner", "Tracked", "metadata"]

STATUSES = ("active", "inactive")
MAX_AMOUNT = 2**53 - 1  # what a JavaScript receiver holds exactly
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

metadata = MetaData()
partners = Table(
    "partners",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("type", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
)
touchpoints = Table(
    "touchpoints",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("partner_id", String(64), nullable=False),
    Column("type", String(64), nullable=False),
    Column("at_us", BigInteger, nullable=False),  # microseconds since the epoch, UTC
    Index("touchpoints_by_user", "user_id", "at_us"),
)
deals = Table(
    "deals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", String(128), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("model", String(32), nullable=False),
    Column("closed_at_us", BigInteger, nullable=False),
)


class Invalid(ValueError):
    """A request the API refuses; ``field`` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class NotFound(LookupError):
    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"no {kind} {ident}")


@frozen
class Partner:
    id: str
    name: str
    type: str
    status: str


@frozen
class Tracked:
    """A touchpoint to record: ``type`` is click, signup, demo...; ``at`` defaults to now."""

    user_id: str
    partner_id: str
    type: str
    at: datetime | None = None


@frozen
class Deal:
    id: str
    user_id: str
    amount: int
    model: str
    closed_at: datetime
    attribution: tuple[Mapping[str, JsonValue], ...]


def _us(at: datetime) -> int:
    if at.tzinfo is None:
        raise Invalid("timestamp", "give a time with its offset (…Z or +hh:mm)")
    return (at - _EPOCH) // timedelta(microseconds=1)


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _text(field: str, value: object, limit: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise Invalid(field, f"must be a non-empty string of at most {limit} characters")
    return value


class AttributionService:
    """The use cases. ``clock`` and ``ids`` are injectable (the day script replays a day)."""

    def __init__(
        self,
        hooks: Webhooks,
        *,
        half_life: timedelta = DEFAULT_HALF_LIFE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        ids: Callable[[str], str] | None = None,
    ) -> None:
        self.hooks = hooks
        self.half_life = half_life
        self.clock = clock
        self.ids = ids or UlidGenerator().new_id
        # In a write transaction from the start (hooks.begin(): SQLite's BEGIN IMMEDIATE), so
        # that reading the schema and creating the tables cannot be overtaken by the delivery
        # engine writing meanwhile ("database is locked").
        with hooks.begin() as conn:
            metadata.create_all(conn)

    # --- partners ---------------------------------------------------------------------------

    def create_partner(self, name: str, type: str, status: str = "active") -> Partner:
        partner = Partner(
            self.ids("partner"), _text("name", name, 200), _text("type", type, 64), _status(status)
        )
        data: dict[str, JsonValue] = {
            "id": partner.id,
            "name": partner.name,
            "type": partner.type,
            "status": partner.status,
        }
        with self.hooks.begin() as conn:
            conn.execute(insert(partners).values(**data, version=1))
            self.hooks.publish_in(
                conn, "partner.created", data, id=f"evt_{partner.id}_v1", timestamp=self.clock()
            )
        return partner

    def partner(self, partner_id: str) -> Partner:
        with self.hooks.engine.connect() as conn:
            return self._partner(conn, partner_id)[0]

    def _partner(self, conn: Connection, partner_id: str, lock: bool = False) -> tuple[Partner, int]:
        query = select(partners).where(partners.c.id == partner_id)
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise NotFound("partner", partner_id)
        return Partner(row.id, row.name, row.type, row.status), row.version

    def update_partner(
        self,
        partner_id: str,
        *,
        name: str | None = None,
        type: str | None = None,
        status: str | None = None,
    ) -> tuple[Partner, dict[str, dict[str, JsonValue]]]:
        """Change what is given; ``partner.updated`` names exactly the fields whose value changed
        (``{field: {old, new}}``), and there is no event when nothing did."""
        wanted = {
            "name": None if name is None else _text("name", name, 200),
            "type": None if type is None else _text("type", type, 64),
            "status": None if status is None else _status(status),
        }
        with self.hooks.begin() as conn:
            before, version = self._partner(conn, partner_id, lock=True)
            current: dict[str, str] = {"name": before.name, "type": before.type, "status": before.status}
            changes: dict[str, dict[str, JsonValue]] = {
                f: {"old": current[f], "new": new}
                for f, new in wanted.items()
                if new is not None and new != current[f]
            }
            if not changes:
                return before, {}
            after = {**current, **{f: str(c["new"]) for f, c in changes.items()}}
            conn.execute(
                update(partners).where(partners.c.id == partner_id).values(**after, version=version + 1)
            )
            data: dict[str, JsonValue] = {
                "id": partner_id,
                "name": after["name"],
                "status": after["status"],
                "changes": changes,
            }
            event_id = f"evt_{partner_id}_v{version + 1}"
            self.hooks.publish_in(conn, "partner.updated", data, id=event_id, timestamp=self.clock())
        return Partner(partner_id, after["name"], after["type"], after["status"]), changes

    # --- tracked events ---------------------------------------------------------------------

    def track(self, events: Sequence[Tracked]) -> list[str]:
        """Record touchpoints, one ``event.tracked`` each, all in one transaction (one batch)."""
        if not events:
            return []
        now = self.clock()
        rows: list[dict[str, Any]] = []
        news: list[NewEvent] = []
        for index, event in enumerate(events):
            at = event.at or now
            touch_id = self.ids("evt")
            row = {
                "id": touch_id,
                "user_id": _text(f"events[{index}].userId", event.user_id, 128),
                "partner_id": _text(f"events[{index}].partnerId", event.partner_id, 64),
                "type": _text(f"events[{index}].type", event.type, 64),
                "at_us": _us(at),
            }
            rows.append(row)
            data: dict[str, JsonValue] = {
                "id": touch_id,
                "userId": event.user_id,
                "partnerId": event.partner_id,
                "type": event.type,
            }
            news.append(NewEvent("event.tracked", data, id=f"evt_tracked_{touch_id[4:]}", timestamp=at))
        with self.hooks.begin() as conn:
            known = set(
                conn.execute(
                    select(partners.c.id).where(partners.c.id.in_({r["partner_id"] for r in rows}))
                ).scalars()
            )
            for index, row in enumerate(rows):
                if row["partner_id"] not in known:
                    raise Invalid(f"events[{index}].partnerId", f"no partner {row['partner_id']}")
            conn.execute(insert(touchpoints), rows)
            self.hooks.publish_batch_in(conn, news)
        return [r["id"] for r in rows]

    # --- deals ------------------------------------------------------------------------------

    def close_deal(
        self,
        user_id: str,
        amount: int,
        model: str,
        *,
        closed_at: datetime | None = None,
        half_life: timedelta | None = None,
    ) -> Deal:
        """Save the deal and credit the partners whose touchpoints (up to ``closed_at``) led to
        it by ``model``; ``deal.attributed`` is published when any partner gets credit."""
        _text("userId", user_id, 128)
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
            raise Invalid("amount", f"must be a whole number of currency units, from 1 to {MAX_AMOUNT}")
        try:
            chosen = Model(model)
        except ValueError:
            raise Invalid("model", f"must be one of {', '.join(m.value for m in Model)}") from None
        if half_life is not None and half_life <= timedelta(0):
            raise Invalid("halfLifeDays", "must be positive")
        closed = closed_at or self.clock()
        deal_id = self.ids("deal")
        with self.hooks.begin() as conn:
            query = (
                select(touchpoints.c.partner_id, touchpoints.c.at_us, partners.c.name)
                .join(partners, partners.c.id == touchpoints.c.partner_id)
                .where(touchpoints.c.user_id == user_id, touchpoints.c.at_us <= _us(closed))
                .order_by(touchpoints.c.at_us, touchpoints.c.id)
            )
            found = conn.execute(query).all()
            names = {row.partner_id: row.name for row in found}
            points = [Touchpoint(row.partner_id, _at(row.at_us)) for row in found]
            shares = attribute(amount, chosen, points, closed, half_life or self.half_life)
            attribution = tuple(
                {
                    "partnerId": s.partner_id,
                    "partnerName": names[s.partner_id],
                    "credit": s.credit,
                    "percentage": _number(s.percentage),
                }
                for s in shares
            )
            conn.execute(
                insert(deals).values(
                    id=deal_id, user_id=user_id, amount=amount, model=chosen.value, closed_at_us=_us(closed)
                )
            )
            deal = Deal(deal_id, user_id, amount, chosen.value, closed, attribution)
            if attribution:
                self.hooks.publish_in(
                    conn, "deal.attributed", deal_data(deal), id=f"evt_{deal_id}_attributed", timestamp=closed
                )
        return deal


def deal_data(deal: Deal) -> dict[str, JsonValue]:
    """The ``deal.attributed`` payload (and the API's answer) for a deal."""
    return {
        "dealId": deal.id,
        "amount": deal.amount,
        "closedAt": format_timestamp(deal.closed_at),
        "model": deal.model,
        "attribution": [dict(share) for share in deal.attribution],
    }


def _number(percentage: Any) -> JsonValue:
    """50 for 50.00, 33.33 for 33.33: as the guide writes percentages."""
    return int(percentage) if percentage == int(percentage) else float(percentage)


def _status(status: str) -> str:
    if status not in STATUSES:
        raise Invalid("status", f"must be one of {', '.join(STATUSES)}")
    return status
