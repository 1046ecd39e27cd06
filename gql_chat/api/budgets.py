"""Spending budgets as the API shows them (`User.budget`; admins set them: `setUserBudget`)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_chat.domain.budgets import BudgetPeriod as BudgetPeriodValue
from gql_chat.services.budgets import BudgetStatus

BudgetPeriod = strawberry.enum(
    BudgetPeriodValue, name="BudgetPeriod", description="Days and months are UTC."
)


@strawberry.type(description="A spending limit, in the provider's currency (OpenRouter: USD).")
class Budget:
    amount: float
    period: BudgetPeriod  # type: ignore[valid-type]
    spent: float = strawberry.field(
        description=(
            "Spent in this period: the provider's reported costs, or estimates from the "
            "models' prices (Usage.costEstimated)."
        )
    )
    resets_at: datetime = strawberry.field(description="When the period ends.")

    @classmethod
    def of(cls, status: BudgetStatus) -> Budget:
        return cls(
            amount=status.amount,
            period=status.period,
            spent=status.spent,
            resets_at=status.resets_at,
        )
