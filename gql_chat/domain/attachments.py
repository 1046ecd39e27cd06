"""Attachments: files a user uploads and then sends with messages.

An upload belongs to its user alone. The first message that carries it binds it to that
message's conversation: it lives as long as the conversation does (edits and branches of the
conversation may carry it again; another conversation may not), and is deleted with it. An
upload never sent is deleted after `UNSENT_UPLOAD_LIFETIME`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bson import ObjectId

MAX_ATTACHMENTS_PER_MESSAGE = 10
UNSENT_UPLOAD_LIFETIME = timedelta(days=1)


class AttachmentKind(StrEnum):
    """What the content is (decided by the bytes, never by the client's name or type)."""

    IMAGE = "IMAGE"
    PDF = "PDF"
    TEXT = "TEXT"


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    id: ObjectId
    owner_id: ObjectId
    file_id: ObjectId
    """The GridFS file that holds the bytes."""
    kind: AttachmentKind
    filename: str
    media_type: str
    size: int
    sha256: str
    created_at: datetime
    conversation_id: ObjectId | None = None
    """Set by the first message that carries it; None while it is an unsent upload."""
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
