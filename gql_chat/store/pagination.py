"""Keyset pagination: opaque cursors carrying the sort key of the last row seen."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson

from gql_chat.errors import BadUserInput

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[tuple[str, T]]  # (cursor, item)
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str, field: str) -> dict[str, Any]:
    """A cursor we did not make is bad input, never an internal error."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeError) as exc:
        raise BadUserInput(field, "Invalid cursor.") from exc
    if not isinstance(value, dict):
        raise BadUserInput(field, "Invalid cursor.")
    return value


def page_size(value: int | None, field: str = "first") -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= value <= MAX_PAGE_SIZE:
        raise BadUserInput(field, f"{field} must be between 0 and {MAX_PAGE_SIZE}.")
    return value
