"""Signing in and out, and the hook that guards every other page of the dashboard."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from ...adapters.sql import ApiKeyStore
from ...adapters.sql.keys import key_id_of
from .rendering import is_htmx, page, see_other
from .session import CSRF_FIELD, KeyCheck, check_csrf, csrf_token

__all__ = ["guard", "signin_handlers"]

_PUBLIC = ("/dashboard/sign-in", "/dashboard/static/")


def _safe_next(target: object) -> str:
    """Only a path inside the dashboard: never an open redirect to another site."""
    if isinstance(target, str) and target.startswith("/dashboard/") and not target.startswith("//"):
        return target
    return "/dashboard/webhooks"


def guard(keys: KeyCheck) -> Any:
    """A before-request hook: signed in (with a key that is still valid), and for every changing
    request, the session's CSRF token."""

    async def before(request: Request[Any, Any, Any]) -> Response[Any] | None:
        path = request.url.path
        if request.method not in ("GET", "HEAD"):
            form = await request.form()
            check_csrf(request, form.get(CSRF_FIELD))
        if path.startswith(_PUBLIC):
            return None
        session = request.session
        account, key_id = session.get("account"), session.get("key_id")
        if isinstance(account, str) and isinstance(key_id, str) and await keys.still_valid(account, key_id):
            request.state["dashboard_account"] = account
            return None
        request.scope["session"] = {"csrf": csrf_token(request)}
        target = "/dashboard/sign-in?next=" + quote(
            path if request.method == "GET" else "/dashboard/webhooks"
        )
        if is_htmx(request):
            return Response(b"", status_code=204, headers={"HX-Redirect": target})
        return Redirect(path=target, status_code=303)

    return before


def signin_handlers(key_store: ApiKeyStore) -> list[Any]:
    @get("/", include_in_schema=False)
    async def home() -> Redirect:
        return Redirect(path="/dashboard/webhooks", status_code=303)

    @get("/sign-in", include_in_schema=False)
    async def sign_in_form(
        request: Request[Any, Any, Any], next: str | None = Parameter(default=None)
    ) -> Template:
        return page(request, "sign_in.html", next=_safe_next(next), error=None)

    @post("/sign-in", include_in_schema=False)
    async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        key = str(form.get("api_key", "")).strip()
        target = _safe_next(form.get("next"))
        account = await asyncio.to_thread(key_store.authenticate, key) if key else None
        key_id = key_id_of(key)
        if account is None or key_id is None:
            error = "Enter your API key." if not key else "That is not a valid API key."
            return page(request, "sign_in.html", status_code=401, next=target, error=error)
        # A fresh session (and CSRF token) at sign-in: nothing from before carries over.
        request.scope["session"] = {"account": account, "key_id": key_id}
        csrf_token(request)
        return see_other(target)

    @post("/sign-out", include_in_schema=False)
    async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
        request.scope["session"] = {}
        return see_other("/dashboard/sign-in")

    return [home, sign_in_form, sign_in, sign_out]
