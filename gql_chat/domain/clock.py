"""Time as records hold it: aware UTC at millisecond precision, the precision a BSON date keeps,
so a value read back from the store equals the value written."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, truncated to milliseconds so a value read back equals the value written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """Normalise a datetime read from the driver to an aware UTC value."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
