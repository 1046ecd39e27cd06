"""The executor class: Strawberry's, with each subscription event's sub-field memo its own."""

from __future__ import annotations

from typing import Any

from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class EventScopedExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core 3.3 shares the memo of collected sub-fields between all the per-event
    executors of a subscription, keyed by the identity of field lists that are new for every
    event, and keeps those lists alive. So it never hits across events and grows by one entry
    per event for as long as the subscription lives: a `userEvents` socket held for a day would
    hold every event's field sets, and each streamed delta left long-lived objects behind that
    made full garbage collections (tens of ms on the loop) more frequent. Within one event the
    memo still works as before."""

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor
