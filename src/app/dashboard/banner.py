"""The banner every signed-in page loads (``/dashboard/banner``, by htmx): what needs the
account's attention, as the operational notices report it (ADR 0017), with links to it."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.response import Template

from ..bootstrap import Runtime
from ..services.attention import attention
from .rendering import page
from .webhook_pages import signed_in

__all__ = ["banner_handlers"]


def banner_handlers(runtime: Runtime) -> list[Any]:
    ports = runtime.service.ports

    @get("/banner", include_in_schema=False)
    async def banner(request: Request[Any, Any, Any]) -> Template:
        account = signed_in(request)
        return page(request, "_banner.html", attention=await attention(ports.store, ports.clock, account))

    return [banner]
