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
SHARE_PREFIX = "share:"


class BadSignature(Exception):
    """The URL was altered, signed with another key, or has expired."""


@dataclass(frozen=True, slots=True)
class SignedFile:
    attachment_id: ObjectId
    owner_id: ObjectId


@dataclass(frozen=True, slots=True)
class SharedFile:
    attachment_id: ObjectId
    share_id: ObjectId


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

    def sign_for_share(
        self, base_url: str, attachment_id: ObjectId, share_id: ObjectId, now: datetime
    ) -> str:
        """As `sign`, for the readers of a share: the URL names the share, not the owner."""
        expires = -(-int((now + self._ttl).timestamp()) // 60) * 60
        signature = self._signature(str(attachment_id), f"{SHARE_PREFIX}{share_id}", expires)
        query = urlencode({"share": str(share_id), "expires": expires, "signature": signature})
        return f"{base_url.rstrip('/')}/files/{attachment_id}?{query}"

    def verify_for_share(
        self, attachment_id: str, share: str, expires: str, signature: str, now: datetime
    ) -> SharedFile:
        """Raises `BadSignature`."""
        try:
            expiry = int(expires)
            file_id, share_id = ObjectId(attachment_id), ObjectId(share)
        except (ValueError, InvalidId):
            raise BadSignature from None
        expected = self._signature(str(file_id), f"{SHARE_PREFIX}{share_id}", expiry)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise BadSignature
        if expiry <= now.timestamp():
            raise BadSignature
        return SharedFile(attachment_id=file_id, share_id=share_id)

    def _signature(self, attachment_id: str, subject: str, expires: int) -> str:
        """`subject`: an owner's id, or a share's after `SHARE_PREFIX` (no ObjectId's hex
        starts so: one kind of URL can never pass for the other)."""
        message = f"{attachment_id}.{subject}.{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
