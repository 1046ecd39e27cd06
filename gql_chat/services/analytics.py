"""Analytics for admins: usage per user, model or day over a window (`usage`), and the
deployment's health (`stats`). The database sums (`store/analytics.py`); the rules are here:
admins only, a bounded window, a bounded number of rows, rates and medians."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gql_chat.domain.analytics import (
    AdminStats,
    ErrorRate,
    MiddleValues,
    UsageGrouping,
    UsageReport,
)
from gql_chat.domain.clock import utc_now
from gql_chat.domain.users import UserRecord
from gql_chat.errors import BadUserInput
from gql_chat.services.permissions import require_admin
from gql_chat.store.database import Database

MAX_SPAN = timedelta(days=366)
"""The longest window: what one aggregation may have to read stays bounded (a year of a
deployment's messages), and DAY rows are at most 367."""
DEFAULT_STATS_WINDOW = timedelta(days=7)
ACTIVE_DAYS = (1, 7, 30)
DEFAULT_ROWS = 100
MAX_ROWS = 500
"""USER and MODEL rows are cut to the costliest `first`; `groupCount` says how many exist."""


def check_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC (a time without an offset is UTC) at the millisecond, as the
    database keeps times: `start` before `end`, at most `MAX_SPAN` apart. BAD_USER_INPUT on
    `to` when they are in the wrong order, on `from` when the window is too long."""
    start, end = _utc(start, "from"), _utc(end, "to")
    if end <= start:
        raise BadUserInput("to", "`to` must be after `from`.")
    if end - start > MAX_SPAN:
        raise BadUserInput("from", f"The window is at most {MAX_SPAN.days} days long.")
    return start, end


def row_limit(first: int | None) -> int:
    if first is None:
        return DEFAULT_ROWS
    if not 0 <= first <= MAX_ROWS:
        raise BadUserInput("first", f"first must be between 0 and {MAX_ROWS}.")
    return first


def median(middle: MiddleValues) -> float | None:
    """The mean of the middle values; None for no values."""
    if middle.low is None or middle.high is None:
        return None
    return (middle.low + middle.high) / 2


class AnalyticsService:
    def __init__(self, database: Database, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    async def usage(
        self,
        admin: UserRecord,
        start: datetime,
        end: datetime,
        group_by: UsageGrouping,
        first: int | None = None,
    ) -> UsageReport:
        """Every message stored with a time in [start, end) (users' and replies), with its
        reply's tokens and stored cost, per group. Rows: USER and MODEL by cost, highest first
        (then by messages, then key), DAY by day; at most `first` (default 100, at most 500).
        One aggregation, whatever the grouping.

        What is stored now is counted: deleted messages are not (not even the usage
        `deleteMessage` keeps for the user's own `usageSummary`), and a fork's copies count as
        messages at their originals' times, without usage (paid once, in the original)."""
        require_admin(admin)
        start, end = check_window(start, end)
        limit = row_limit(first)
        rows, group_count, total = await self._db.analytics.usage(start, end, group_by, limit)
        return UsageReport(start, end, group_by, rows, group_count, total)

    async def stats(
        self, admin: UserRecord, start: datetime | None = None, end: datetime | None = None
    ) -> AdminStats:
        """Totals, users active in the last 1, 7 and 30 days (whatever the window), and the
        replies written in [start, end) (default: the 7 days up to now; with one end given,
        the 7 days from or up to it). Medians are over the replies whose final write stored
        the timing (a first token only when one arrived); None when there are none."""
        require_admin(admin)
        now = self._clock()
        if end is None:
            end = now if start is None else _shifted(start, DEFAULT_STATS_WINDOW, "from")
        if start is None:
            start = _shifted(end, -DEFAULT_STATS_WINDOW, "to")
        start, end = check_window(start, end)
        activity, replies = await self._db.analytics.stats(now, ACTIVE_DAYS, start, end)
        count = sum(replies.by_status.values())
        rates = [
            ErrorRate(code, n, n / count)
            for code, n in sorted(replies.errors_by_code.items(), key=lambda e: (-e[1], e[0]))
        ]
        return AdminStats(
            start=start,
            end=end,
            activity=activity,
            replies=count,
            by_status=list(replies.by_status.items()),
            error_rates=rates,
            median_first_token_ms=median(replies.first_token_ms),
            median_total_ms=median(replies.total_ms),
        )


def _utc(value: datetime, field: str) -> datetime:
    """An aware UTC time (one without an offset is UTC) cut to the millisecond; outside years
    1-9999 in UTC is bad input."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise BadUserInput(field, f"`{field}` is out of range.") from exc
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _shifted(value: datetime, by: timedelta, field: str) -> datetime:
    """`value` moved by `by` (the other end of a default window)."""
    try:
        return _utc(value, field) + by
    except OverflowError as exc:
        raise BadUserInput(field, f"`{field}` is out of range.") from exc
