"""Opaque ids: ObjectId hex outside, ObjectId inside."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId


def parse_object_id(value: str | ObjectId | None) -> ObjectId | None:
    """A malformed id is simply an id that matches nothing, so callers answer NOT_FOUND alike.
    An ObjectId passes through, so services take either form."""
    if value is None or isinstance(value, ObjectId):
        return value
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        return None
