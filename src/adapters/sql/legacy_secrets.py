"""Sealing the webhook secrets that releases before revision 0003 stored in plaintext.

Run once, by that revision, inside the upgrade's transaction. Each endpoint's secrets are sealed
in place in the log and in the endpoints read model, with the same tokens in both (ADR 0010).
Secrets that no longer sign (a deleted endpoint's, a rotated-out one whose grace has ended by
the next rotation, or one rotated out without grace) are not sealed but shredded: emptied. The
previous secret of a rotation still in its grace period gets a key that expires with the grace.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..crypto import Keyring, seal_secret
from ..sealing import SHREDDED, key_of, make_token
from .schema import secret_keys
from .secret_keys import development_key

__all__ = ["seal_plaintext_secrets"]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def seal_plaintext_secrets(conn: sa.Connection, keyring: Keyring | None) -> int:
    """Seal (or shred) every plaintext secret; without ``keyring``, with the development key.
    Returns how many secrets were sealed."""
    rows = conn.execute(
        sa.text(
            "SELECT position, stream_id, event_type, data FROM events WHERE event_type IN"
            " ('endpoint.registered', 'endpoint.secret_rotated', 'endpoint.deleted') ORDER BY position"
        )
    ).all()
    if not rows:
        return 0
    ring = keyring if keyring is not None else Keyring((development_key(conn),))
    streams: dict[str, list[Any]] = {}
    for row in rows:
        streams.setdefault(row.stream_id, []).append(row)
    return sum(_seal_endpoint(conn, ring, endpoint_id, stream) for endpoint_id, stream in streams.items())


def _seal_endpoint(conn: sa.Connection, keyring: Keyring, endpoint_id: str, stream: list[Any]) -> int:
    deleted = any(row.event_type == "endpoint.deleted" for row in stream)
    with_secret = [(row, json.loads(row.data)) for row in stream if row.event_type != "endpoint.deleted"]
    grace_ends = _grace_end(with_secret[-1][1]) if len(with_secret) > 1 else None
    tokens: list[str] = []
    sealed = 0
    for index, (row, data) in enumerate(with_secret):
        age = len(with_secret) - 1 - index  # 0: the current secret, 1: the previous one
        secret: str = data["secret"]
        if key_of(secret) is not None:
            token = secret
        elif deleted or age > 1 or (age == 1 and grace_ends is None):
            token = SHREDDED
        else:
            key = keyring.new_data_key(f"sk_{secrets.token_hex(12)}")
            row_values = {"key_id": key.key_id, "endpoint_id": endpoint_id, "master_id": key.master_id}
            destroy_after = grace_ends if age == 1 else None
            conn.execute(
                sa.insert(secret_keys), {**row_values, "wrapped": key.wrapped, "destroy_after": destroy_after}
            )
            token = make_token(key.key_id, seal_secret(key, secret))
            sealed += 1
        tokens.append(token)
        update = sa.text("UPDATE events SET data = :data WHERE position = :position")
        conn.execute(update, {"data": _dumps({**data, "secret": token}), "position": row.position})
    select = sa.text("SELECT state FROM endpoints WHERE endpoint_id = :id")
    state_text = conn.execute(select, {"id": endpoint_id}).scalar()
    if state_text is not None:
        state = json.loads(state_text)
        if deleted:
            state.update(secret=SHREDDED, previous_secret=None, previous_secret_expires_at=None)
        else:
            state["secret"] = tokens[-1] if tokens else SHREDDED
            if state.get("previous_secret") is not None:
                state["previous_secret"] = tokens[-2] if len(tokens) > 1 else SHREDDED
        update = sa.text("UPDATE endpoints SET state = :state WHERE endpoint_id = :id")
        conn.execute(update, {"state": _dumps(state), "id": endpoint_id})
    return sealed


def _grace_end(rotation: dict[str, Any]) -> datetime | None:
    """When the secret before ``rotation`` stops signing; None if it stopped at the rotation."""
    expires = datetime.fromisoformat(rotation["previous_expires_at"])
    return expires if expires > datetime.fromisoformat(rotation["rotated_at"]) else None
