"""Share links: a read-only snapshot of a conversation's path, readable by anyone with the link.

The link's token is shown once, when the share is made; only its SHA-256 is kept, so a leaked
database does not leak working links. A snapshot copies the messages it shows: later messages,
edits and deletes in the conversation do not change it, and sharing again replaces it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

TOKEN_BYTES = 32


def new_share_token() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True, slots=True)
class ShareRecord:
    id: ObjectId
    owner_id: ObjectId
    conversation_id: ObjectId
    up_to_message_id: ObjectId
    title: str
    message_count: int
    attachment_ids: frozenset[ObjectId]
    """The files its messages show (the only ones its signed URLs may read)."""
    created_at: datetime
