"""Templates and what every page shares: the Jinja environment (autoescaping on, so everything a
user or a receiver supplied is shown as text), the filters, the page helper, and the HTML error
pages of the dashboard's routes."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig
from litestar.types import ExceptionHandlersMap

from ...core.errors import DomainError, NotFound, Purged, ValidationError
from .session import CSRF_FIELD, CsrfRejected, csrf_token

__all__ = ["STATIC", "error_handlers", "is_htmx", "page", "see_other", "template_config"]

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = HERE / "static"


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clock(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _relative(value: datetime | None, now: datetime) -> str:
    if value is None:
        return ""
    seconds = (value - now).total_seconds()
    size = abs(seconds)
    if size < 1:
        return "now"
    if size < 90:
        text = f"{size:.0f} s"
    elif size < 5400:
        text = f"{size / 60:.0f} min"
    elif size < 172800:
        text = f"{size / 3600:.0f} h"
    else:
        text = f"{size / 86400:.0f} days"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def _pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, clock=_clock, iso=_iso, relative=_relative, pretty=_pretty)
    return env


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(_environment()))


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def page(request: Request[Any, Any, Any], name: str, status_code: int = 200, **context: Any) -> Template:
    """Render ``name`` with what every page needs: the account, the CSRF token, the time."""
    session = request.scope.get("session")
    session = session if isinstance(session, dict) else {}
    params = list(request.query_params.multi_items())
    context.setdefault("now", datetime.now(UTC))
    return Template(
        template_name=name,
        status_code=status_code,
        context={
            "account": session.get("account"),
            "csrf": csrf_token(request),
            "csrf_field": CSRF_FIELD,
            "path": request.url.path,
            "query": request.query_params,
            "query_string": urlencode(params),
            "query_without_cursor": urlencode([(k, v) for k, v in params if k != "cursor"]),
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )


def see_other(path: str) -> Redirect:
    """After a form: 303, so a reload does not send it again."""
    return Redirect(path=path, status_code=303)


def _error(request: Request[Any, Any, Any], status: int, title: str, detail: str) -> Response[Any]:
    return page(request, "error.html", status_code=status, title=title, detail=detail)


def _on_not_found(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    return _error(request, 404, "Not found", str(error))


def _on_purged(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    return _error(request, 410, "Removed by the retention policy", str(error))


def _on_csrf(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    return _error(request, 403, "Form expired", str(error))


def _on_domain(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    if isinstance(error, ValidationError):
        return _error(request, 422, "Check the form", str(error))
    return _error(request, 409, "Not possible now", str(error))


def _on_http(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return _error(request, 404, "Not found", f"no such page: {request.url.path}")
    if isinstance(error, NotAuthorizedException):
        return _error(request, 401, "Sign in", str(error.detail))
    return _error(request, error.status_code, "Request refused", str(error.detail))


def _on_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=error)
    return _error(request, 500, "Something went wrong", "an unexpected error occurred; it has been logged")


def error_handlers() -> ExceptionHandlersMap:
    """HTML error pages for the dashboard (the API keeps its problem+json)."""
    return {
        Purged: _on_purged,  # before NotFound, its base
        NotFound: _on_not_found,
        CsrfRejected: _on_csrf,
        DomainError: _on_domain,
        HTTPException: _on_http,
        Exception: _on_error,
    }
