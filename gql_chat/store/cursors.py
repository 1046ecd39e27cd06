"""Opaque cursors carrying the sort key of the last row seen (keyset pagination).

Here rather than in domain because a cursor we did not make is the client's error
(`BadUserInput`), and the repositories that sort decode their own keys."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gql_chat.errors import BadUserInput


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
