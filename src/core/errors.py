"""Errors the core raises on purpose. Adapters translate driver errors into these."""

from __future__ import annotations

__all__ = [
    "ConcurrencyConflict",
    "DomainError",
    "InvalidTransition",
    "NotFound",
    "Purged",
    "UnknownEventType",
    "ValidationError",
]


class DomainError(Exception):
    """Base class of every error that a caller can show to a user as it is."""


class ValidationError(DomainError):
    """A command or value is malformed; ``field`` names the offending input (dotted path)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


class UnknownEventType(ValidationError):
    """An event type that is not in the catalog."""

    def __init__(self, field: str, event_type: str, known: tuple[str, ...]) -> None:
        super().__init__(field, f"unknown event type {event_type!r}; known types: {', '.join(known)}")
        self.event_type = event_type


class InvalidTransition(DomainError):
    """The command is well-formed but not allowed in the aggregate's current state."""


class NotFound(DomainError):
    """The addressed aggregate does not exist (or belongs to another account)."""

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} not found")
        self.kind = kind
        self.ident = ident


class Purged(NotFound):
    """The addressed item existed once, but the retention policy removed it (ADR 0018);
    ``detail`` says when or why we know."""

    def __init__(self, kind: str, ident: str, detail: str) -> None:
        super().__init__(kind, ident)
        self.args = (detail,)


class ConcurrencyConflict(DomainError):
    """An append found a stream at another version than expected; nothing was written."""

    def __init__(self, streams: tuple[str, ...]) -> None:
        super().__init__(f"concurrent change to {', '.join(streams)}")
        self.streams = streams
