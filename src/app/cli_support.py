"""What every command of the command line shares: its one-line error, and opening the runtime."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from .settings import Settings

if TYPE_CHECKING:
    from .bootstrap import Runtime

__all__ = ["PROG", "CliError", "opening", "read_text", "the_account", "the_runtime"]

PROG = "attribution-webhooks"


class CliError(Exception):
    """A failure to report in one line; ``status`` is the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def opening(url: str) -> Iterator[None]:
    """A database that cannot be opened is one line naming it (without its password) and why."""
    try:
        yield
    except (DBAPIError, ArgumentError) as error:
        reason = str(error.orig if isinstance(error, DBAPIError) else error).strip().splitlines()[0]
        raise CliError(f"cannot open the database {_safe(url)}: {reason}") from None
    except ModuleNotFoundError as error:
        if error.name is None or not error.name.startswith("psycopg"):
            raise
        raise CliError(f"PostgreSQL needs psycopg: pip install '{PROG}[postgres]' ({error})") from None


def _safe(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return repr(url)


@contextmanager
def the_runtime(settings: Settings, *, serving: bool = False) -> Iterator[Runtime]:
    from .bootstrap import open_runtime

    with opening(settings.database_url):
        runtime = open_runtime(settings, serving=serving)
    try:
        yield runtime
    finally:
        runtime.close()


def the_account(runtime: Runtime, given: str | None) -> str:
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


def read_text(value: str) -> str:
    """``@path`` reads a file, ``-`` reads stdin, anything else is the text itself."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        try:
            return Path(value[1:]).read_text(encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot read {value[1:]}: {error.strerror}") from None
    return value
