"""Webhook secrets as stores keep them: sealed tokens in events and read models, opened on read,
shredded when they stop signing (ADR 0010). Shared by every store, so they behave alike.

A store replaces each secret of an event it appends by a *token* naming the key that opens it,
``sealed <key id> <ciphertext>``: a space never occurs in a secret (``validate_secret``), so a
token cannot be mistaken for one, and a secret written before sealing existed still reads as
itself. The read models are folded from the sealed events, so they hold the same tokens. Reading
opens the tokens again; a token whose key is gone opens to ``SHREDDED`` (the empty string, never
a valid secret). Which keys to destroy when is one pure rule, ``key_changes``: a secret stops
signing when its endpoint is deleted, when a second rotation replaces it as the previous secret,
and when its rotation's grace period ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime

from attrs import define, field, frozen
from attrs import evolve as _replace

from ..core.endpoint import Endpoint
from ..core.events import DomainEvent, EndpointDeleted, EndpointEvent, EndpointRegistered, SecretRotated
from ..core.ports import RecordedEvent

__all__ = [
    "SECRET_EVENTS",
    "SHREDDED",
    "KeyChanges",
    "MemoryKeys",
    "key_changes",
    "key_of",
    "make_token",
    "open_endpoint",
    "open_recorded",
    "seal_event",
    "tokens_in",
]

#: What a secret whose key was destroyed reads as.
SHREDDED = ""

#: The events that carry a webhook secret, each in its field ``secret``.
SECRET_EVENTS = (EndpointRegistered, SecretRotated)

_PREFIX = "sealed "


def make_token(key_id: str, ciphertext: str) -> str:
    return f"{_PREFIX}{key_id} {ciphertext}"


def key_of(value: str | None) -> str | None:
    """The key id of a token; None for anything else (a plain secret, None, SHREDDED)."""
    if value is None or not value.startswith(_PREFIX):
        return None
    return value.split(" ", 2)[1]


def seal_event(event: DomainEvent, new_token: Callable[[str, str], str]) -> DomainEvent:
    """``event`` with its secret replaced by ``new_token(endpoint_id, secret)``."""
    if isinstance(event, SECRET_EVENTS):
        return _replace(event, secret=new_token(event.endpoint_id, event.secret))
    return event


def tokens_in(items: Iterable[DomainEvent | Endpoint]) -> set[str]:
    """Every token among the secrets of these events and endpoint states."""
    found: set[str] = set()
    for item in items:
        if isinstance(item, Endpoint):
            values: tuple[str | None, ...] = (item.secret, item.previous_secret)
        elif isinstance(item, SECRET_EVENTS):
            values = (item.secret,)
        else:
            continue
        found.update(value for value in values if value is not None and key_of(value) is not None)
    return found


def _opened(value: str, opened: Mapping[str, str]) -> str:
    return opened.get(value, value) if key_of(value) is not None else value


def open_recorded(recorded: RecordedEvent, opened: Mapping[str, str]) -> RecordedEvent:
    """``recorded`` with its event's token replaced by what ``opened`` maps it to."""
    event = recorded.event
    if not isinstance(event, SECRET_EVENTS) or key_of(event.secret) is None:
        return recorded
    unsealed = _replace(event, secret=_opened(event.secret, opened))
    return RecordedEvent(recorded.position, recorded.stream_id, recorded.version, unsealed)


def open_endpoint(state: Endpoint, opened: Mapping[str, str]) -> Endpoint:
    """``state`` with its secrets' tokens replaced by what ``opened`` maps them to."""
    previous = state.previous_secret
    if key_of(state.secret) is None and key_of(previous) is None:
        return state
    return _replace(
        state,
        secret=_opened(state.secret, opened),
        previous_secret=None if previous is None else _opened(previous, opened),
    )


@frozen
class KeyChanges:
    """Keys to destroy now, keys to destroy at a time, and an endpoint whose keys all go."""

    destroy: tuple[str, ...] = ()
    expire: tuple[tuple[str, datetime], ...] = ()
    endpoint_deleted: str | None = None

    def __bool__(self) -> bool:
        return bool(self.destroy or self.expire or self.endpoint_deleted)


def key_changes(before: Endpoint, event: EndpointEvent) -> KeyChanges:
    """What ``event`` does to the keys of the endpoint whose sealed state was ``before``.

    A rotation ends the previous secret's life at once (the new previous is the current one),
    and the current secret's at the end of the grace period; a deletion ends every secret's.
    """
    if isinstance(event, EndpointDeleted):
        return KeyChanges(endpoint_deleted=event.endpoint_id)
    if not isinstance(event, SecretRotated):
        return KeyChanges()
    destroy = [key for key in (key_of(before.previous_secret),) if key is not None]
    current = key_of(before.secret)
    if current is None:
        return KeyChanges(tuple(destroy))
    if event.previous_expires_at > event.rotated_at:
        return KeyChanges(tuple(destroy), ((current, event.previous_expires_at),))
    return KeyChanges((*destroy, current))


@define
class _MemoryKey:
    endpoint_id: str
    secret: str
    destroy_after: datetime | None = None


@define
class MemoryKeys:
    """The memory store's keys: the secret itself in a dict, no encryption (nothing is at rest),
    with the same life as the SQL store's keys, so both read back the same through the ports."""

    _keys: dict[str, _MemoryKey] = field(factory=dict)
    _ids: Iterator[int] = field(factory=lambda: itertools.count(1))

    def new_token(self, endpoint_id: str, secret: str) -> str:
        key_id = f"mk_{next(self._ids)}"
        self._keys[key_id] = _MemoryKey(endpoint_id, secret)
        return make_token(key_id, "-")

    def open(self, tokens: Collection[str]) -> dict[str, str]:
        opened: dict[str, str] = {}
        for token in tokens:
            key = self._keys.get(key_of(token) or "")
            opened[token] = SHREDDED if key is None else key.secret
        return opened

    def apply(self, changes: KeyChanges) -> None:
        for key_id in changes.destroy:
            self._keys.pop(key_id, None)
        for key_id, at in changes.expire:
            if key_id in self._keys:
                self._keys[key_id].destroy_after = at
        if changes.endpoint_deleted is not None:
            for key_id, key in list(self._keys.items()):
                if key.endpoint_id == changes.endpoint_deleted:
                    del self._keys[key_id]

    def purge(self, now: datetime) -> int:
        """Destroy the keys whose time has come; how many."""
        due = [
            k for k, key in self._keys.items() if key.destroy_after is not None and key.destroy_after <= now
        ]
        for key_id in due:
            del self._keys[key_id]
        return len(due)
