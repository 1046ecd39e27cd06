"""Folders: a per-user tree through `parent_id`, siblings ordered by `position`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId


@dataclass(frozen=True, slots=True)
class FolderRecord:
    id: ObjectId
    owner_id: ObjectId
    name: str
    parent_id: ObjectId | None
    position: int
    created_at: datetime
    updated_at: datetime
