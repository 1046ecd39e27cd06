"""The admins' analytics, summed by the database in a fixed number of commands: aggregations
over the `messages` collection, each starting from one `created_at` range (the `created_at`
index) and summing its parts in a `$facet`, plus the collections' stored counts.

Only what both stores run is used: mongomock 4.3 (the embedded store) has no `$median`,
`$percentile`, `$sortArray`, `$reduce` or `$unionWith`, so a median comes from a sorted `$push`
(`_middle_values`). Empty inputs differ too: on MongoDB a `$group` by null or a `$count` of
nothing yields no row, mongomock yields a row of zeros (SecantusDB a count of 0), so every
reader takes a missing row or field as zero. mongomock's own `$group` sorts with a Python BSON
comparator; `gql_chat.platform.mongomock_group` replaces it with one that hashes."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.analytics import (
    ActivityCounts,
    MiddleValues,
    ReplyCounts,
    UsageGrouping,
    UsageGroupRow,
    UsageTotals,
)
from gql_chat.domain.messages import MessageRole, MessageStatus
from gql_chat.store.users import user_from_document

ASSISTANT = MessageRole.ASSISTANT.value
UNKNOWN_ERROR = "UNKNOWN"
"""The code of an errored reply stored without one."""

GROUP_KEYS: dict[UsageGrouping, Any] = {
    UsageGrouping.USER: "$owner_id",
    UsageGrouping.MODEL: "$model",
    UsageGrouping.DAY: {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at"}},
}
ROW_ORDER: dict[UsageGrouping, dict[str, int]] = {
    UsageGrouping.USER: {"cost": -1, "messages": -1, "_id": 1},
    UsageGrouping.MODEL: {"cost": -1, "messages": -1, "_id": 1},
    UsageGrouping.DAY: {"_id": 1},
}
SUMS: dict[str, Any] = {
    "messages": {"$sum": 1},
    "replies": {"$sum": {"$cond": [{"$eq": ["$role", ASSISTANT]}, 1, 0]}},
    "prompt_tokens": {"$sum": "$usage.prompt_tokens"},
    "completion_tokens": {"$sum": "$usage.completion_tokens"},
    "cost": {"$sum": "$usage.cost"},  # a reply of unknown cost (null) adds nothing
}
RESUMS = {name: {"$sum": f"${name}"} for name in SUMS}
"""The same sums over rows already summed."""


class AnalyticsStore:
    def __init__(
        self,
        messages: AsyncCollection[dict[str, Any]],
        users: AsyncCollection[dict[str, Any]],
        conversations: AsyncCollection[dict[str, Any]],
        *,
        aside: bool = False,
    ) -> None:
        """Its indexes are the messages' (`created_at`, in `MessageStore.INDEXES`). `aside`:
        run each aggregation in a worker thread (the embedded store, which evaluates it in
        Python where it is called)."""
        self._aside = aside
        self._messages = messages
        self._users = users
        self._conversations = conversations

    async def usage(
        self, start: datetime, end: datetime, group_by: UsageGrouping, limit: int
    ) -> tuple[list[UsageGroupRow], int, UsageTotals]:
        """Messages written in [start, end), summed per (group, owner) and then per group: the
        first `limit` groups in `ROW_ORDER` (USER rows with their account), how many groups
        there are, and the whole window's totals. One aggregation."""
        rows_stages: list[dict[str, Any]] = [
            {"$group": {"_id": "$_id.key", **RESUMS, "active_users": {"$sum": 1}}},
            {"$sort": ROW_ORDER[group_by]},
            {"$limit": max(limit, 1)},  # MongoDB refuses a $limit of 0
        ]
        if group_by is UsageGrouping.USER:
            rows_stages.append(
                {
                    "$lookup": {
                        "from": self._users.name,
                        "localField": "_id",
                        "foreignField": "_id",
                        "as": "user",
                    }
                }
            )
        pipeline: list[dict[str, Any]] = [
            {"$match": {"created_at": {"$gte": start, "$lt": end}}},
            {"$project": {"owner_id": 1, "role": 1, "model": 1, "created_at": 1, "usage": 1}},
            {"$group": {"_id": {"key": GROUP_KEYS[group_by], "owner": "$owner_id"}, **SUMS}},
            {
                "$facet": {
                    "rows": rows_stages,
                    "groups": [{"$group": {"_id": "$_id.key"}}, {"$count": "n"}],
                    "total": [
                        {"$group": {"_id": "$_id.owner", **RESUMS}},
                        {"$group": {"_id": None, **RESUMS, "active_users": {"$sum": 1}}},
                    ],
                }
            },
        ]
        facet = await self._one(pipeline)
        rows = [
            UsageGroupRow(
                key=str(row["_id"]) if row["_id"] is not None else None,
                totals=_totals(row),
                user=user_from_document(row["user"][0]) if row.get("user") else None,
            )
            for row in facet.get("rows", [])[:limit]
        ]
        return rows, _count(facet.get("groups")), _totals(_first(facet.get("total")))

    async def stats(
        self, now: datetime, days: tuple[int, ...], start: datetime, end: datetime
    ) -> tuple[ActivityCounts, ReplyCounts]:
        """The stored users, conversations and messages; how many users wrote a message in
        each of the last `days` (counted back from `now`); and the replies written in [start,
        end): per status, errored ones per error code, and the middle values of the time to
        first token and of the duration of those whose final write stored them.

        The collections' counts are their stored ones (MongoDB's `estimatedDocumentCount`:
        exact, but after an unclean shutdown until the collection is validated). The activity
        and the replies are one aggregation each, each over one `created_at` range: one
        aggregation over both (an `$or` of the ranges) is served by two index scans on MongoDB
        but by a collection scan on SecantusDB."""
        since = {f"d{d}": now - timedelta(days=d) for d in days}
        active: list[dict[str, Any]] = [
            {"$match": {"created_at": {"$gte": min(since.values())}}},
            {"$project": {"owner_id": 1, "created_at": 1}},
            {"$group": {"_id": "$owner_id", "last": {"$max": "$created_at"}}},
            {
                "$group": {
                    "_id": None,
                    **{
                        name: {"$sum": {"$cond": [{"$gte": ["$last", t]}, 1, 0]}}
                        for name, t in since.items()
                    },
                }
            },
        ]
        replies: list[dict[str, Any]] = [
            {"$match": {"created_at": {"$gte": start, "$lt": end}, "role": ASSISTANT}},
            {"$project": {"status": 1, "error": 1, "timings": 1}},
            {
                "$facet": {
                    "statuses": [{"$group": {"_id": "$status", "n": {"$sum": 1}}}],
                    "errors": [
                        {"$match": {"status": MessageStatus.ERROR.value}},
                        {
                            "$group": {
                                "_id": {"$ifNull": ["$error.code", UNKNOWN_ERROR]},
                                "n": {"$sum": 1},
                            }
                        },
                    ],
                    "first_token": _middle_values("timings.time_to_first_token_ms"),
                    "total": _middle_values("timings.total_ms"),
                }
            },
        ]
        users, conversations, messages, recent, facet = await asyncio.gather(
            self._users.estimated_document_count(),
            self._conversations.estimated_document_count(),
            self._messages.estimated_document_count(),
            self._one(active),
            self._one(replies),
        )
        statuses = {MessageStatus(r["_id"]): int(r["n"]) for r in facet.get("statuses", [])}
        return (
            ActivityCounts(
                users=users,
                conversations=conversations,
                messages=messages,
                active_users={d: int(recent.get(f"d{d}") or 0) for d in days},
            ),
            ReplyCounts(
                by_status={status: statuses.get(status, 0) for status in MessageStatus},
                errors_by_code={str(r["_id"]): int(r["n"]) for r in facet.get("errors", [])},
                first_token_ms=_middle(facet.get("first_token")),
                total_ms=_middle(facet.get("total")),
            ),
        )

    async def _one(self, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
        """The one row an aggregation yields (empty when it yields none)."""
        if self._aside:
            rows = await asyncio.to_thread(_rows_aside, self._messages, pipeline)
        else:
            rows = await _rows(self._messages, pipeline)
        return rows[0] if rows else {}


async def _rows(
    collection: AsyncCollection[dict[str, Any]], pipeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await (await collection.aggregate(pipeline)).to_list(None)
    return rows


ASIDE_ATTEMPTS = 3


def _rows_aside(
    collection: AsyncCollection[dict[str, Any]], pipeline: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """An aggregation of the embedded store, in a worker thread with a loop of its own: its
    seconds of Python over 100,000 messages no longer hold the server's event loop (the thread
    shares the interpreter, which hands the loop its turn every few milliseconds). The loop
    may change a document while the thread reads it (mongomock updates in place, without its
    lock): Python then raises "changed size during iteration", and the aggregation is run
    again."""
    attempt = 1
    while True:
        try:
            return asyncio.run(_rows(collection, pipeline))
        except RuntimeError as error:
            if "during iteration" not in str(error) or attempt >= ASIDE_ATTEMPTS:
                raise
            attempt += 1


def _middle_values(field: str) -> list[dict[str, Any]]:
    """The one or two middle values of `field` where it is a number: an exact median, at the
    cost of sorting those values and holding them in one array in the database (about 16 bytes
    each; MongoDB caps a `$push` at 100 MB, some 6 million values). Only the two values leave
    the database."""
    values = {"$size": "$v"}
    return [
        {"$match": {field: {"$type": "number"}}},
        {"$sort": {field: 1}},
        {"$group": {"_id": None, "v": {"$push": f"${field}"}}},
        {
            "$project": {
                "low": {
                    "$arrayElemAt": [
                        "$v",
                        {"$floor": {"$divide": [{"$subtract": [values, 1]}, 2]}},
                    ]
                },
                "high": {"$arrayElemAt": ["$v", {"$floor": {"$divide": [values, 2]}}]},
            }
        },
    ]


def _first(rows: list[dict[str, Any]] | None) -> dict[str, Any]:
    return rows[0] if rows else {}


def _count(rows: list[dict[str, Any]] | None) -> int:
    return int(_first(rows).get("n") or 0)


def _middle(rows: list[dict[str, Any]] | None) -> MiddleValues:
    row = _first(rows)
    low, high = row.get("low"), row.get("high")
    if low is None or high is None:
        return MiddleValues()
    return MiddleValues(float(low), float(high))


def _totals(row: dict[str, Any]) -> UsageTotals:
    return UsageTotals(
        messages=int(row.get("messages") or 0),
        replies=int(row.get("replies") or 0),
        prompt_tokens=int(row.get("prompt_tokens") or 0),
        completion_tokens=int(row.get("completion_tokens") or 0),
        cost=float(row.get("cost") or 0.0),
        active_users=int(row.get("active_users") or 0),
    )
