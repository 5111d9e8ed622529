"""The dashboard: server-rendered pages inside ``serve`` (Settings → Webhooks, the delivery log,
Send Test Event, Failures) over the same use cases as the API, and the vendored assets that let
it and the API docs work without internet (ADR 0009)."""

from __future__ import annotations

from .app import Dashboard, swagger_plugin

__all__ = ["Dashboard", "swagger_plugin"]
