"""``X-API-Key`` authentication: which account a request acts for.

Keys are checked against their stored SHA-256 in constant time (``adapters.sql.keys``). A key
that checked out is remembered for ``ttl`` seconds, keyed by its own SHA-256, so the ingest path
does not query the database on every request; a revoked key therefore stops working within
``ttl`` (10 s by default) in every process. Unknown keys are not remembered.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency

from ...adapters.sql import ApiKeyStore
from .problems import Unauthorized

__all__ = ["API_KEY_HEADER", "SECURITY", "Account", "Authenticator"]

API_KEY_HEADER = "X-API-Key"
#: The type of the ``account`` parameter of every authenticated handler.
Account = NamedDependency[str]
#: The OpenAPI security requirement of every authenticated router.
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}]
_MAX_CACHED = 10_000


class Authenticator:
    """Resolves the ``account`` dependency of every authenticated handler."""

    def __init__(self, keys: ApiKeyStore, ttl: float = 10.0) -> None:
        self._keys = keys
        self._ttl = ttl
        self._known: dict[bytes, tuple[str, float]] = {}

    async def account(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        """The account of the connection's key; raises Unauthorized (401)."""
        key = connection.headers.get("x-api-key")
        if not key:
            raise Unauthorized(f"send your API key in the {API_KEY_HEADER} header")
        digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        known = self._known.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        account = await asyncio.to_thread(self._keys.authenticate, key)
        if account is None:
            self._known.pop(digest, None)
            raise Unauthorized(f"the {API_KEY_HEADER} header does not hold a valid API key")
        if len(self._known) >= _MAX_CACHED:
            self._known.clear()
        self._known[digest] = (account, now + self._ttl)
        return account

    def forget(self) -> None:
        """Drop every remembered key (after a revocation in this process)."""
        self._known.clear()
