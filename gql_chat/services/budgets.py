"""Spending budgets: a user's replies may cost at most their budget per day or month.

The check before each reply is two reads (the user, the period's running total); each
request to the model is charged just before its reply's final write (`settle`), with the
provider's cost or, when the provider reports none, an estimate from the models' prices
(marked as such on the reply). A request cut short before the provider reported usage (a
reply stopped or cut off mid-stream) comes with tokens the runner estimated, and is priced the
same way.

A running reply is never cut off by its own cost, so replies admitted together at the limit
can overshoot it: by at most what the replies already in flight cost (a user has at most
`GQL_CHAT_MAX_CONCURRENT_GENERATIONS` at once, counted across instances with Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime

from gql_chat.config import Settings
from gql_chat.domain.budgets import Budget, BudgetPeriod, period_end
from gql_chat.domain.clock import iso_utc, utc_now
from gql_chat.domain.messages import UsageRecord
from gql_chat.domain.users import UserRecord
from gql_chat.errors import QuotaExceeded
from gql_chat.llm.types import ModelInfo
from gql_chat.services.generation import GenerationJob
from gql_chat.store.database import Database

logger = logging.getLogger(__name__)

ModelList = Callable[[], Awaitable[list[ModelInfo]]]
PRICES_TIMEOUT = 5.0
"""Seconds a finishing reply waits for the models' prices (cached) to estimate its cost."""


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    amount: float
    period: BudgetPeriod
    spent: float
    resets_at: datetime


class BudgetService:
    def __init__(self, settings: Settings, database: Database, models: ModelList) -> None:
        self._default = settings.default_budget_limit
        self._db = database
        self._models = models

    def budget_of(self, user: UserRecord) -> Budget | None:
        return user.budget or self._default

    async def status(self, user: UserRecord) -> BudgetStatus | None:
        budget = self.budget_of(user)
        if budget is None:
            return None
        now = utc_now()
        spent = await self._db.spending.spent(user.id, budget.period, now)
        return BudgetStatus(budget.amount, budget.period, spent, period_end(budget.period, now))

    async def check(self, user: UserRecord) -> None:
        """Raises `QuotaExceeded` (with `resetsAt`) when the period's spending has reached the
        user's budget."""
        status = await self.status(user)
        if status is not None and status.spent >= status.amount:
            raise QuotaExceeded(
                f"Your budget of {status.amount:.2f} per {status.period.value.lower()} is used up.",
                resetsAt=iso_utc(status.resets_at),
            )

    async def settle(self, job: GenerationJob, usage: UsageRecord) -> UsageRecord:
        """A reply's request, priced and charged to its owner before the reply's final write
        (so that once it is COMPLETE, `spent` counts it). A cost the provider did not report
        is estimated from the models' prices, and marked as such."""
        if usage.cost is None:
            estimate = await self._estimate(job.request.model, usage)
            if estimate is None:
                logger.warning(
                    "a reply's cost is unknown and its model has no price: not charged",
                    extra={"message_id": str(job.message_id)},
                )
                return usage
            usage = replace(usage, cost=estimate, cost_estimated=True)
        if usage.cost:
            await self._db.spending.charge(job.owner_id, usage.cost, utc_now())
        return usage

    async def _estimate(self, model: str | None, usage: UsageRecord) -> float | None:
        try:
            async with asyncio.timeout(PRICES_TIMEOUT):
                models = await self._models()
        except Exception:  # the provider's list is unavailable: no price to go by
            return None
        info = next((entry for entry in models if entry.id == model), None)
        if info is None or info.prompt_price is None or info.completion_price is None:
            return None
        return usage.prompt_tokens * info.prompt_price + (
            usage.completion_tokens * info.completion_price
        )
