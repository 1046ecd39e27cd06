"""Opaque ids: ObjectId hex outside, ObjectId inside."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId


def parse_object_id(value: str | None) -> ObjectId | None:
    """A malformed id is simply an id that matches nothing, so callers answer NOT_FOUND alike."""
    if value is None:
        return None
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
