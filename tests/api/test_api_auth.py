"""X-API-Key: missing, malformed, unknown and revoked keys are 401 problems; keys are stored hashed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from api_helpers import Api, assert_problem
from litestar.testing import TestClient

from attribution_webhooks.app.api import create_app


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": ""}, {"X-API-Key": "YOUR_API_KEY"}, {"X-API-Key": "aw_aaaaaaaaaaaa_" + "A" * 43}],
    ids=["missing", "empty", "placeholder", "unknown"],
)
def test_requests_without_a_valid_key_are_401(api: Api, headers: dict[str, str]) -> None:
    """Every authenticated route answers 401 with a problem saying what to send."""
    for method, path in [
        ("GET", "/webhooks"),
        ("POST", "/events"),
        ("GET", "/webhooks/wh_x"),
        ("GET", "/event-types"),
    ]:
        assert_problem(api.client.request(method, path, headers=headers), 401, "X-API-Key")


def test_a_key_of_the_right_shape_with_a_wrong_secret_is_refused(api: Api) -> None:
    """The key's id alone is not enough: the whole key must hash to the stored digest."""
    forged = api.key[:-4] + ("AAAA" if not api.key.endswith("AAAA") else "BBBB")
    assert_problem(api.client.get("/webhooks", headers={"X-API-Key": forged}), 401)


def test_keys_are_stored_hashed(api: Api) -> None:
    """The database holds the key's SHA-256, never the key."""
    with api.runtime.store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT key_id, key_hash FROM api_keys").all()
    assert rows
    for key_id, key_hash in rows:
        assert len(key_hash) == 64
        assert api.key not in (key_id, key_hash)


def test_a_revoked_key_stops_working(api: Api) -> None:
    """Once revoked (and past the cache's time to live, zero here), a key gets 401."""
    with TestClient(create_app(api.runtime, auth_ttl=0)) as client:
        assert client.get("/webhooks", headers=api.headers).status_code == 200
        key_id = api.key.split("_")[1]
        assert api.runtime.keys.revoke(key_id, datetime.now(UTC))
        assert_problem(client.get("/webhooks", headers=api.headers), 401, "not hold a valid API key")
