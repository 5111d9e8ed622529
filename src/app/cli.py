"""The ``attribution-webhooks`` command line.

Every setting is a flag and an environment variable of the same name (``settings.py``). Errors
are one line on stderr and a non-zero exit status: 2 for bad usage or settings, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ..adapters.payloads import InvalidPayload, check_event_data, unstructure
from ..adapters.signing import HmacSigner
from ..adapters.sql import SchemaNotCurrent, upgrade
from ..adapters.system import UlidGenerator
from ..core.catalog import EVENT_TYPES, check_event_type
from ..core.errors import DomainError, ValidationError
from ..core.wire import check_depth, encode_json
from .services import NewEvent
from .settings import Settings, SettingsError, add_options

__all__ = ["main"]

PROG = "attribution-webhooks"


class CliError(Exception):
    """A failure to report in one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our one line (and exit status 2), not a usage dump."""

    def error(self, message: str) -> Any:
        raise CliError(f"{message} (see {self.prog} --help)", 2)


# --- commands -----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_sources(args, os.environ)


def _runtime(args: argparse.Namespace) -> Any:
    from .bootstrap import open_runtime

    return open_runtime(_settings(args))


def _serve(args: argparse.Namespace) -> int:
    from .runner import serve

    return _run_process(args, serve)


def _worker(args: argparse.Namespace) -> int:
    from .runner import work

    return _run_process(args, work)


def _run_process(args: argparse.Namespace, main: Callable[[Any], Coroutine[Any, Any, None]]) -> int:
    """Run a long-lived process (``serve`` or ``work``) over a runtime built from the settings."""
    from .runner import run

    _logging(_settings(args).log_level)
    runtime = _runtime(args)
    try:
        run(lambda: main(runtime))
    finally:
        runtime.close()
    return 0


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(
        level=level.upper(), stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if level != "debug":
        # httpx logs every request at INFO (a cost on the delivery path); alembic and uvicorn
        # repeat what our own lines say.
        for name in ("httpx", "alembic", "uvicorn.error"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _db_upgrade(args: argparse.Namespace) -> int:
    revision = upgrade(_settings(args).database_url)
    print(f"database at revision {revision}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        now = datetime.now(UTC)
        account = args.account or UlidGenerator().new_id("acct")
        if runtime.keys.create_account(account, args.account_name or account, now):
            print(f"created account {account}")
        record, key = runtime.keys.create_key(account, args.name, now)
        print(f"API key {record.prefix} for account {account} (shown only now; store it safely):")
        print(key)
    finally:
        runtime.close()
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        keys = runtime.keys.keys(args.account)
    finally:
        runtime.close()
    if not keys:
        print("no API keys")
        return 0
    print(f"{'key':<20} {'account':<34} {'created':<20} {'state':<28} name")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        print(
            f"{key.prefix:<20} {key.account_id:<34} {key.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{state:<28} {key.name}"
        )
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        if not runtime.keys.revoke(args.key, datetime.now(UTC)):
            raise CliError(f"no active API key {args.key!r} (see {PROG} api-keys list)")
    finally:
        runtime.close()
    print(f"revoked {args.key}; servers stop accepting it within 10 seconds")
    return 0


def _account(runtime: Any, given: str | None) -> str:
    """The account a command acts for: ``--account``, or the only one there is."""
    known = runtime.keys.accounts()
    if given is not None:
        if given not in known:
            raise CliError(f"no account {given!r} (accounts: {', '.join(known) or 'none yet'})")
        return given
    if len(known) == 1:
        account: str = known[0]
        return account
    if not known:
        raise CliError(f"no account yet: create one with {PROG} api-keys create")
    raise CliError(f"there are {len(known)} accounts: choose one with --account")


def _webhooks_list(args: argparse.Namespace) -> int:
    runtime = _runtime(args)
    try:
        account = _account(runtime, args.account)
        views = asyncio.run(runtime.service.queries.endpoints(account, limit=10_000)).items
    finally:
        runtime.close()
    if args.json:
        from .api.resources import webhook_body

        print(json.dumps(unstructure([webhook_body(view) for view in views]), indent=2))
        return 0
    if not views:
        print(f"no webhooks in account {account}")
        return 0
    for view in views:
        endpoint = view.endpoint
        print(
            f"{endpoint.endpoint_id}  {endpoint.status:<8}  {endpoint.url}  {','.join(endpoint.event_types)}"
        )
    return 0


def _read_text(value: str) -> str:
    """``@path`` reads a file, ``-`` reads stdin, anything else is the text itself."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot read {value[1:]}: {error.strerror}") from None
    return value


def _events_publish(args: argparse.Namespace) -> int:
    text = _read_text(args.data)
    check_depth(text, depth=1, path="data")  # data sits in the event's envelope
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"--data is not valid JSON: {error}", 2) from None
    event_type = check_event_type(args.type, "--type").value
    check_event_data(event_type, data)
    runtime = _runtime(args)
    try:
        account = _account(runtime, args.account)
        result = asyncio.run(runtime.service.publish(account, NewEvent(event_type, data, args.id)))
    finally:
        runtime.close()
    note = " (already published: nothing new)" if result.duplicate else ""
    print(f"published {result.event_id} to {len(result.delivery_ids)} webhook(s){note}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    payload = _read_text(args.payload)
    signer = HmacSigner()
    signature = args.signature.strip().lower()
    if signer.sign(payload.encode("utf-8"), args.secret) == signature:
        print("valid: the signature is the HMAC-SHA256 of the payload exactly as given")
        return 0
    try:
        restringified = encode_json(json.loads(payload))
    except (json.JSONDecodeError, ValidationError):
        restringified = None
    if restringified is not None and signer.sign(restringified.encode("utf-8"), args.secret) == signature:
        print("valid once re-serialised as JSON.stringify does: sign the raw body, not a re-encoding of it")
        return 0
    stripped = payload.rstrip("\r\n")
    if stripped != payload and signer.sign(stripped.encode("utf-8"), args.secret) == signature:
        print("valid without the trailing newline: your payload file or shell added one")
        return 0
    print("invalid: the signature does not match this payload and secret", file=sys.stderr)
    return 1


def _demo(args: argparse.Namespace) -> int:
    # The demo runs on the simulation's fakes, which production code does not import: load it
    # only when asked for.
    demo = importlib.import_module("attribution_webhooks.testing.demo")
    return int(demo.run_demo(int(args.seed), sys.stdout))


# --- the parser ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Webhook delivery for the Attribution API.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, handler: Callable[[argparse.Namespace], int], *groups: str) -> Any:
        sub = commands.add_parser(name, help=help, description=help)
        add_options(sub, groups)
        sub.set_defaults(handler=handler)
        return sub

    command("serve", "run the HTTP API and a delivery worker", _serve, "db", "http", "run")
    command(
        "worker", "run a delivery worker only (next to serve, on the same database)", _worker, "db", "run"
    )

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND", parser_class=_Parser)
    up = db_commands.add_parser("upgrade", help="create or upgrade the schema (needed for PostgreSQL)")
    add_options(up, ["db"])
    up.set_defaults(handler=_db_upgrade)

    keys = commands.add_parser("api-keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(
        dest="keys_command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    create = key_commands.add_parser("create", help="create a key (and its account, if new); prints it once")
    create.add_argument("--account", help="the account's id (default: a new account)")
    create.add_argument("--account-name", help="a name for a new account")
    create.add_argument("--name", default="", help="what the key is for")
    add_options(create, ["db"])
    create.set_defaults(handler=_keys_create)
    listing = key_commands.add_parser("list", help="list keys (their prefix only)")
    listing.add_argument("--account", help="only this account's keys")
    add_options(listing, ["db"])
    listing.set_defaults(handler=_keys_list)
    revoke = key_commands.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key", help="the key's prefix as listed (aw_xxxxxxxxxxxx) or the whole key")
    add_options(revoke, ["db"])
    revoke.set_defaults(handler=_keys_revoke)

    webhooks = commands.add_parser("webhooks", help="inspect webhooks")
    webhook_commands = webhooks.add_subparsers(
        dest="webhooks_command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    wh_list = webhook_commands.add_parser("list", help="list an account's webhooks")
    wh_list.add_argument("--account", help="the account (default: the only one)")
    wh_list.add_argument("--json", action="store_true", help="print the API's JSON")
    add_options(wh_list, ["db"])
    wh_list.set_defaults(handler=_webhooks_list)

    events = commands.add_parser("events", help="publish events")
    event_commands = events.add_subparsers(
        dest="events_command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    publish = event_commands.add_parser(
        "publish", help="publish an event to the account's subscribed webhooks"
    )
    publish.add_argument("--type", required=True, help=f"the event type: {', '.join(EVENT_TYPES)}")
    publish.add_argument("--data", required=True, help="the data object as JSON, @file, or - for stdin")
    publish.add_argument("--id", help="an event id (evt_…) to publish idempotently")
    publish.add_argument("--account", help="the account (default: the only one)")
    add_options(publish, ["db"])
    publish.set_defaults(handler=_events_publish)

    verify = commands.add_parser("verify", help="check a delivery's signature against a secret")
    verify.add_argument("--secret", required=True, help="the webhook's secret")
    verify.add_argument("--signature", required=True, help="the X-Attribution-Signature header's value")
    verify.add_argument("--payload", required=True, help="the raw body, @file, or - for stdin")
    verify.set_defaults(handler=_verify)

    demo = commands.add_parser(
        "demo", help="run a simulated delivery scenario in virtual time and print its delivery log"
    )
    demo.add_argument("--seed", type=int, default=7, help="the scenario's random seed (default 7)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    try:
        args = _parser().parse_args(argv)
        status: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except CliError as error:
        return _fail(str(error), error.status)
    except SettingsError as error:
        return _fail(str(error), 2)
    except InvalidPayload as error:
        return _fail("; ".join(f"{field}: {reason}" for field, reason in error.errors), 2)
    except (DomainError, SchemaNotCurrent) as error:
        return _fail(str(error), 1)
    except SQLAlchemyError as error:
        return _fail(f"database error: {str(error).splitlines()[0]}", 1)
    except (OSError, ValueError) as error:
        return _fail(str(error), 1)
    return status


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
