"""attribution-webhooks: webhook delivery for the Attribution API.

- ``attribution_webhooks.Webhooks``: the whole thing embedded in a Python service, as one object
  (``app.embedding``; imported on first use, so ``import attribution_webhooks`` stays cheap).
- ``attribution_webhooks.core``: the pure, event-sourced delivery core and its ports.
- ``attribution_webhooks.adapters``: stores, transports, signer and clock that implement the ports.
- ``attribution_webhooks.app``: the HTTP API, the worker, the command line and the embedding facade.
- ``attribution_webhooks.testing``: fakes and the deterministic simulator.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app.embedding import Webhooks
    from .app.services import NewEvent

__version__ = "0.1.0"

__all__ = ["NewEvent", "Webhooks", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Webhooks":
        from .app.embedding import Webhooks

        return Webhooks
    if name == "NewEvent":  # what Webhooks.publish_batch takes
        from .app.services import NewEvent

        return NewEvent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
