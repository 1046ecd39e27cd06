"""The executor class: Strawberry's, with each subscription event's sub-field memo its own, and
without the reference cycle graphql-core 3.3 builds into every executor.

`EventScopedExecutor` subclasses Strawberry's undocumented `StrawberryGraphQLCoreExecutionContext`
(passed to `strawberry.Schema` as `execution_context_class`), replaces graphql-core's
`async_helpers` and resets graphql-core's private `_relevant_sub_fields` memo. Both depend on
graphql-core 3.3's executor internals and Strawberry's subclass of it, so
`require_supported_versions` stops start-up on a version this was not checked against.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from typing import Any

import graphql
from graphql.execution import Executor
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from gql_chat.platform.versions import (
    UnsupportedVersion,
    distribution_version,
    require_versions,
)

SUPPORTED_GRAPHQL_CORE = ("3.3.",)
SUPPORTED_STRAWBERRY = ("0.341.",)
"""The versions whose executor internals this module was checked against."""


def require_supported_versions() -> None:
    """Stop start-up when graphql-core or Strawberry is a version this module was not checked
    against."""
    require_versions(
        __name__,
        {"graphql-core": SUPPORTED_GRAPHQL_CORE, "strawberry-graphql": SUPPORTED_STRAWBERRY},
        {
            "graphql-core": graphql.__version__,
            "strawberry-graphql": distribution_version("strawberry-graphql"),
        },
    )
    for name in ("build_per_event_executor", "gather_async_work", "track_async_work"):
        if not callable(getattr(StrawberryGraphQLCoreExecutionContext, name, None)):
            raise UnsupportedVersion(f"graphql-core's Executor has no {name}()")


class EventScopedExecutor(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """graphql-core keeps its resolvers' async helpers as the executor's own bound methods:
        executor -> helpers -> executor. Every request's executor, and with it the context, the
        request and the user, was then freed by the cyclic garbage collector instead of at once
        (55 objects per `me` request, a third of the cyclic garbage under 50 streamed replies,
        and with it more full collections, each a pause of tens of ms on the loop). The helpers
        reach the executor through a weak reference instead; it is alive whenever a resolver
        runs, since resolvers run inside its execution."""
        super().__init__(*args, **kwargs)
        executor = weakref.ref(self)

        def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
            return _alive(executor).gather_async_work(values)

        def track(values: Sequence[Any]) -> None:
            _alive(executor).track_async_work(values)

        self.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        """graphql-core 3.3 shares the memo of collected sub-fields between all the per-event
        executors of a subscription, keyed by the identity of field lists that are new for every
        event, and keeps those lists alive. So it never hits across events and grows by one
        entry per event for as long as the subscription lives: a `userEvents` socket held for a
        day would hold every event's field sets, and each streamed delta left long-lived objects
        behind that made full garbage collections (tens of ms on the loop) more frequent. Within
        one event the memo still works as before."""
        executor = super().build_per_event_executor(payload)
        executor._relevant_sub_fields = {}
        return executor


def _alive(reference: weakref.ref[EventScopedExecutor]) -> EventScopedExecutor:
    executor = reference()
    if executor is None:  # pragma: no cover - a resolver outliving its execution
        raise RuntimeError("GraphQL execution already finished")
    return executor
