"""HMAC-SHA256 signatures: the spec's scheme and the Standard Webhooks one."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["HmacSigner", "standard_webhooks_key"]

_STANDARD_PREFIX = "whsec_"
_BLOCK = 64  # SHA-256's block size: HMAC pads its key to it (RFC 2104)
_KEYS_KEPT = 4096  # secrets whose HMAC start is remembered (a worker signs for few endpoints)


def standard_webhooks_key(secret: str) -> bytes:
    """The HMAC key Standard Webhooks libraries derive from ``secret``.

    A ``whsec_``-prefixed base64 secret (what we generate) is decoded, as those libraries do;
    any other secret is used as its UTF-8 bytes, so a receiver passes ``base64(secret)`` to them.
    """
    if secret.startswith(_STANDARD_PREFIX):
        try:
            return base64.b64decode(secret[len(_STANDARD_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode("utf-8")


class HmacSigner:
    """Implements ``attribution_webhooks.core.ports.Signer``.

    HMAC-SHA256 hashes the key, padded, before the message (RFC 2104). The two SHA-256 states
    that have absorbed the padded key are computed once per secret and copied for each body:
    about half the CPU of ``hmac.digest``, which under OpenSSL 3 looks the digest up and sets
    the key up again on every call (measured in ADR 0007's drain section). The states are
    kept per secret in memory, as the endpoint views that hold the secret are.
    """

    def __init__(self) -> None:
        self._keys: dict[str, tuple[hashlib._Hash, hashlib._Hash]] = {}

    def sign(self, body: bytes, secret: str) -> str:
        pads = self._keys.get(secret)
        if pads is None:
            pads = self._pads(secret)
        inner = pads[0].copy()
        inner.update(body)
        outer = pads[1].copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def _pads(self, secret: str) -> tuple[hashlib._Hash, hashlib._Hash]:
        key = secret.encode("utf-8")
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_BLOCK, b"\0")
        pads = (
            hashlib.sha256(key.translate(_IPAD)),
            hashlib.sha256(key.translate(_OPAD)),
        )
        if len(self._keys) >= _KEYS_KEPT:
            self._keys.clear()
        self._keys[secret] = pads
        return pads

    def sign_standard(self, message_id: str, timestamp: int, body: bytes, secret: str) -> str:
        signed = b"%s.%d.%s" % (message_id.encode("utf-8"), timestamp, body)
        digest = hmac.digest(standard_webhooks_key(secret), signed, "sha256")
        return base64.b64encode(digest).decode("ascii")


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
