"""Webhook secrets at rest (ADR 0010): never in plaintext in the database's files or dumps, and
once a secret stops signing, gone for good, even for someone holding the master key."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from store_backends import database_bytes

from attribution_webhooks.adapters.crypto import Keyring, KeyringError, generate_master_key, open_secret
from attribution_webhooks.adapters.sql import SqlStore, open_store
from attribution_webhooks.adapters.sql.secret_keys import PURGE_INTERVAL
from attribution_webhooks.core.events import EndpointDeleted, EndpointRegistered, SecretRotated
from attribution_webhooks.core.ports import StreamAppend

T0 = datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
MASTER = generate_master_key()
S1, S2, S3 = "whsec_first+Secret/AAAAAAAA", "whsec_second+Secret/BBBBBBBB", "whsec_third+Secret/CCCCCCCC"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def registered(endpoint_id: str, secret: str) -> StreamAppend:
    event = EndpointRegistered(
        endpoint_id, "acct_1", "https://x.example/h", ("deal.attributed",), secret, "", False, T0
    )
    return StreamAppend(endpoint_id, 0, (event,))


def key_rows(store: SqlStore) -> dict[str, tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT key_id, master_id, wrapped FROM secret_keys")).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def stored_tokens(store: SqlStore) -> list[str]:
    """The sealed secrets as the log holds them (``sealed <key id> <ciphertext>``)."""
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT data FROM events ORDER BY position")).scalars().all()
    return [json.loads(data)["secret"] for data in rows if "secret" in json.loads(data)]


async def secrets_of(store: SqlStore, endpoint_id: str) -> list[str]:
    events = [r.event for r in await store.read(endpoint_id)]
    return [e.secret for e in events if isinstance(e, EndpointRegistered | SecretRotated)]


async def test_secrets_never_reach_the_database_in_plaintext(sql_url: str | URL) -> None:
    """Secrets written through the SQL store read back, and appear nowhere in its files or dump."""
    keyring = Keyring.parse(MASTER)
    store = open_store(sql_url, keyring=keyring)
    try:
        await store.append(registered("wh_1", S1), registered("wh_2", S2))
        await store.append(StreamAppend("wh_1", 1, (SecretRotated("wh_1", S3, at(3600), at(1)),)))
        view = await store.endpoint("wh_1")
        assert view is not None
        assert (view.endpoint.secret, view.endpoint.previous_secret) == (S3, S1)
        assert await secrets_of(store, "wh_1") == [S1, S3]
        dump = database_bytes(sql_url)
        assert b"secret_keys" in dump or b"sealed sk_" in dump  # the control: we read the right thing
        for secret in (S1, S2, S3, MASTER):
            assert secret.encode() not in dump
        assert all(token.startswith("sealed sk_") for token in stored_tokens(store))
    finally:
        store.close()
    for secret in (S1, S2, S3):
        assert secret.encode() not in database_bytes(sql_url)


async def test_ended_secrets_cannot_be_recovered_even_with_the_master_key(sql_url: str | URL) -> None:
    """A deleted endpoint's secret, and a rotated-out one past its grace, lose their keys: the
    keys leave the files and dumps, no remaining key opens them, and they read back empty."""
    keyring = Keyring.parse(MASTER)
    store = open_store(sql_url, keyring=keyring)
    try:
        await store.append(registered("wh_1", S1), registered("wh_2", S2))
        await store.append(StreamAppend("wh_2", 1, (SecretRotated("wh_2", S3, at(60), at(1)),)))
        tokens = dict(zip((S1, S2, S3), stored_tokens(store), strict=True))
        before = key_rows(store)
        ended = {token.split(" ")[1] for secret, token in tokens.items() if secret in (S1, S2)}
        dump = database_bytes(sql_url)
        for key_id in ended:
            assert before[key_id][1].encode() in dump  # the control: a live wrapped key is found

        await store.append(StreamAppend("wh_1", 1, (EndpointDeleted("wh_1", at(2)),)))
        await store.claim(at(59), 10, timedelta(seconds=60))
        assert await secrets_of(store, "wh_2") == [S2, S3]  # still in its grace period
        # Claims look for expired keys every PURGE_INTERVAL (of the time they are given).
        await store.claim(at(59) + PURGE_INTERVAL, 10, timedelta(seconds=60))

        assert await secrets_of(store, "wh_1") == [""]
        assert await secrets_of(store, "wh_2") == ["", S3]
        after = key_rows(store)
        assert set(after) == set(before) - ended
        dump = database_bytes(sql_url)
        for key_id in ended:  # (its id stays in the log's tokens: it names what is gone)
            assert before[key_id][1].encode() not in dump
        # Holding the master key and everything left: nothing opens the ended secrets.
        for secret in (S1, S2):
            _, key_id, ciphertext = tokens[secret].split(" ", 2)
            for other_id, (master_id, wrapped) in after.items():
                data_key = keyring.unwrap(other_id, master_id, wrapped)
                with pytest.raises(KeyringError):
                    open_secret(key_id, data_key, ciphertext)
    finally:
        store.close()
    reopened = open_store(sql_url, keyring=keyring)
    try:
        assert await secrets_of(reopened, "wh_2") == ["", S3]
    finally:
        reopened.close()


async def test_a_new_master_key_takes_over_and_a_missing_one_is_named(sql_url: str | URL) -> None:
    """Keys wrapped by an older master key still open; rewrapping moves them to the newest, after
    which the old key can go. A keyring without the key that wraps them says which key is missing."""
    old, new = Keyring.parse(MASTER), Keyring.parse(generate_master_key())
    store = open_store(sql_url, keyring=old)
    try:
        await store.append(registered("wh_1", S1))
    finally:
        store.close()
    both = Keyring((*new.keys, *old.keys))
    store = open_store(sql_url, keyring=both)
    try:
        assert await secrets_of(store, "wh_1") == [S1]
        assert store.rewrap_keys() == 1
        assert {master for master, _ in key_rows(store).values()} == {new.newest.key_id}
    finally:
        store.close()
    store = open_store(sql_url, keyring=new)
    try:
        assert await secrets_of(store, "wh_1") == [S1]
    finally:
        store.close()
    store = open_store(sql_url, keyring=old)
    try:
        with pytest.raises(KeyringError, match=new.newest.key_id):
            await store.read("wh_1")
    finally:
        store.close()


@pytest.mark.parametrize("read", ["list", "lookup"])
async def test_a_page_of_endpoints_opens_its_secrets_with_one_key_query(
    sql_url: str | URL, read: str
) -> None:
    """Listing (or looking up) many endpoints costs one key query, not one per endpoint."""
    keyring = Keyring.parse(MASTER)
    store = open_store(sql_url, keyring=keyring)
    try:
        await store.append(*(registered(f"wh_{n:02}", S1) for n in range(30)))
    finally:
        store.close()
    store = open_store(sql_url, keyring=keyring)  # nothing decoded yet
    try:
        statements: list[str] = []
        connections = store._connections
        query = connections.query

        def counting(statement: str, parameters: Any = ()) -> list[Any]:
            statements.append(statement)
            return query(statement, parameters)

        connections.query = counting  # type: ignore[method-assign]
        if read == "list":
            views = list(await store.list_endpoints("acct_1"))
        else:
            views = list((await store.endpoints([f"wh_{n:02}" for n in range(30)])).values())
        assert len(views) == 30
        assert {view.endpoint.secret for view in views} == {S1}
        assert sum("secret_keys" in statement for statement in statements) == 1
    finally:
        store.close()


async def test_without_a_key_a_configured_database_gets_no_development_key(sql_url: str | URL) -> None:
    """Opened without a keyring, a database whose secrets configured keys seal makes no key of its
    own: what does not touch a secret works, what does says which setting it needs."""
    store = open_store(sql_url, keyring=Keyring.parse(MASTER))
    try:
        await store.append(registered("wh_1", S1))
    finally:
        store.close()
    store = open_store(sql_url)
    try:
        assert not store.development_key
        assert await store.next_due() is None
        with pytest.raises(KeyringError, match="ATTRIBUTION_WEBHOOKS_SECRET_KEYS"):
            await store.read("wh_1")
        with pytest.raises(KeyringError, match="ATTRIBUTION_WEBHOOKS_SECRET_KEYS"):
            await store.append(registered("wh_2", S2))
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM development_key")).scalar_one() == 0
    finally:
        store.close()
