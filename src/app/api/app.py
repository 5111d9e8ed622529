"""The Litestar application: routes, authentication, problem details and the OpenAPI document.

Every route but the health checks, the metrics, the docs and the dashboard (``/dashboard``, signed in with a
session cookie) takes the ``account`` dependency (``X-API-Key``).
The OpenAPI document (``/docs/openapi.json``) and the interactive docs (``/docs``) are generated
by Litestar from the handlers' own attrs types.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.types import Message, Scope

from ... import __version__
from ...core.errors import ValidationError
from ..bootstrap import Runtime
from ..dashboard import Dashboard, swagger_plugin
from ..observability import CONTENT_TYPE
from .auth import API_KEY_HEADER, Authenticator
from .deliveries import delivery_routes
from .events import event_routes
from .openapi import CamelAttrsSchemaPlugin, drop_parameter_400s
from .problems import exception_handlers, problem, problems
from .webhooks import webhook_routes
from .wire import WireDTO

__all__ = ["create_app"]

_DESCRIPTION = """\
Register webhooks, publish events and follow their delivery, as described in the webhooks guide.

Authenticate every request with your API key in the `X-API-Key` header. Errors are RFC 9457
problem details (`application/problem+json`) whose `detail` names the offending field.
"""


def _openapi() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="Attribution API webhooks",
        version=__version__,
        description=_DESCRIPTION,
        path="/docs",
        render_plugins=[swagger_plugin()],
        components=Components(
            security_schemes={
                "ApiKey": SecurityScheme(type="apiKey", name=API_KEY_HEADER, security_scheme_in="header")
            }
        ),
        tags=[
            Tag(name="webhooks", description="Endpoints that receive your events."),
            Tag(name="events", description="Publishing events, and the event catalog."),
            Tag(name="deliveries", description="The delivery log."),
            Tag(name="health", description="Liveness and readiness, without authentication."),
        ],
    )


def create_app(runtime: Runtime, *, auth_ttl: float = 10.0) -> Litestar:
    """The ASGI application over ``runtime`` (built by ``bootstrap.open_runtime``)."""
    auth = Authenticator(runtime.keys, ttl=auth_ttl)

    @get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    observability = runtime.observability

    @get(
        "/readyz",
        tags=["health"],
        summary="Readiness: the database answers and the worker runs",
        responses=problems(503),
    )
    async def readyz() -> Any:
        try:
            await asyncio.wait_for(asyncio.to_thread(runtime.keys.ping), timeout=5)
        except Exception as error:
            return problem(None, 503, f"the database does not answer: {type(error).__name__}")
        stuck = observability.worker_problem(datetime.now(UTC))
        if stuck is not None:
            return problem(None, 503, stuck)
        return {"status": "ready"}

    # Unauthenticated, as scrapers expect: it shows counts, never ids or secrets, but an operator
    # should keep it off the public internet (README, Observability).
    @get("/metrics", include_in_schema=False, media_type=CONTENT_TYPE)
    async def metrics() -> Response[bytes]:
        return Response(await observability.scrape(runtime.store), media_type=CONTENT_TYPE)

    async def count_response(message: Message, scope: Scope) -> None:
        # Every response, a 404 for no route included, labelled by its route's template
        # (/webhooks/{webhook_id}), never by its raw path: the labels stay bounded.
        if message["type"] == "http.response.start":
            route = scope.get("path_template") or "unmatched"
            observability.metrics.request(str(scope.get("method", "")), route, message["status"])

    async def authenticate(request: Request[Any, Any, Any]) -> None:
        # Runs before the body is read: a request without a valid key gets a 401, never a
        # validation error that would tell a stranger what the API expects. (A hook rather than
        # a guard: Litestar copies the route handler for every guard call, 5 % of an ingest.)
        parameters = request.route_handler.parsed_fn_signature.parameters
        if "account" not in parameters:
            return  # the health checks, the docs, the dashboard (which has its own session)
        # In the scope's own state dict (Litestar sets it up): ``request.state`` builds a State.
        request.scope["state"]["account"] = await auth.account(request)
        if request.scope["query_string"]:
            # As with bodies, an unknown name is an error, not silently ignored (``?limt=5``).
            unknown = sorted(set(request.query_params) - set(parameters))
            if unknown:
                raise ValidationError(unknown[0], "unknown query parameter")

    async def account(request: Request[Any, Any, Any]) -> str:
        account: str = request.scope["state"]["account"]
        return account

    routers = [webhook_routes(runtime), delivery_routes(runtime), *event_routes(runtime)]
    dashboard = Dashboard(runtime, key_recheck=auth_ttl)
    app = Litestar(
        route_handlers=[healthz, readyz, metrics, *routers, *dashboard.routers],
        template_config=dashboard.templates,
        dependencies={"account": Provide(account)},
        before_request=authenticate,
        before_send=[count_response],
        dto=WireDTO,
        return_dto=WireDTO,
        plugins=[CamelAttrsSchemaPlugin()],
        exception_handlers=exception_handlers(),
        openapi_config=_openapi(),
        request_max_body_size=runtime.settings.max_body_size,
        debug=False,
        logging_config=None,
    )
    drop_parameter_400s(app.openapi_schema)
    return app
