"""Spending budgets: how much a user may spend on replies per day or per month (UTC), in the
provider's currency (OpenRouter: USD)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BudgetPeriod(StrEnum):
    DAY = "DAY"
    MONTH = "MONTH"


MAX_AMOUNT = 1_000_000.0
_BUDGET_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(day|month)\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Budget:
    amount: float
    period: BudgetPeriod


def parse_budget(text: str) -> Budget:
    """`5.00/month`, `0.5/day`. Raises ValueError saying what is expected."""
    found = _BUDGET_TEXT.fullmatch(text)
    if found is None:
        raise ValueError("must look like '5.00/month' or '0.50/day'")
    return Budget(check_amount(float(found.group(1))), BudgetPeriod(found.group(2).upper()))


def check_amount(amount: float) -> float:
    if not math.isfinite(amount) or not 0 <= amount <= MAX_AMOUNT:
        raise ValueError(f"must be a number from 0 to {MAX_AMOUNT:,.0f}")
    return amount


def period_start(period: BudgetPeriod, now: datetime) -> datetime:
    """The start of the period `now` (UTC) is in: midnight, or the first of the month."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period is BudgetPeriod.DAY else day.replace(day=1)


def period_end(period: BudgetPeriod, now: datetime) -> datetime:
    """When the period `now` is in ends, and spending counts from zero again."""
    start = period_start(period, now)
    if period is BudgetPeriod.DAY:
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


def period_key(period: BudgetPeriod, now: datetime) -> str:
    """The period's name in the running totals: `DAY:2026-12-03`, `MONTH:2026-12`."""
    start = period_start(period, now)
    return (
        f"{period.value}:{start:%Y-%m-%d}"
        if period is BudgetPeriod.DAY
        else (f"{period.value}:{start:%Y-%m}")
    )
