"""A user's logins: one per sign-in (a refresh-token family), with the device it came from, so
that a user can see where they are signed in and end any of those sign-ins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

MAX_USER_AGENT = 300
"""Characters of a `User-Agent` kept (enough to tell browsers and apps apart)."""


@dataclass(frozen=True, slots=True)
class Device:
    """Where a sign-in came from, as the request said."""

    client_ip: str
    user_agent: str | None = None

    @classmethod
    def of(cls, client_ip: str, user_agent: str | None) -> Device:
        """The user agent cut to `MAX_USER_AGENT` printable characters (it is a header the
        client chose, shown back to the user)."""
        cleaned = "".join(c for c in (user_agent or "") if c.isprintable())[:MAX_USER_AGENT]
        return cls(client_ip=client_ip, user_agent=cleaned.strip() or None)


@dataclass(frozen=True, slots=True)
class LoginRecord:
    id: str
    """The sign-in's refresh-token family."""
    user_id: ObjectId
    created_at: datetime
    last_used_at: datetime
    """When it signed in, or last refreshed its tokens."""
    device: Device
