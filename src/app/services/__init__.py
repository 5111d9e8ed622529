"""The use cases: every command and query of the API, the CLI and the embedding API.

They load state through the storage ports, decide with the core's pure functions and append
what was decided; they hold no state of their own beyond the ports they were given.
"""

from .notices import NoticeBoard
from .publishing import DuplicateEventConflict, NewEvent, Outbox, PublishResult
from .webhooks import ServiceSettings, WebhookService, generate_secret

__all__ = [
    "DuplicateEventConflict",
    "NewEvent",
    "NoticeBoard",
    "Outbox",
    "PublishResult",
    "ServiceSettings",
    "WebhookService",
    "generate_secret",
]
