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
ARCHIVE_PREFIX = "archive:"


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
    """Three kinds of signed URL, each signed over what it reads and whom for (a subject of
    one kind never passes for another: their prefixes differ, and no ObjectId's hex has one):
    an attachment for its owner, an attachment for the readers of a share, and an account
    archive for its owner."""

    def __init__(self, jwt_secret: str, ttl: timedelta) -> None:
        self._key = hmac.new(jwt_secret.encode(), KEY_PURPOSE, hashlib.sha256).digest()
        self._ttl = ttl

    def sign(
        self, base_url: str, attachment_id: ObjectId, owner_id: ObjectId, now: datetime
    ) -> str:
        """An absolute URL under `base_url`. The expiry is rounded up to the next minute, so
        that one page of messages gets the same URLs (and the browser's cache hits)."""
        return self._url(base_url, "files", attachment_id, "user", owner_id, "", now)

    def verify(
        self, attachment_id: str, user: str, expires: str, signature: str, now: datetime
    ) -> SignedFile:
        """Raises `BadSignature`."""
        file_id, owner_id = self._check(attachment_id, user, "", expires, signature, now)
        return SignedFile(attachment_id=file_id, owner_id=owner_id)

    def sign_for_share(
        self, base_url: str, attachment_id: ObjectId, share_id: ObjectId, now: datetime
    ) -> str:
        """As `sign`, for the readers of a share: the URL names the share, not the owner."""
        return self._url(base_url, "files", attachment_id, "share", share_id, SHARE_PREFIX, now)

    def verify_for_share(
        self, attachment_id: str, share: str, expires: str, signature: str, now: datetime
    ) -> SharedFile:
        """Raises `BadSignature`."""
        file_id, share_id = self._check(attachment_id, share, SHARE_PREFIX, expires, signature, now)
        return SharedFile(attachment_id=file_id, share_id=share_id)

    def sign_archive(
        self, base_url: str, job_id: ObjectId, owner_id: ObjectId, now: datetime
    ) -> str:
        """An account archive (`/exports/{job id}`) for its owner."""
        return self._url(base_url, "exports", job_id, "user", owner_id, ARCHIVE_PREFIX, now)

    def verify_archive(
        self, job_id: str, user: str, expires: str, signature: str, now: datetime
    ) -> tuple[ObjectId, ObjectId]:
        """The job's id and its owner's. Raises `BadSignature`."""
        return self._check(job_id, user, ARCHIVE_PREFIX, expires, signature, now)

    def _url(
        self,
        base_url: str,
        path: str,
        resource: ObjectId,
        name: str,
        subject: ObjectId,
        prefix: str,
        now: datetime,
    ) -> str:
        expires = -(-int((now + self._ttl).timestamp()) // 60) * 60
        signature = self._signature(str(resource), f"{prefix}{subject}", expires)
        query = urlencode({name: str(subject), "expires": expires, "signature": signature})
        return f"{base_url.rstrip('/')}/{path}/{resource}?{query}"

    def _check(
        self,
        resource: str,
        subject: str,
        prefix: str,
        expires: str,
        signature: str,
        now: datetime,
    ) -> tuple[ObjectId, ObjectId]:
        try:
            expiry = int(expires)
            resource_id, subject_id = ObjectId(resource), ObjectId(subject)
        except (ValueError, InvalidId):
            raise BadSignature from None
        expected = self._signature(str(resource_id), f"{prefix}{subject_id}", expiry)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise BadSignature
        if expiry <= now.timestamp():
            raise BadSignature
        return resource_id, subject_id

    def _signature(self, resource: str, subject: str, expires: int) -> str:
        message = f"{resource}.{subject}.{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
