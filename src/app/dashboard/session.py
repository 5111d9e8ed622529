"""Signing in to the dashboard: the session cookie, its key, and the CSRF token of every form.

The session is Litestar's client-side cookie session: the cookie holds the account, the id of
the API key that signed in, and a random CSRF token, encrypted and authenticated with AES-GCM
under the session key, so it cannot be read or forged without that key. It is HttpOnly,
SameSite=Lax, scoped to ``/dashboard``, and Secure in production mode. The key comes from
``--session-secret`` (every process behind one address must share it) or is generated on the
first start and kept in a file next to the SQLite database (ADR 0009).

Every request that changes something must carry the session's CSRF token: as the form field
``csrf_token`` or the ``X-CSRF-Token`` header (htmx). A signed-in session also ends when its API
key is revoked: the key is checked again at most every ``KEY_RECHECK`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware.session.client_side import CookieBackendConfig
from sqlalchemy.engine import make_url

from ...adapters.sql import ApiKeyStore
from ..settings import Mode, Settings

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "KEY_RECHECK",
    "SESSION_COOKIE",
    "CsrfRejected",
    "KeyCheck",
    "check_csrf",
    "csrf_token",
    "session_config",
    "session_key",
]

SESSION_COOKIE = "aw_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
KEY_RECHECK = 10.0
_SESSION_HOURS = 12


class CsrfRejected(Exception):
    """A changing request without the session's CSRF token."""


def session_key(settings: Settings) -> bytes:
    """The 32-byte session key: from ``--session-secret``, else the key file (made on first use)."""
    if settings.session_secret:
        return hashlib.sha256(settings.session_secret.encode("utf-8")).digest()
    path = _key_file(settings.database_url)
    if path is None:
        return secrets.token_bytes(32)  # an in-memory database: sessions live as long as it does
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    # O_EXCL: of two processes starting at once, one writes the file and the other reads it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return bytes.fromhex(path.read_text().strip())
    with os.fdopen(fd, "w") as file:
        file.write(key.hex() + "\n")
    return key


def _key_file(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
            return None
        return Path(url.database + ".session-key")
    return Path("attribution-webhooks.session-key")


def session_config(settings: Settings) -> CookieBackendConfig:
    return CookieBackendConfig(
        secret=session_key(settings),
        key=SESSION_COOKIE,
        max_age=_SESSION_HOURS * 3600,
        path="/dashboard",
        httponly=True,
        samesite="lax",
        secure=settings.mode is Mode.PRODUCTION,
    )


def csrf_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The session's CSRF token, made on first use (every page that shows a form calls this)."""
    session = connection.session if "session" in connection.scope else {}
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        connection.scope["session"] = {**session, "csrf": token}
    return token


def check_csrf(connection: ASGIConnection[Any, Any, Any, Any], presented: object) -> None:
    """Raise CsrfRejected unless ``presented`` (or the header) is the session's token."""
    expected = connection.session.get("csrf") if "session" in connection.scope else None
    given = presented if isinstance(presented, str) and presented else connection.headers.get(CSRF_HEADER)
    if not isinstance(expected, str) or not given or not hmac.compare_digest(expected, given):
        raise CsrfRejected("the form has expired or did not come from this dashboard; reload and try again")


class KeyCheck:
    """Whether the key a session signed in with is still valid, re-asked every ``ttl`` seconds
    (as ``X-API-Key`` checks are remembered: a revoked key stops working within it)."""

    def __init__(self, keys: ApiKeyStore, ttl: float = KEY_RECHECK) -> None:
        self._keys = keys
        self._ttl = ttl
        self._checked: dict[str, float] = {}

    async def still_valid(self, account: str, key_id: str) -> bool:
        now = time.monotonic()
        if self._checked.get(key_id, 0.0) > now:
            return True
        listed = await asyncio.to_thread(self._keys.keys, account)
        valid = any(k.key_id == key_id and k.revoked_at is None for k in listed)
        if valid:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[key_id] = now + self._ttl
        return valid
