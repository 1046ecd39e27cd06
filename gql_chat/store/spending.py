"""Running totals of what each user's replies cost, per day and per month, so that the budget
check before a reply is one read (not an aggregation over history): one document per user and
period (`<user>:DAY:2026-12-03`), kept (TTL) until well after its period."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, IndexModel, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from gql_chat.domain.budgets import BudgetPeriod, period_end, period_key
from gql_chat.store.indexes import ensure_indexes

KEPT_AFTER_PERIOD = timedelta(days=40)


class SpendingStore:
    INDEXES = [
        IndexModel([("user_id", ASCENDING)], name="user"),
        IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0, name="expiry_ttl"),
    ]

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._totals = collection

    async def create_indexes(self) -> None:
        await ensure_indexes(self._totals, self.INDEXES)

    async def charge(self, user_id: ObjectId, cost: float, now: datetime) -> None:
        """Adds `cost` to the user's day and month."""
        await self._totals.bulk_write(
            [
                UpdateOne(
                    {"_id": f"{user_id}:{period_key(period, now)}"},
                    {
                        "$inc": {"spent": cost},
                        "$set": {
                            "user_id": user_id,
                            "expires_at": period_end(period, now) + KEPT_AFTER_PERIOD,
                        },
                    },
                    upsert=True,
                )
                for period in BudgetPeriod
            ],
            ordered=False,
        )

    async def spent(self, user_id: ObjectId, period: BudgetPeriod, now: datetime) -> float:
        doc = await self._totals.find_one({"_id": f"{user_id}:{period_key(period, now)}"})
        return max(0.0, float(doc["spent"])) if doc else 0.0

    async def delete_for_owner(self, user_id: ObjectId) -> None:
        await self._totals.delete_many({"user_id": user_id})
