"""An issued refresh token as stored: its hash only, and when it was used or revoked, so a
second use of a retired token can be told from a first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId


@dataclass(frozen=True, slots=True)
class RefreshTokenRecord:
    jti: str
    user_id: ObjectId
    family_id: str
    token_hash: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None
