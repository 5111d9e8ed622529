"""How the dashboard plugs into the Litestar application: one router under ``/dashboard`` with
its own session middleware, guard and HTML error pages, the static files, and the templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Router
from litestar.middleware.session import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig
from litestar.types import ASGIApp

from ...adapters.signing import HmacSigner
from ..bootstrap import Runtime
from ..services.reports import Reports
from .banner import banner_handlers
from .delivery_pages import delivery_handlers
from .rendering import STATIC, error_handlers, template_config
from .session import KeyCheck, session_config
from .signin import guard, signin_handlers
from .webhook_pages import webhook_handlers

__all__ = ["ASSETS", "Dashboard", "swagger_plugin"]

#: Where the vendored files are served (htmx, Swagger UI, the dashboard's CSS and script).
ASSETS = "/dashboard/static"


def swagger_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at ``/docs`` from the vendored copy: the docs page works offline."""
    vendor = f"{ASSETS}/vendor/swagger-ui"
    return SwaggerRenderPlugin(
        path="/",
        js_url=f"{vendor}/swagger-ui-bundle.js",
        css_url=f"{vendor}/swagger-ui.css",
        standalone_preset_js_url=f"{vendor}/swagger-ui-standalone-preset.js",
        favicon=f"<link rel='icon' type='image/png' href='{vendor}/favicon-32x32.png'>",
    )


def _sessions(config: CookieBackendConfig) -> Callable[[ASGIApp], ASGIApp]:
    """The session middleware as a factory function: Litestar deep-copies a router when it is
    registered, and the cookie backend's cipher cannot be copied (a function is not copied)."""
    backend = ClientSideSessionBackend(config=config)

    def wrap(app: ASGIApp) -> ASGIApp:
        return SessionMiddleware(app, backend)

    return wrap


class Dashboard:
    """The dashboard's routers and templates for ``create_app``."""

    def __init__(self, runtime: Runtime, key_recheck: float = 10.0) -> None:
        reports = Reports(runtime.service, HmacSigner(), runtime.dispatch.user_agent)
        handlers: list[Any] = [
            *signin_handlers(runtime.keys),
            *webhook_handlers(runtime, reports),
            *delivery_handlers(runtime, reports),
            *banner_handlers(runtime),
        ]
        pages = Router(
            "/dashboard",
            route_handlers=handlers,
            middleware=[_sessions(session_config(runtime.settings))],
            before_request=guard(KeyCheck(runtime.keys, key_recheck)),
            exception_handlers=error_handlers(),
            dto=None,
            return_dto=None,
            include_in_schema=False,
        )
        static = create_static_files_router(
            path=ASSETS, directories=[STATIC], include_in_schema=False, name="dashboard-static"
        )
        self.routers: list[Router] = [pages, static]
        self.templates: TemplateConfig[JinjaTemplateEngine] = template_config()
