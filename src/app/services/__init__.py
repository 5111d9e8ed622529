"""The use cases: every command and query of the API, the CLI and the embedding API.

They load state through the storage ports, decide with the core's pure functions and append
what was decided; they hold no state of their own beyond the ports they were given.
"""

from .notices import NoticeBoard
from .publishing import MAX_BATCH, DuplicateEventConflict, NewEvent, Outbox, PublishResult, check_event_id
from .queries import DeliveryRecord, EventRecord, Page, Queries
from .webhooks import ServicePorts, ServiceSettings, WebhookService, generate_secret

__all__ = [
    "MAX_BATCH",
    "DeliveryRecord",
    "EventRecord",
    "Page",
    "Queries",
    "ServicePorts",
    "DuplicateEventConflict",
    "NewEvent",
    "NoticeBoard",
    "Outbox",
    "PublishResult",
    "ServiceSettings",
    "WebhookService",
    "check_event_id",
    "generate_secret",
]
