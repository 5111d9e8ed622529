"""Webhook secrets through the storage ports: live ones read back, ended ones are gone for good.

Every store holds secrets as sealed tokens whose keys die when the secrets stop signing (ADR
0010); the memory store without encryption. Through the ports they behave alike: this suite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from attribution_webhooks.core.events import (
    EndpointDeleted,
    EndpointRegistered,
    EndpointUpdated,
    SecretRotated,
)
from attribution_webhooks.core.ports import Storage, StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
FIRST, SECOND, THIRD = "first-s3cret-ABCDEFGH", "second-s3cret-IJKLMNOP", "third-s3cret-QRSTUVWX"
LEASE = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(endpoint_id: str = "wh_1") -> EndpointRegistered:
    return EndpointRegistered(
        endpoint_id, "acct_1", "https://x.example/h", ("deal.attributed",), FIRST, "", False, T0
    )


async def secrets_in_stream(store: Storage, endpoint_id: str = "wh_1") -> list[str]:
    return [
        r.event.secret
        for r in await store.read(endpoint_id)
        if isinstance(r.event, EndpointRegistered | SecretRotated)
    ]


async def test_live_secrets_read_back_from_the_log_and_the_views(store: Storage) -> None:
    """Registered and rotated secrets read back as given, from the stream, the log and every view."""
    await store.append(StreamAppend("wh_1", 0, (registered(),)))
    await store.append(StreamAppend("wh_1", 1, (SecretRotated("wh_1", SECOND, at(3600), at(1)),)))
    assert await secrets_in_stream(store) == [FIRST, SECOND]
    assert [r.event for r in await store.read_all()] == [e.event for e in await store.read("wh_1")]
    view = await store.endpoint("wh_1")
    assert view is not None
    assert (view.endpoint.secret, view.endpoint.previous_secret) == (SECOND, FIRST)
    assert view.endpoint.signing_secrets(at(2)) == (SECOND, FIRST)
    [listed] = await store.list_endpoints("acct_1")
    [subscribed] = await store.subscribers("acct_1", "deal.attributed")
    assert (
        listed.endpoint
        == subscribed.endpoint
        == view.endpoint
        == (await store.endpoints(["wh_1"]))["wh_1"].endpoint
    )


async def test_a_deleted_endpoints_secrets_are_shredded(store: Storage) -> None:
    """After a delete, no port returns any secret the endpoint ever had; other endpoints keep theirs."""
    await store.append(
        StreamAppend("wh_1", 0, (registered(),)), StreamAppend("wh_2", 0, (registered("wh_2"),))
    )
    await store.append(StreamAppend("wh_1", 1, (SecretRotated("wh_1", SECOND, at(3600), at(1)),)))
    await store.append(StreamAppend("wh_1", 2, (EndpointDeleted("wh_1", at(2)),)))
    assert await secrets_in_stream(store) == ["", ""]
    view = await store.endpoint("wh_1")
    assert view is not None
    assert (view.endpoint.secret, view.endpoint.previous_secret) == ("", None)
    assert await secrets_in_stream(store, "wh_2") == [FIRST]


async def test_a_rotated_out_secret_is_shredded_when_its_grace_ends(store: Storage) -> None:
    """The previous secret signs until its grace ends; a claim after that ends it for good."""
    await store.append(StreamAppend("wh_1", 0, (registered(),)))
    await store.append(StreamAppend("wh_1", 1, (SecretRotated("wh_1", SECOND, at(60), at(1)),)))
    await store.claim(at(30), 10, LEASE)
    assert await secrets_in_stream(store) == [FIRST, SECOND]
    await store.claim(at(61), 10, LEASE)
    assert await secrets_in_stream(store) == ["", SECOND]
    view = await store.endpoint("wh_1")
    assert view is not None
    assert (view.endpoint.secret, view.endpoint.previous_secret) == (SECOND, "")
    assert view.endpoint.signing_secrets(at(30)) == (SECOND,)  # a shredded secret never signs
    # Later endpoint events leave the current secret alone.
    await store.append(StreamAppend("wh_1", 2, (EndpointUpdated("wh_1", at(70), description="d"),)))
    assert await secrets_in_stream(store) == ["", SECOND]


async def test_rotating_without_grace_or_twice_shreds_at_once(store: Storage) -> None:
    """A rotation without grace ends the old secret at once; a second rotation ends the first
    previous secret at once, whatever its grace."""
    await store.append(StreamAppend("wh_1", 0, (registered(),)))
    await store.append(StreamAppend("wh_1", 1, (SecretRotated("wh_1", SECOND, at(1), at(1)),)))
    assert await secrets_in_stream(store) == ["", SECOND]
    await store.append(StreamAppend("wh_2", 0, (registered("wh_2"),)))
    await store.append(
        StreamAppend(
            "wh_2",
            1,
            (
                SecretRotated("wh_2", SECOND, at(3600), at(1)),
                SecretRotated("wh_2", THIRD, at(3600), at(2)),
            ),
        )
    )
    assert await secrets_in_stream(store, "wh_2") == ["", SECOND, THIRD]
    view = await store.endpoint("wh_2")
    assert view is not None
    assert view.endpoint.signing_secrets(at(3)) == (THIRD, SECOND)
