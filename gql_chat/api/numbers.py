"""Numbers as GraphQL can carry them: `Int` is 32 bits, so token totals saturate at its largest
value instead of failing the whole list they are in (a heavy user's sums pass 2,147,483,647 in
time); `Float` has no NaN or infinity, so such a cost is unknown (null)."""

from __future__ import annotations

import math

GRAPHQL_INT_MAX = 2**31 - 1


def saturated(count: int) -> int:
    return max(0, min(count, GRAPHQL_INT_MAX))


def finite_or_none(amount: float | None) -> float | None:
    return amount if amount is not None and math.isfinite(amount) else None
