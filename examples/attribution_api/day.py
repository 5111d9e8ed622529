"""A realistic day of the Attribution API, for the dashboard and the benchmarks to show real traffic.

    python -m attribution_api.day --database-url sqlite:///attribution.sqlite3 \\
        --webhook-url http://127.0.0.1:3000/webhooks/attribution --secret your_webhook_secret --deliver

Partners sign up (some change their name or go inactive during the day), thousands of users
touch them (clicks, signups, demos, mostly on the few popular partners), and deals close for
users who were touched, each credited by one of the five models. Every write publishes its
webhook event in its own transaction; tracked events go in batches. The day runs on a virtual
clock (``--date``), as fast as the database allows. Without ``--deliver`` the deliveries stay
queued for a ``serve`` or ``worker`` on the same database; with it this process delivers them
too, and waits (``--wait`` seconds at most) until none is pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from attrs import define
from sqlalchemy import func, select

from attribution_webhooks import Webhooks
from attribution_webhooks.adapters.sql.schema import deliveries
from attribution_webhooks.core.catalog import EVENT_TYPES
from attribution_webhooks.core.errors import ValidationError

from .attribution import Model
from .domain import AttributionService, Tracked

__all__ = ["DaySummary", "drive_day", "main"]

PARTNER_TYPES = ("referral", "reseller", "affiliate", "technology")
TOUCH_TYPES = ("click", "click", "click", "signup", "demo", "trial", "meeting")
_NAMES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne")


@define
class DaySummary:
    partners: int = 0
    partner_updates: int = 0
    tracked: int = 0
    deals: int = 0
    events: int = 0


def drive_day(
    service: AttributionService,
    rng: random.Random,
    *,
    day: date,
    partners: int = 25,
    users: int = 1500,
    tracked: int = 5000,
    deals: int = 150,
    batch: int = 200,
) -> DaySummary:
    """Play one day through ``service``, whose clock must follow ``clock_at`` (see ``main``)."""
    summary = DaySummary()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    step = timedelta(days=1) / max(tracked, 1)
    now = [start]
    service.clock = lambda: now[0]
    roster = []
    for index in range(partners):
        name = f"{rng.choice(_NAMES)} {('Corp', 'Inc', 'Partners', 'Labs')[index % 4]} {index + 1}"
        roster.append(service.create_partner(name, rng.choice(PARTNER_TYPES)))
        summary.partners += 1
    popularity = [1 / (rank + 1) for rank in range(partners)]  # a few partners bring most traffic
    touched: list[str] = []
    deal_every = max(tracked // max(deals, 1), 1)
    while summary.tracked < tracked:
        size = min(batch, tracked - summary.tracked)
        points = []
        for offset in range(size):
            user = f"user_{rng.randrange(users)}"
            partner = rng.choices(roster, popularity)[0]
            points.append(Tracked(user, partner.id, rng.choice(TOUCH_TYPES), now[0] + step * offset))
            touched.append(user)
        now[0] += step * size
        service.track(points)
        summary.tracked += size
        due = min(summary.tracked // deal_every, deals) - summary.deals
        for _ in range(due):
            amount = rng.choice((500, 1200, 2500, 9900, 10000, 25000, 49999))
            deal = service.close_deal(rng.choice(touched), amount, rng.choice(list(Model)))
            summary.deals += 1
            summary.events += bool(deal.attribution)
        if rng.random() < 0.15:  # a partner renames itself, changes type, or goes inactive
            partner = rng.choice(roster)
            change = rng.choice(
                (
                    {"name": partner.name + " Group"},
                    {"type": rng.choice(PARTNER_TYPES)},
                    {"status": "inactive"},
                )
            )
            _, changes = service.update_partner(partner.id, **change)
            summary.partner_updates += bool(changes)
    summary.events += summary.partners + summary.partner_updates + summary.tracked
    return summary


def pending(hooks: Webhooks) -> int:
    """Deliveries still queued (due now or later)."""
    with hooks.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(deliveries.c.queue_at.is_not(None))).scalar_one())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m attribution_api.day", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default="sqlite:///attribution.sqlite3")
    parser.add_argument("--mode", default="development", choices=("development", "production"))
    parser.add_argument(
        "--webhook-url", action="append", default=[], help="subscribe this receiver to every event type"
    )
    parser.add_argument("--secret", default=None)
    parser.add_argument("--date", type=date.fromisoformat, default=date(2024, 1, 20))
    parser.add_argument("--partners", type=int, default=25)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--tracked", type=int, default=5000)
    parser.add_argument("--deals", type=int, default=150)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--deliver", action="store_true")
    parser.add_argument("--wait", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        hooks = Webhooks(args.database_url, mode=args.mode)
    except (ValueError, OSError) as error:
        print(f"attribution_api.day: {error}", file=sys.stderr)
        return 2
    with hooks:
        try:
            for url in args.webhook_url:
                asyncio.run(hooks.register(url, list(EVENT_TYPES), secret=args.secret))
        except ValidationError as error:
            print(f"attribution_api.day: --webhook-url/--secret: {error}", file=sys.stderr)
            return 2
        stop = threading.Event()
        worker = threading.Thread(target=hooks.run, args=(stop,), daemon=True) if args.deliver else None
        if worker is not None:
            worker.start()
        began = time.perf_counter()
        service = AttributionService(hooks)
        counts = {k: getattr(args, k) for k in ("partners", "users", "tracked", "deals", "batch")}
        summary = drive_day(service, random.Random(args.seed), day=args.date, **counts)
        driven = time.perf_counter() - began
        if worker is not None:
            deadline = time.monotonic() + args.wait
            while pending(hooks) and time.monotonic() < deadline:
                time.sleep(0.2)
            stop.set()
            worker.join()
        report = {
            "partners": summary.partners,
            "partnerUpdates": summary.partner_updates,
            "tracked": summary.tracked,
            "deals": summary.deals,
            "events": summary.events,
            "seconds": round(driven, 2),
            "pending": pending(hooks),
        }
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
