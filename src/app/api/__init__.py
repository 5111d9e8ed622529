"""The HTTP API (Litestar): ``create_app(runtime)``."""

from .app import create_app

__all__ = ["create_app"]
