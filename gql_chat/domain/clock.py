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


def iso_utc(value: datetime) -> str:
    """The one text form of a time we send: RFC 3339 in UTC with milliseconds and `Z`
    (`2026-12-03T12:00:00.000Z`, as JavaScript's `toISOString` writes it). A naive value is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
