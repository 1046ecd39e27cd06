"""Page sizes a client may ask for: a rule of the product, checked before any read."""

from __future__ import annotations

from gql_chat.errors import BadUserInput

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def page_size(value: int | None, field: str = "first") -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= value <= MAX_PAGE_SIZE:
        raise BadUserInput(field, f"{field} must be between 0 and {MAX_PAGE_SIZE}.")
    return value


def check_direction(first: int | None, last: int | None) -> None:
    """Forwards (`first`) or backwards (`last`), never both at once: Relay leaves that
    combination's meaning open, so it is refused rather than guessed."""
    if first is not None and last is not None:
        raise BadUserInput("last", "Page forwards (first) or backwards (last), not both.")
