"""Signed download URLs: a browser's `<img src>` sends no Authorization header, so the URL
itself carries the right to read one file, for one user, until it expires.

The signature is an HMAC-SHA256 over the attachment id, the user id and the expiry, keyed
with a key derived from the JWT secret (so every instance that shares the secret accepts the
others' URLs, and a URL dies with a per-process secret)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from bson import ObjectId
from bson.errors import InvalidId

KEY_PURPOSE = b"gql_chat signed file URLs v1"


class BadSignature(Exception):
    """The URL was altered, signed with another key, or has expired."""


@dataclass(frozen=True, slots=True)
class SignedFile:
    attachment_id: ObjectId
    owner_id: ObjectId


class FileUrls:
    def __init__(self, jwt_secret: str, ttl: timedelta) -> None:
        self._key = hmac.new(jwt_secret.encode(), KEY_PURPOSE, hashlib.sha256).digest()
        self._ttl = ttl

    def sign(
        self, base_url: str, attachment_id: ObjectId, owner_id: ObjectId, now: datetime
    ) -> str:
        """An absolute URL under `base_url`. The expiry is rounded up to the next minute, so
        that one page of messages gets the same URLs (and the browser's cache hits)."""
        expires = -(-int((now + self._ttl).timestamp()) // 60) * 60
        query = urlencode(
            {
                "user": str(owner_id),
                "expires": expires,
                "signature": self._signature(str(attachment_id), str(owner_id), expires),
            }
        )
        return f"{base_url.rstrip('/')}/files/{attachment_id}?{query}"

    def verify(
        self, attachment_id: str, user: str, expires: str, signature: str, now: datetime
    ) -> SignedFile:
        """Raises `BadSignature`."""
        try:
            expiry = int(expires)
            file_id, owner_id = ObjectId(attachment_id), ObjectId(user)
        except (ValueError, InvalidId):
            raise BadSignature from None
        expected = self._signature(str(file_id), str(owner_id), expiry)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise BadSignature
        if expiry <= now.timestamp():
            raise BadSignature
        return SignedFile(attachment_id=file_id, owner_id=owner_id)

    def _signature(self, attachment_id: str, owner_id: str, expires: int) -> str:
        message = f"{attachment_id}.{owner_id}.{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
