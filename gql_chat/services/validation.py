"""Input rules shared by services: each failure names the input field it concerns.

Characters: a *name* (a folder name, a title, a preset's name or model, a display name, an email)
is one line of text and may contain no control character at all (Unicode category Cc, which
includes tab, newline and NUL), no line or paragraph separator (U+2028, U+2029) and no lone
surrogate (Cs, which no UTF-8 encoder can write). *Prose* (a system prompt, message content)
may also contain tab, line feed and carriage return, and no other of those. Format characters (Cf)
are allowed everywhere: emoji sequences need the zero-width joiner, and some scripts need ZWNJ and
the bidirectional marks."""

from __future__ import annotations

import re
from collections.abc import Callable

from gql_chat.domain.characters import forbidden_character
from gql_chat.errors import BadUserInput, InvalidFields

# Deliberately simple: one @, no spaces, a dot in the domain. Deliverability is not our business.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
PASSWORD_LENGTH = (8, 1024)
DISPLAY_NAME_LENGTH = (1, 100)
MAX_SEARCH_LENGTH = 200


def _check_characters(value: str, field: str, label: str, *, prose: bool) -> None:
    character = forbidden_character(value, prose=prose)
    if character is not None:
        allowed = " other than tab and line breaks" if prose else ""
        raise BadUserInput(
            field,
            f"{label} must not contain control characters{allowed} (found U+{ord(character):04X}).",
        )


def check_prose(value: str, field: str, label: str) -> str:
    """Multi-line user text: tab, LF and CR are allowed, other control characters are not."""
    _check_characters(value, field, label, prose=True)
    return value


def normalize_email(value: str, field: str = "email") -> str:
    email = value.strip().lower()
    if (
        len(email) > MAX_EMAIL_LENGTH
        or not EMAIL_PATTERN.match(email)
        or forbidden_character(email) is not None
    ):
        raise BadUserInput(field, "Enter a valid email address.")
    return email


def check_password(value: str, field: str = "password") -> str:
    low, high = PASSWORD_LENGTH
    if not low <= len(value) <= high:
        raise BadUserInput(field, f"Password must be {low} to {high} characters.")
    return value


def check_text(value: str, field: str, low: int, high: int, label: str) -> str:
    """A name: no control characters anywhere (ends included), then trimmed to `low`..`high`."""
    _check_characters(value, field, label, prose=False)
    text = value.strip()
    if not low <= len(text) <= high:
        raise BadUserInput(field, f"{label} must be {low} to {high} characters.")
    return text


def check_display_name(value: str, field: str = "displayName") -> str:
    return check_text(value, field, *DISPLAY_NAME_LENGTH, label="Display name")


def check_search(value: str | None, field: str = "search") -> str | None:
    """A free-text filter, trimmed (None when blank). Bounded, because each one is matched
    against the user's data: 900 KB of search text held the event loop for most of a second."""
    if value is None:
        return None
    if len(value) > MAX_SEARCH_LENGTH:
        raise BadUserInput(field, f"{field} must be at most {MAX_SEARCH_LENGTH} characters.")
    return value.strip() or None


def check_all(*checks: Callable[[], object]) -> None:
    """Run every check; raise all their `BadUserInput`s together (one alone as itself)."""
    problems: list[BadUserInput] = []
    for check in checks:
        try:
            check()
        except BadUserInput as problem:
            problems.append(problem)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise InvalidFields(problems)
