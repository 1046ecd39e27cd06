"""Helpers both parsers share: cleaning text the way the app stores it, reading times, and
putting a conversation's messages in an order where each comes after its parent.

Control characters: text from another app may hold stray ones (a terminal escape pasted into a
prompt, a lone surrogate from a broken encoder). Rejecting a whole conversation for one of them
would lose far more than it protects, so they are *removed*, everywhere, the same way: message
text and reasoning keep tab, LF and CR (`forbidden_character(..., prose=True)` finds nothing in
the result); titles, model names and file names keep none (line breaks and tabs become spaces)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from gql_chat.domain.characters import NAME_FORBIDDEN, PROSE_FORBIDDEN, forbidden_character
from gql_chat.imports.model import ImportedMessage, ImportLimits

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

DEFAULT_TITLE = "Imported conversation"
MAX_NAME_CHARS = 200
"""Model names and file names in notes: longer ones are cut."""

_NAME_SPACES = re.compile("[\t\n\r\u2028\u2029]+")

SortKey = TypeVar("SortKey", bound="SupportsRichComparison")


class BrokenConversation(Exception):
    """One conversation of the file cannot be imported; its message says why, to the user."""


def clean_prose(text: str) -> str:
    """Message text without the control characters the app refuses (tab and line breaks stay)."""
    if forbidden_character(text, prose=True) is None:
        return text
    return PROSE_FORBIDDEN.sub("", text)


def clean_name(text: str, limit: int = MAX_NAME_CHARS) -> str:
    """One line of text: breaks become spaces, other control characters go, cut to `limit`."""
    if forbidden_character(text) is not None:
        text = NAME_FORBIDDEN.sub("", _NAME_SPACES.sub(" ", text))
    return text.strip()[:limit].rstrip()


def clean_title(value: object, limits: ImportLimits) -> str:
    """The title to store: the file's, cleaned and cut, or a default when it has none."""
    return known_title(value, limits) or DEFAULT_TITLE


def known_title(value: object, limits: ImportLimits) -> str | None:
    """The file's own title, cleaned, for an error report (None when it has none)."""
    if not isinstance(value, str):
        return None
    return clean_name(value, limits.max_title_chars) or None


def clean_model(value: object) -> str | None:
    """A model name, when the file gives a usable one."""
    if not isinstance(value, str):
        return None
    return clean_name(value) or None


def from_unix(value: object) -> datetime | None:
    """Unix seconds as an aware UTC time at millisecond precision (what the store keeps); None
    for anything that is not a finite number in the calendar's range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        return _millis(datetime.fromtimestamp(value, UTC))
    except (OverflowError, OSError, ValueError):
        return None


def from_rfc3339(value: object, what: str) -> datetime | None:
    """An RFC 3339 time (`2026-12-03T12:00:00.000Z`) as aware UTC at millisecond precision;
    None for null. A time without an offset is UTC (as the app's own times are)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BrokenConversation(f"{what} is not a time string.")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _millis(parsed.astimezone(UTC))
    except (OverflowError, ValueError):
        raise BrokenConversation(f"{what} is not a valid time: {_quote(value)}.") from None


def _millis(value: datetime) -> datetime:
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _quote(value: str, limit: int = 40) -> str:
    """A piece of the file, short and on one line, to show in an error message."""
    shown = clean_name(value, limit)
    return repr(shown + "…" if len(value) > limit else shown)


def describe(value: str) -> str:
    """A key or a name from the file as an error message shows it."""
    return _quote(value)


def check_size(text: str, limits: ImportLimits, key: str, part: str = "Message") -> str:
    """`text`, unless it is longer than one message may be (`part` and `key` say whose it is,
    should the error need saying: nothing is formatted for a text that fits)."""
    if len(text) > limits.max_message_chars:
        raise BrokenConversation(
            f"{part} {describe(key)} has {len(text):,} characters; at most "
            f"{limits.max_message_chars:,} per message."
        )
    return text


def check_count(count: int, limits: ImportLimits) -> None:
    """Refuse a conversation as soon as it is known to hold too many messages."""
    if count > limits.max_messages:
        raise BrokenConversation(
            f"The conversation holds more than {limits.max_messages:,} messages; at most "
            f"{limits.max_messages:,} per conversation."
        )


def tree_order(parents: Mapping[str, str | None], sort_key: Callable[[str], SortKey]) -> list[str]:
    """Every key of `parents` (key -> parent key, None for a root), each after its parent:
    depth first, so a branch stays together, and siblings by `sort_key`. Iterative (a chain may
    be thousands deep) and O(n log n). A parent that is not a key, or links that loop, break
    the conversation."""
    children: dict[str | None, list[str]] = {}
    for key, parent in parents.items():
        if parent is not None and parent not in parents:
            raise BrokenConversation(
                f"Message {describe(key)} names a parent {describe(parent)} that is not in "
                "the conversation."
            )
        children.setdefault(parent, []).append(key)
    order: list[str] = []
    stack = _sorted_reversed(children.get(None, ()), sort_key)
    while stack:
        key = stack.pop()
        order.append(key)
        stack += _sorted_reversed(children.get(key, ()), sort_key)
    if len(order) < len(parents):  # what no root reaches hangs from a loop
        raise BrokenConversation("The parent links of its messages loop (a cycle).")
    return order


def _sorted_reversed(keys: Iterable[str], sort_key: Callable[[str], SortKey]) -> list[str]:
    """Siblings in the order a stack pops them: the first by `sort_key` last."""
    return sorted(keys, key=sort_key)[::-1]


def newest_leaf(messages: Iterable[ImportedMessage]) -> str | None:
    """The leaf a conversation was most likely left at when the file does not say: the newest
    by time (a leaf without one counts as oldest), the last in order among equals."""
    listed = list(messages)
    parents = {m.parent_key for m in listed}
    best: tuple[bool, datetime, int] | None = None
    found: str | None = None
    for position, message in enumerate(listed):
        if message.key in parents:
            continue
        rank = (
            message.created_at is not None,
            message.created_at or datetime.min.replace(tzinfo=UTC),
            position,
        )
        if best is None or rank > best:
            best, found = rank, message.key
    return found
