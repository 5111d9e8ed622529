"""Encryption of stored webhook secrets: master keys (a keyring), data keys, AES-256-GCM.

Each stored secret is sealed with its own random data key; the data key is stored wrapped
(encrypted) by a master key from the keyring. Destroying a data key makes the secret it sealed
unrecoverable, even to someone who holds every master key and every copy of the database
(crypto-shredding, ADR 0010). The keyring lists master keys newest first: the newest wraps new
data keys, any of them unwraps. A master key is named by a short fingerprint, stored with each
data key it wraps, so that an unknown one is reported by name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from attrs import frozen
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_BYTES",
    "DataKey",
    "Keyring",
    "KeyringError",
    "MasterKey",
    "generate_master_key",
    "open_secret",
    "seal_secret",
]

KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # GCM's standard nonce; random per encryption


class KeyringError(ValueError):
    """A master key is malformed, missing from the keyring, or does not open what it should."""


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii"))


def generate_master_key() -> str:
    """A new master key as the keyring takes it: URL-safe base64 of 32 random bytes."""
    return _encode(os.urandom(KEY_BYTES))


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)


@frozen(repr=False)
class MasterKey:
    """One master key. ``key_id`` is a fingerprint (not the key); the repr never shows the key."""

    key_id: str
    key: bytes

    @classmethod
    def from_text(cls, text: str) -> MasterKey:
        try:
            key = _decode(text.strip())
        except (binascii.Error, ValueError):
            raise KeyringError("a secret key is not valid URL-safe base64") from None
        if len(key) != KEY_BYTES:
            raise KeyringError(f"a secret key must be {KEY_BYTES} bytes (base64), got {len(key)}")
        return cls(hashlib.sha256(b"aw-master-key:" + key).hexdigest()[:16], key)

    def __repr__(self) -> str:
        return f"MasterKey({self.key_id!r})"


@frozen
class DataKey:
    """A data key in the clear (``key``) and as stored: ``wrapped`` by master key ``master_id``."""

    key_id: str
    key: bytes
    master_id: str
    wrapped: str


@frozen
class Keyring:
    """Master keys, newest first: the newest wraps, any unwraps."""

    keys: tuple[MasterKey, ...]

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise KeyringError("a keyring needs at least one key")

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """From ``key1,key2,…`` (newest first; commas or white space between keys)."""
        return cls(tuple(MasterKey.from_text(part) for part in re.split(r"[\s,]+", text.strip()) if part))

    @property
    def newest(self) -> MasterKey:
        return self.keys[0]

    def also(self, *older: MasterKey) -> Keyring:
        """This keyring, with ``older`` keys that only unwrap (after the ones it has)."""
        known = {key.key_id for key in self.keys}
        return Keyring((*self.keys, *(key for key in older if key.key_id not in known)))

    def new_data_key(self, key_id: str) -> DataKey:
        """A fresh random data key named ``key_id``, wrapped by the newest master key."""
        key = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        return self.wrap(key_id, key)

    def wrap(self, key_id: str, key: bytes) -> DataKey:
        master = self.newest
        return DataKey(key_id, key, master.key_id, _encode(_encrypt(master.key, key, key_id.encode())))

    def unwrap(self, key_id: str, master_id: str, wrapped: str) -> bytes:
        """The data key ``key_id`` in the clear. KeyringError if its master key is not in the
        keyring, or if the wrapped key has been tampered with."""
        for master in self.keys:
            if master.key_id == master_id:
                try:
                    return _decrypt(master.key, _decode(wrapped), key_id.encode())
                except (InvalidTag, binascii.Error, ValueError):
                    raise KeyringError(
                        f"data key {key_id} does not open with master key {master_id}"
                    ) from None
        raise KeyringError(
            f"data key {key_id} is wrapped by master key {master_id}, which is not in the keyring "
            "(ATTRIBUTION_WEBHOOKS_SECRET_KEYS): add it back, after the newest key"
        )


def seal_secret(key: DataKey, secret: str) -> str:
    """``secret`` encrypted by ``key`` (base64 text); bound to the key's name."""
    return _encode(_encrypt(key.key, secret.encode("utf-8"), key.key_id.encode()))


def open_secret(key_id: str, key: bytes, sealed: str) -> str:
    """The secret that ``seal_secret`` sealed with data key ``key_id``."""
    try:
        return _decrypt(key, _decode(sealed), key_id.encode()).decode("utf-8")
    except (InvalidTag, binascii.Error, ValueError):
        raise KeyringError(f"a secret sealed with data key {key_id} does not open with it") from None
