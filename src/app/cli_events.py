"""``attribution-webhooks events``: publish one event (``--type`` and ``--data``) or a file of them.

``--file`` reads JSON Lines, one ``POST /events`` body per line (``type``, ``data``, optional
``id`` and ``timestamp``; blank lines are skipped). Every line is checked before anything is
written: one wrong line and nothing is published, and the error names its line and field. The
events then go in transactions of ``MAX_BATCH`` (1,000), as ``POST /events/batch`` takes them: a
file of more is not all or nothing if the database fails halfway, so give the events ids and
publishing the file again publishes only what is missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from ..adapters.payloads import InvalidPayload, check_event_data, structure
from ..core.catalog import EVENT_TYPES, check_event_type
from ..core.errors import DomainError, ValidationError
from ..core.wire import check_depth
from .cli_support import CliError, read_text, the_account, the_runtime
from .services import MAX_BATCH, NewEvent, PublishResult, check_event_id
from .settings import DATABASE, Settings, setting_options

if TYPE_CHECKING:
    from .bootstrap import Runtime

__all__ = ["events"]


@click.group("events")
def events() -> None:
    """Publish events."""


@events.command("publish")
@setting_options(*DATABASE)
@click.option("--type", "event_type", help=f"the event type: {', '.join(EVENT_TYPES)}")
@click.option("--data", help="the data object as JSON, @file, or - for stdin")
@click.option("--id", "event_id", help="an event id (evt_…) to publish idempotently")
@click.option(
    "--file",
    "path",
    help=f"JSON Lines, one POST /events body per line, or - for stdin (in transactions of {MAX_BATCH:,})",
)
@click.option("--json", "as_json", is_flag=True, help="with --file: a JSON result per event, one per line")
@click.option("--account", help="the account (default: the only one)")
def _publish(
    settings: Settings,
    event_type: str | None,
    data: str | None,
    event_id: str | None,
    path: str | None,
    as_json: bool,
    account: str | None,
) -> int:
    """Publish an event, or a file of them, to subscribed webhooks.

    Either --type and --data (and --id), or --file: the account's webhooks subscribed to each
    event's type get it.
    """
    if path is not None:
        if event_type is not None or data is not None or event_id is not None:
            raise CliError("give either --file or --type and --data, not both", 2)
        news = _read_events(read_text(path if path == "-" else f"@{path}"))
        with the_runtime(settings) as runtime:
            results = asyncio.run(_publish_all(runtime, the_account(runtime, account), news))
        _report(results, as_json)
        return 0
    if event_type is None or data is None:
        raise CliError("give --type and --data (or --file)", 2)
    text = read_text(data)
    check_depth(text, depth=1, path="data")  # data sits in the event's envelope
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"--data is not valid JSON: {error}", 2) from None
    event_type = check_event_type(event_type, "--type").value
    check_event_data(event_type, body)
    with the_runtime(settings) as runtime:
        account = the_account(runtime, account)
        result = asyncio.run(runtime.service.publish(account, NewEvent(event_type, body, event_id)))
    note = " (already published: nothing new)" if result.duplicate else ""
    click.echo(f"published {result.event_id} to {len(result.delivery_ids)} webhook(s){note}")
    return 0


def _read_events(text: str) -> list[NewEvent]:
    """Every line's event, checked as ``POST /events`` checks its body; InvalidPayload naming
    each wrong line and field (``line 3: data.amount``) if any is wrong."""
    from .api.resources import PublishEvent

    news: list[NewEvent] = []
    errors: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            check_depth(line)
            body = json.loads(line)
            event = structure(body, PublishEvent)
            known = check_event_type(event.type).value
            check_event_data(known, event.data)
            if event.id is not None:
                check_event_id(event.id)
        except json.JSONDecodeError as error:
            errors.append((where, f"not valid JSON: {error}"))
        except InvalidPayload as error:
            errors += [(f"{where}: {field}" if field else where, reason) for field, reason in error.errors]
        except ValidationError as error:
            errors.append((f"{where}: {error.field}" if error.field else where, error.reason))
        else:
            news.append(NewEvent(known, event.data, event.id, event.timestamp))
    if errors:
        raise InvalidPayload(errors)
    if not news:
        raise CliError("the file holds no event: one JSON object per line", 2)
    return news


async def _publish_all(runtime: Runtime, account: str, news: Sequence[NewEvent]) -> list[PublishResult]:
    results: list[PublishResult] = []
    for start in range(0, len(news), MAX_BATCH):
        try:
            results += await runtime.service.publish_batch(account, news[start : start + MAX_BATCH])
        except DomainError as error:
            done = f"the {start:,} events before were published; " if start else ""
            raise CliError(
                f"events {start + 1:,} to {min(start + MAX_BATCH, len(news)):,} of the file: {error}"
                f" ({done}nothing of these was)"
            ) from None
    return results


def _report(results: Iterable[PublishResult], as_json: bool) -> None:
    found = list(results)
    if as_json:
        for result in found:
            line: dict[str, Any] = {
                "id": result.event_id,
                "deliveryIds": list(result.delivery_ids),
                "duplicate": result.duplicate,
            }
            click.echo(json.dumps(line))
        return
    repeats = sum(result.duplicate for result in found)
    deliveries = sum(len(result.delivery_ids) for result in found if not result.duplicate)
    note = f" ({repeats:,} already published: nothing new for them)" if repeats else ""
    click.echo(f"published {len(found) - repeats:,} event(s), {deliveries:,} delivery(ies){note}")
