"""attribution-webhooks: webhook delivery for the Attribution API.

- ``attribution_webhooks.core``: the pure, event-sourced delivery core and its ports.
- ``attribution_webhooks.adapters``: stores, transports, signer and clock that implement the ports.
- ``attribution_webhooks.app``: the HTTP API, the worker and the command line.
- ``attribution_webhooks.testing``: fakes and the deterministic simulator.
"""

__version__ = "0.1.0"
