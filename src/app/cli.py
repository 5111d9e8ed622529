"""The ``attribution-webhooks`` command line, on click (ADR 0008).

Each command takes only the settings it uses (``settings.setting_options``), each a flag and an
environment variable of the same name. Errors are one line on stderr and a non-zero exit status:
2 for bad usage or settings, 1 otherwise; ``main`` is the one place that turns them into that line.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource
from click.exceptions import NoArgsIsHelpError
from sqlalchemy.exc import SQLAlchemyError

from .. import __version__
from ..adapters.crypto import Keyring
from ..adapters.payloads import InvalidPayload, unstructure
from ..adapters.signing import HmacSigner
from ..adapters.sql import SchemaNotCurrent, upgrade
from ..adapters.system import UlidGenerator
from ..core.errors import DomainError, ValidationError
from ..core.wire import encode_json
from .cli_events import events
from .cli_support import PROG, CliError, opening, read_text, the_account, the_runtime
from .settings import API, DATABASE, DELIVERY, Settings, SettingsError, setting_options

if TYPE_CHECKING:
    from .bootstrap import Runtime
    from .supervisor import Kind

__all__ = ["cli", "main"]


@click.group(name=PROG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name=PROG, message="%(prog)s %(version)s")
def cli() -> None:
    """Webhook delivery for the Attribution API."""


# --- the processes ------------------------------------------------------------------------------


@cli.command("serve")
@setting_options(*API)
def _serve(settings: Settings) -> int:
    """Run the HTTP API and a delivery worker."""
    from .runner import serve

    return _run_process(settings, serve, "serve")


@cli.command("worker")
@setting_options(*DELIVERY)
def _worker(settings: Settings) -> int:
    """Run a delivery worker only (no API).

    Start any number of them next to serve, on the same database.
    """
    from .runner import work

    return _run_process(settings, work, "worker")


def _run_process(settings: Settings, main: Callable[[Runtime], Coroutine[Any, Any, None]], kind: Kind) -> int:
    """Run ``serve`` or ``work`` over a runtime; with ``--workers`` N > 1, N under a parent."""
    from .observability import configure_logging
    from .runner import run
    from .supervisor import prepare, process_count, supervise

    configure_logging(settings.log_level, settings.log_format)
    count = process_count(settings)
    with the_runtime(settings, serving=True) as runtime:
        if count == 1:
            run(lambda: main(runtime))
            return 0
        listening = prepare(runtime, kind, count)
    return supervise(settings, kind, count, listening)


# --- db, api-keys, webhooks, events -----------------------------------------------------------------


@cli.group("db")
def _db() -> None:
    """Database maintenance."""


@_db.command("upgrade")
@setting_options(*DATABASE)
def _db_upgrade(settings: Settings) -> int:
    """Create or upgrade the database schema.

    Needed once on PostgreSQL before serve or worker start; SQLite upgrades itself.
    """
    with opening(settings.database_url):
        keys = settings.secret_keys
        # It seals the secrets that earlier releases stored in plaintext (ADR 0010).
        revision = upgrade(settings.database_url, None if keys is None else Keyring.parse(keys))
    click.echo(f"database at revision {revision}")
    return 0


@cli.group("api-keys")
def _keys() -> None:
    """Create, list and revoke API keys."""


@_keys.command("create")
@setting_options(*DATABASE)
@click.option("--account", help="the account's id (default: a new account)")
@click.option("--account-name", help="a name for a new account")
@click.option("--name", default="", help="what the key is for")
def _keys_create(settings: Settings, account: str | None, account_name: str | None, name: str) -> int:
    """Create a key (and its account, if new); prints it once."""
    with the_runtime(settings) as runtime:
        now = datetime.now(UTC)
        account = account or UlidGenerator().new_id("acct")
        if runtime.keys.create_account(account, account_name or account, now):
            click.echo(f"created account {account}")
        record, key = runtime.keys.create_key(account, name, now)
    click.echo(f"API key {record.prefix} for account {account} (shown only now; store it safely):")
    click.echo(key)
    return 0


@_keys.command("list")
@setting_options(*DATABASE)
@click.option("--account", help="only this account's keys")
def _keys_list(settings: Settings, account: str | None) -> int:
    """List keys (their prefix only)."""
    with the_runtime(settings) as runtime:
        keys = runtime.keys.keys(account)
    if not keys:
        click.echo("no API keys")
        return 0
    click.echo(f"{'key':<20} {'account':<34} {'created':<20} {'state':<28} name")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        click.echo(
            f"{key.prefix:<20} {key.account_id:<34} {key.created_at:%Y-%m-%d %H:%M:%S}  "
            f"{state:<28} {key.name}"
        )
    return 0


@_keys.command("revoke")
@setting_options(*DATABASE)
@click.argument("key")
def _keys_revoke(settings: Settings, key: str) -> int:
    """Revoke a key.

    KEY is the key's prefix as listed (aw_xxxxxxxxxxxx) or the whole key.
    """
    with the_runtime(settings) as runtime:
        if not runtime.keys.revoke(key, datetime.now(UTC)):
            raise CliError(f"no active API key {key!r} (see {PROG} api-keys list)")
    click.echo(f"revoked {key}; servers stop accepting it within 10 seconds")
    return 0


cli.add_command(events)


@cli.group("webhooks")
def _webhooks() -> None:
    """Inspect webhooks."""


@_webhooks.command("list")
@setting_options(*DATABASE)
@click.option("--account", help="the account (default: the only one)")
@click.option("--json", "as_json", is_flag=True, help="print the API's JSON")
def _webhooks_list(settings: Settings, account: str | None, as_json: bool) -> int:
    """List an account's webhooks."""
    with the_runtime(settings) as runtime:
        account = the_account(runtime, account)
        views = asyncio.run(runtime.service.queries.endpoints(account, limit=10_000)).items
    if as_json:
        from .api.resources import webhook_body

        click.echo(json.dumps(unstructure([webhook_body(view) for view in views]), indent=2))
        return 0
    if not views:
        click.echo(f"no webhooks in account {account}")
        return 0
    for view in views:
        endpoint = view.endpoint
        click.echo(
            f"{endpoint.endpoint_id}  {endpoint.status:<8}  {endpoint.url}  {','.join(endpoint.event_types)}"
        )
    return 0


# --- verify, demo ---------------------------------------------------------------------------------


@cli.command("verify")
@click.option("--secret", required=True, help="the webhook's secret")
@click.option("--signature", required=True, help="the X-Attribution-Signature header's value")
@click.option("--payload", required=True, help="the raw body, @file, or - for stdin")
def _verify(secret: str, signature: str, payload: str) -> int:
    """Check a delivery's signature against the webhook's secret."""
    body = read_text(payload)
    signer = HmacSigner()
    signature = signature.strip().lower()
    if signer.sign(body.encode("utf-8"), secret) == signature:
        click.echo("valid: the signature is the HMAC-SHA256 of the payload exactly as given")
        return 0
    try:
        restringified = encode_json(json.loads(body))
    except (json.JSONDecodeError, ValidationError):
        restringified = None
    if restringified is not None and signer.sign(restringified.encode("utf-8"), secret) == signature:
        click.echo(
            "valid once re-serialised as JSON.stringify does: sign the raw body, not a re-encoding of it"
        )
        return 0
    stripped = body.rstrip("\r\n")
    if stripped != body and signer.sign(stripped.encode("utf-8"), secret) == signature:
        click.echo("valid without the trailing newline: your payload file or shell added one")
        return 0
    click.echo("invalid: the signature does not match this payload and secret", err=True)
    return 1


@cli.command("demo")
@click.option("--seed", type=int, default=7, show_default=True, help="the scenario's random seed")
def _demo(seed: int) -> int:
    """Run a simulated delivery scenario in virtual time.

    Prints its delivery log: every attempt, the retries of a receiver that is down for ten
    minutes included. Nothing touches the network.
    """
    # The demo runs on the simulation's fakes, which production code does not import: load it
    # only when asked for.
    demo = importlib.import_module("attribution_webhooks.testing.demo")
    return int(demo.run_demo(seed, sys.stdout))


# --- errors -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    try:
        status = cli.main(
            args=list(argv) if argv is not None else None, prog_name=PROG, standalone_mode=False
        )
    except NoArgsIsHelpError as error:  # a bare group: its help is the answer
        click.echo(error.format_message(), err=True)
        return 2
    except click.UsageError as error:
        return _fail(_usage(error), error.exit_code)
    except click.Abort:  # Ctrl-C
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
    return int(status or 0)


def _usage(error: click.UsageError) -> str:
    """click's usage error as one line: a bad value names its flag or environment variable."""
    message, ctx = error.format_message(), error.ctx
    param = error.param if isinstance(error, click.BadParameter) else None
    if isinstance(param, click.Option) and ctx is not None and not isinstance(error, click.MissingParameter):
        source = ctx.get_parameter_source(param.name) if param.name else None
        name = str(param.envvar) if source is ParameterSource.ENVIRONMENT else param.opts[0]
        message = f"{name}: {error.message}"
    return f"{message.rstrip('.')} (see {ctx.command_path if ctx else PROG} --help)"


def _fail(message: str, status: int) -> int:
    click.echo(f"{PROG}: error: {message}", err=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
