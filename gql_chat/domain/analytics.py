"""What the admins' analytics report: usage per user, model or day over a window, and the
deployment's health (users, activity, reply outcomes, latency). Plain data; the database sums
it (`store/analytics.py`), the service checks the window and works out rates and medians."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gql_chat.domain.messages import MessageStatus
from gql_chat.domain.users import UserRecord


class UsageGrouping(StrEnum):
    USER = "USER"
    MODEL = "MODEL"
    DAY = "DAY"


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Messages of every role written in a window, and what their replies used."""

    messages: int = 0
    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    """The stored per-reply costs (reported by the provider, or estimated from its prices)."""
    active_users: int = 0
    """Distinct owners of those messages."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UsageGroupRow:
    key: str | None
    """The user's id, the model id (None: messages that name no model, as users' own do) or
    the UTC day (`YYYY-MM-DD`)."""
    totals: UsageTotals
    user: UserRecord | None = None
    """USER grouping: the account (None once it is deleted)."""


@dataclass(frozen=True, slots=True)
class UsageReport:
    start: datetime
    end: datetime
    group_by: UsageGrouping
    rows: list[UsageGroupRow]
    """The first rows in the report's order; `group_count` says how many there are in all."""
    group_count: int
    total: UsageTotals


@dataclass(frozen=True, slots=True)
class MiddleValues:
    """The one or two middle values of a sorted list (equal for an odd count); None for an
    empty one. The median is their mean."""

    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class ActivityCounts:
    """Stored totals and who wrote lately, as the database counts them."""

    users: int
    conversations: int
    messages: int
    active_users: dict[int, int]
    """Days back from now: how many distinct users wrote a message since then."""


@dataclass(frozen=True, slots=True)
class ReplyCounts:
    """The replies written in a window, as the database counts them."""

    by_status: dict[MessageStatus, int]
    errors_by_code: dict[str, int]
    first_token_ms: MiddleValues
    total_ms: MiddleValues


@dataclass(frozen=True, slots=True)
class ErrorRate:
    code: str
    count: int
    rate: float
    """`count` over every reply written in the window."""


@dataclass(frozen=True, slots=True)
class AdminStats:
    start: datetime
    end: datetime
    activity: ActivityCounts
    replies: int
    by_status: list[tuple[MessageStatus, int]]
    """Every status, in the enum's order (zeros included)."""
    error_rates: list[ErrorRate]
    """Most frequent first."""
    median_first_token_ms: float | None
    median_total_ms: float | None
