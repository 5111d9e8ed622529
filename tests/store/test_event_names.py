"""Stored event names: rows carry registered names, not class names, so a class can be renamed,
an event can change shape (upcast on read), and logs of the previous release still read."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from alembic import command
from sqlalchemy import insert, text
from sqlalchemy.engine import URL
from store_backends import database_bytes

from attribution_webhooks.adapters.crypto import Keyring, generate_master_key
from attribution_webhooks.adapters.sql import open_store, upgrade
from attribution_webhooks.adapters.sql.codec import REGISTRY, EventCodec, EventType, encode_endpoint
from attribution_webhooks.adapters.sql.engine import create_engine, write_options
from attribution_webhooks.adapters.sql.migrate import (
    MIGRATIONS,
    alembic_config,
    current_revision,
    head_revision,
)
from attribution_webhooks.adapters.sql.schema import endpoints, events
from attribution_webhooks.core import endpoint as ep
from attribution_webhooks.core.events import (
    AttemptFailed,
    DeliveryScheduled,
    DomainEvent,
    EndpointDeleted,
    EndpointRegistered,
    EventPublished,
    SecretRotated,
    event_stream,
)
from attribution_webhooks.core.outcomes import ErrorKind
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def failed(attempt: int, status: int | None = 500) -> AttemptFailed:
    error = None if status is not None else ErrorKind.TIMEOUT
    return AttemptFailed("dlv_1", "wh_1", attempt, at(attempt), 12.5, status, error, "boom", "oops")


@attrs.frozen
class FailedDeliveryAttempt:
    """``AttemptFailed`` after a rename: same fields, another class name."""

    delivery_id: str
    endpoint_id: str
    attempt: int
    started_at: datetime
    elapsed_ms: float
    status_code: int | None
    error: ErrorKind | None
    detail: str
    response_body: str


@attrs.frozen
class AttemptFailedV2:
    """``AttemptFailed`` at version 2: ``detail`` became ``reason``; ``retryable`` is new."""

    delivery_id: str
    endpoint_id: str
    attempt: int
    started_at: datetime
    elapsed_ms: float
    status_code: int | None
    error: ErrorKind | None
    reason: str
    response_body: str
    retryable: bool


def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    upgraded = {key: value for key, value in payload.items() if key != "detail"}
    status = payload["status_code"]
    return {**upgraded, "reason": payload["detail"], "retryable": status is None or status >= 500}


async def test_a_renamed_class_still_reads_an_old_log(sqlite_url: str) -> None:
    """A log written with ``AttemptFailed`` reads back into the class registered under its name now."""
    store = open_store(sqlite_url)
    try:
        await store.append(StreamAppend("dlv_1", 0, (failed(1), failed(2, status=None))))
        with store.engine.connect() as conn:
            names = conn.execute(text("SELECT event_type FROM events")).scalars().all()
        assert names == ["delivery.attempt_failed"] * 2  # no class name in the rows
    finally:
        store.close()
    renamed = EventCodec(REGISTRY.replace(EventType("delivery.attempt_failed", FailedDeliveryAttempt)))
    store = open_store(sqlite_url, codec=renamed)
    try:
        read = [r.event for r in await store.read("dlv_1")]
    finally:
        store.close()
    assert read == [
        FailedDeliveryAttempt(**attrs.asdict(e, recurse=False)) for e in (failed(1), failed(2, None))
    ]


async def test_an_old_version_of_an_event_is_upcast_to_the_new_one(sqlite_url: str) -> None:
    """Rows written at v1 come back as v2 through the upcaster; rows written at v2 as they are."""
    store = open_store(sqlite_url)
    try:
        await store.append(StreamAppend("dlv_1", 0, (failed(1), failed(2, status=404))))
    finally:
        store.close()
    v2 = EventCodec(
        REGISTRY.replace(EventType("delivery.attempt_failed", AttemptFailedV2, 2, {1: _v1_to_v2}))
    )
    store = open_store(sqlite_url, codec=v2)
    try:
        first, second = [r.event for r in await store.read("dlv_1")]
    finally:
        store.close()
    assert isinstance(first, AttemptFailedV2)
    assert (first.reason, first.retryable, second.retryable) == ("boom", True, False)
    stored = v2.encode(second)  # type: ignore[arg-type]  # a v2 class the core does not know
    assert (stored.event_type, stored.schema_version) == ("delivery.attempt_failed", 2)
    assert v2.decode(stored) == second


def test_every_event_class_has_one_stable_name() -> None:
    """The registry names every domain event once, and revision 0003 renamed rows to these (the
    events added since have never had rows under another name)."""
    spec = importlib.util.spec_from_file_location(
        "revision_0003", MIGRATIONS / "versions" / "0003_event_names_and_sealed_secrets.py"
    )
    assert spec is not None
    assert spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    # Events added after revision 0003 were never stored under their class name.
    later = {
        "AttemptAbandoned": "delivery.attempt_abandoned",
        "BreakerOpened": "endpoint.breaker_opened",
        "BreakerClosed": "endpoint.breaker_closed",
    }
    assert {t.cls.__name__: t.name for t in REGISTRY.types} == {**revision.NAMES, **later}
    with pytest.raises(ValueError, match="registered twice"):
        REGISTRY.replace(EventType("delivery.failed2", AttemptFailed))


# --- a log written by the previous release (revision 0002: class names, plaintext secrets) ----------

S1, S2, S3 = "whsec_one+Secret/AAAAAAAAAAAA", "whsec_two+Secret/BBBBBBBBBBBB", "whsec_three+Secret/CCCCCCCCC"
S4, S5, S6 = "whsec_four+Secret/DDDDDDDDDDD", "whsec_five+Secret/EEEEEEEEEEE", "whsec_six+Secret/FFFFFFFFFFFF"


def _registered(endpoint_id: str, secret: str) -> EndpointRegistered:
    return EndpointRegistered(
        endpoint_id, "acct_1", "https://x.example/h", ("deal.attributed",), secret, "", False, T0
    )


OLD_STREAMS: dict[str, tuple[DomainEvent, ...]] = {
    # Rotated, the previous secret still in its grace period (until T0 + 1 h).
    "wh_live": (_registered("wh_live", S1), SecretRotated("wh_live", S2, at(3600), at(1))),
    "wh_gone": (_registered("wh_gone", S3), EndpointDeleted("wh_gone", at(2))),
    # Rotated twice, the second time without grace: only the last secret still signs.
    "wh_twice": (
        _registered("wh_twice", S4),
        SecretRotated("wh_twice", S5, at(3600), at(1)),
        SecretRotated("wh_twice", S6, at(2), at(2)),
    ),
    event_stream("acct_1", "evt_1"): (EventPublished("evt_1", "acct_1", "deal.attributed", "{}", T0, T0),),
    "dlv_1": (DeliveryScheduled("dlv_1", "acct_1", "wh_live", "evt_1", "deal.attributed", T0),),
}


def _write_old_log(url: str | URL) -> None:
    """The schema at revision 0002 with rows as that release wrote them."""
    engine = create_engine(url, pool_size=1)
    codec = EventCodec()
    position = 0
    with engine.connect() as conn:
        conn.execution_options(**write_options())
        with conn.begin():
            command.upgrade(alembic_config(conn), "0002")
            for stream_id, stream in OLD_STREAMS.items():
                for version, event in enumerate(stream, 1):
                    position += 1
                    stored = codec.encode(event)
                    row = {"position": position, "stream_id": stream_id, "version": version}
                    row |= {"event_type": type(event).__name__, "schema_version": 1, "data": stored.data}
                    conn.execute(insert(events), row)
                if stream_id.startswith("wh_"):
                    state = ep.fold(stream)  # type: ignore[arg-type]
                    if state.status is ep.EndpointStatus.DELETED:  # that release kept the secret
                        state = attrs.evolve(state, secret=stream[0].secret)  # type: ignore[union-attr]
                    conn.execute(
                        insert(endpoints),
                        {
                            "endpoint_id": stream_id,
                            "account_id": "acct_1",
                            "status": state.status.value,
                            "version": len(stream),
                            "failing_since": None,
                            "registered_position": position - len(stream) + 1,
                            "state": encode_endpoint(state),
                        },
                    )
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_url(request: pytest.FixtureRequest) -> str | URL:
    """A database at revision 0002 holding a log in the previous release's format."""
    url: str | URL = request.getfixturevalue(
        "sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    )
    _write_old_log(url)
    return url


async def test_a_log_of_the_previous_release_still_reads(old_url: str | URL) -> None:
    """After the upgrade the old log reads under the new names, live secrets are sealed and
    still open, ended ones are shredded, and a rebuild gives the same views."""
    keyring = Keyring.parse(generate_master_key())
    upgrade(old_url, keyring)
    store = open_store(old_url, keyring=keyring)
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            names = set(conn.execute(text("SELECT event_type FROM events")).scalars())
            raw = "\n".join(conn.execute(text("SELECT data FROM events")).scalars())
            raw += "\n".join(conn.execute(text("SELECT state FROM endpoints")).scalars())
        assert names == {"endpoint.registered", "endpoint.secret_rotated", "endpoint.deleted"} | {
            "event.published",
            "delivery.scheduled",
        }
        for secret in (S1, S2, S3, S4, S5, S6):
            assert secret not in raw
        recorded = await store.read_all()
        assert len(recorded) == sum(len(stream) for stream in OLD_STREAMS.values())

        async def secrets(endpoint_id: str) -> list[str]:
            found = [r.event for r in await store.read(endpoint_id)]
            return [e.secret for e in found if isinstance(e, EndpointRegistered | SecretRotated)]

        assert await secrets("wh_live") == [S1, S2]
        assert await secrets("wh_gone") == [""]
        assert await secrets("wh_twice") == ["", "", S6]
        views = await store.endpoints(["wh_live", "wh_gone", "wh_twice"])
        assert (views["wh_live"].endpoint.secret, views["wh_live"].endpoint.previous_secret) == (S2, S1)
        assert views["wh_gone"].endpoint.secret == ""
        assert views["wh_twice"].endpoint.signing_secrets(at(3)) == (S6,)
        # The previous secret's key expires with its grace period, as a new rotation's would.
        await store.claim(at(3601), 10, timedelta(seconds=60))
        assert await secrets("wh_live") == ["", S2]
        before = await store.endpoints(["wh_live", "wh_gone", "wh_twice"])
        store.rebuild_read_models()
        store.destroy_expired_keys(at(3601))
        assert await store.endpoints(["wh_live", "wh_gone", "wh_twice"]) == before
    finally:
        store.close()
    dump = database_bytes(old_url)  # SQLite: the file itself, where the old rows were
    for secret in (S1, S2, S3, S4, S5, S6):
        assert secret.encode() not in dump
