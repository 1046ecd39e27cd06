"""Analytics for admins: `adminUsage` and `adminStats` (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from gql_chat.api.accounts import UserType
from gql_chat.api.context import Info
from gql_chat.api.messages import MessageStatus
from gql_chat.api.numbers import finite_or_none, saturated
from gql_chat.api.permissions import IsAdmin
from gql_chat.domain.analytics import AdminStats as AdminStatsValue
from gql_chat.domain.analytics import UsageGrouping as UsageGroupingValue
from gql_chat.domain.analytics import UsageReport, UsageTotals

UsageGrouping = strawberry.enum(
    UsageGroupingValue, name="UsageGrouping", description="Days are UTC dates."
)


@strawberry.type(
    description=(
        "Messages written in a window (users' and replies) and what their replies used. "
        "Counts saturate at 2147483647 (GraphQL's Int is 32 bits)."
    )
)
class AdminUsageRow:
    key: str | None = strawberry.field(
        description=(
            "USER: the user's id; MODEL: the model id (null: messages that name no model, as "
            "users' own messages do); DAY: the UTC date, YYYY-MM-DD. Null on the total."
        )
    )
    user: UserType | None = strawberry.field(
        description="USER grouping: the account (null once deleted, and for other groupings)."
    )
    messages: int
    replies: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float = strawberry.field(
        description="The replies' stored costs (reported by the provider, or estimated)."
    )
    active_users: int = strawberry.field(description="Distinct owners of the messages.")

    @classmethod
    def of(
        cls, key: str | None, totals: UsageTotals, user: UserType | None = None
    ) -> AdminUsageRow:
        return cls(
            key=key,
            user=user,
            messages=saturated(totals.messages),
            replies=saturated(totals.replies),
            prompt_tokens=saturated(totals.prompt_tokens),
            completion_tokens=saturated(totals.completion_tokens),
            total_tokens=saturated(totals.total_tokens),
            cost=finite_or_none(totals.cost) or 0.0,
            active_users=saturated(totals.active_users),
        )


@strawberry.type
class AdminUsage:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    group_by: UsageGrouping  # type: ignore[valid-type]
    rows: list[AdminUsageRow] = strawberry.field(
        description="USER and MODEL: costliest first; DAY: oldest first. At most `first`."
    )
    group_count: int = strawberry.field(
        description="How many groups the window has (rows holds the first `first`)."
    )
    total: AdminUsageRow = strawberry.field(description="The whole window (key null).")

    @classmethod
    def of(cls, report: UsageReport) -> AdminUsage:
        return cls(
            from_=report.start,
            to=report.end,
            group_by=report.group_by,
            rows=[
                AdminUsageRow.of(
                    row.key, row.totals, UserType.from_record(row.user) if row.user else None
                )
                for row in report.rows
            ],
            group_count=saturated(report.group_count),
            total=AdminUsageRow.of(None, report.total),
        )


@strawberry.type(
    description=(
        "Accounts stored, and those owning a message (theirs or a reply to them) written in "
        "the last 1, 7 and 30 days."
    )
)
class AdminUserCounts:
    total: int
    active_last_day: int
    active_last_7_days: int
    active_last_30_days: int


@strawberry.type
class ReplyStatusCount:
    status: MessageStatus  # type: ignore[valid-type]
    count: int


@strawberry.type
class ErrorRate:
    code: str = strawberry.field(description="The reply's error code (UNKNOWN: none stored).")
    count: int
    rate: float = strawberry.field(description="`count` over every reply in the window.")


@strawberry.type
class AdminStats:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    users: AdminUserCounts
    conversations: int = strawberry.field(description="Stored now, whatever the window.")
    messages: int = strawberry.field(description="Stored now, whatever the window.")
    replies: int = strawberry.field(description="Replies written in the window.")
    replies_by_status: list[ReplyStatusCount] = strawberry.field(
        description="The window's replies, one entry per status (zeros included)."
    )
    error_rates: list[ErrorRate] = strawberry.field(
        description="The window's errored replies per error code, most frequent first."
    )
    median_time_to_first_token_ms: float | None = strawberry.field(
        description="Over the window's finished replies that got a first token; null: none."
    )
    median_duration_ms: float | None = strawberry.field(
        description="Over the window's finished replies; null: none."
    )

    @classmethod
    def of(cls, stats: AdminStatsValue) -> AdminStats:
        active = stats.activity.active_users
        return cls(
            from_=stats.start,
            to=stats.end,
            users=AdminUserCounts(
                total=saturated(stats.activity.users),
                active_last_day=saturated(active[1]),
                active_last_7_days=saturated(active[7]),
                active_last_30_days=saturated(active[30]),
            ),
            conversations=saturated(stats.activity.conversations),
            messages=saturated(stats.activity.messages),
            replies=saturated(stats.replies),
            replies_by_status=[
                ReplyStatusCount(status=status, count=saturated(count))
                for status, count in stats.by_status
            ],
            error_rates=[
                ErrorRate(code=e.code, count=saturated(e.count), rate=e.rate)
                for e in stats.error_rates
            ],
            median_time_to_first_token_ms=stats.median_first_token_ms,
            median_duration_ms=stats.median_total_ms,
        )


@strawberry.type
class AnalyticsQuery:
    @strawberry.field(
        description=(
            "Admins only (FORBIDDEN otherwise). Messages written in [from, to) (at most 366 "
            "days; BAD_USER_INPUT otherwise) per user, model or UTC day, summed in the "
            "database. `first`: at most 500 rows (default 100)."
        ),
        permission_classes=[IsAdmin],
    )
    async def admin_usage(
        self,
        info: Info,
        from_: Annotated[datetime, strawberry.argument(name="from")],
        to: datetime,
        group_by: UsageGrouping,  # type: ignore[valid-type]
        first: int | None = None,
    ) -> AdminUsage:
        report = await info.context.services.analytics.usage(
            await info.context.require_user(), from_, to, group_by, first
        )
        return AdminUsage.of(report)

    @strawberry.field(
        description=(
            "Admins only (FORBIDDEN otherwise). Totals, active users, and the replies written "
            "in [from, to) (default: the last 7 days; at most 366): by status, error rates, "
            "median latencies."
        ),
        permission_classes=[IsAdmin],
    )
    async def admin_stats(
        self,
        info: Info,
        from_: Annotated[datetime | None, strawberry.argument(name="from")] = None,
        to: datetime | None = None,
    ) -> AdminStats:
        stats = await info.context.services.analytics.stats(
            await info.context.require_user(), from_, to
        )
        return AdminStats.of(stats)
