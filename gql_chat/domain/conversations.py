"""Conversations, and the filter a listing of them takes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    id: ObjectId
    owner_id: ObjectId
    title: str
    title_source: str
    folder_id: ObjectId | None
    llm_config_id: ObjectId | None
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    active_leaf_id: ObjectId | None


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    folder_id: ObjectId | None = None
    pinned: bool | None = None
    archived: bool | None = False
    search: str | None = None
    # Conversations whose messages match `search` (found in the messages collection).
    matching_ids: tuple[ObjectId, ...] = ()
