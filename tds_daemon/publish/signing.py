"""Signing a push as the Standard Webhooks specification says, so that a consumer verifies it with that
specification's libraries: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` = ``v1,`` and the
base64 HMAC-SHA256 of ``id.timestamp.body`` under the secret's key (a ``whsec_`` secret is the base64 of the
key; any other secret is used as its own bytes)."""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


class InvalidSecret(ValueError):
    """A ``whsec_`` secret whose key is not base64."""


def key(secret: str) -> bytes:
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX):], validate=True)
        except ValueError:
            raise InvalidSecret("a whsec_ secret is whsec_ followed by the base64 of its key") from None
    return secret.encode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one push."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key(secret), signed, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode()}
