"""The executor class: Strawberry's, with each subscription event's sub-field memo its own,
without the reference cycle graphql-core 3.3 builds into every executor, and with plain
attribute fields of scalar or enum type read directly.

`EventScopedExecutor` subclasses Strawberry's undocumented `StrawberryGraphQLCoreExecutionContext`
(passed to `strawberry.Schema` as `execution_context_class`), replaces graphql-core's
`async_helpers`, resets graphql-core's private `_relevant_sub_fields` memo and overrides
`execute_field`. These depend on graphql-core 3.3's executor internals, Strawberry's subclass of
it and Strawberry's marker on its plain-attribute resolvers, so `require_supported_versions`
stops start-up on a version this was not checked against.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import graphql
from graphql import GraphQLNonNull, GraphQLObjectType, GraphQLSchema, is_leaf_type
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter

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
    for name in (
        "build_per_event_executor",
        "gather_async_work",
        "track_async_work",
        "execute_field",
    ):
        if not callable(getattr(StrawberryGraphQLCoreExecutionContext, name, None)):
            raise UnsupportedVersion(f"graphql-core's Executor has no {name}()")


class LeafRead(NamedTuple):
    """How to answer one plain attribute field of scalar or enum type without graphql-core's
    per-field machinery."""

    read: Callable[[Any, str], Any]  # Strawberry's default resolver (`getattr`)
    attribute: str
    serialize: Callable[[Any], Any]
    nullable: bool


_leaf_reads: weakref.WeakKeyDictionary[GraphQLSchema, dict[tuple[str, str], LeafRead]] = (
    weakref.WeakKeyDictionary()
)


def leaf_reads(schema: GraphQLSchema) -> dict[tuple[str, str], LeafRead]:
    """The schema's plain leaf fields by (type name, field name), found once per schema: fields
    whose resolver is Strawberry's basic one (no resolver function, no permission classes, no
    field extensions, no error handlers: it only reads the attribute), without arguments, of a
    scalar or enum type."""
    reads = _leaf_reads.get(schema)
    if reads is None:
        reads = {}
        for type_ in schema.type_map.values():
            if not isinstance(type_, GraphQLObjectType):
                continue
            for name, field in type_.fields.items():
                definition = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
                if (
                    definition is None
                    or field.args
                    or not getattr(field.resolve, "_is_default", False)
                    or definition.base_resolver is not None
                ):
                    continue
                nullable = not isinstance(field.type, GraphQLNonNull)
                leaf = field.type if nullable else field.type.of_type
                if is_leaf_type(leaf):
                    reads[type_.name, name] = LeafRead(
                        definition.default_resolver,
                        definition.python_name,
                        leaf.coerce_output_value,
                        nullable,
                    )
        _leaf_reads[schema] = reads
    return reads


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
        middleware = self.middleware_manager
        self._leaf_reads = (
            leaf_reads(self.schema)
            if middleware is None or not middleware._middleware_resolvers
            else {}
        )

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """A plain attribute of scalar or enum type is read and serialized here: graphql-core
        would build a resolve info, call Strawberry's resolver chain (three calls to reach
        `getattr`) and recurse through `complete_value`, most of a field's cost and most of a
        `conversations` page's GraphQL overhead (5.7 -> 4.8 ms a page in-process). Anything
        unusual (an exception, a null for a non-null field, a value the scalar refuses, an
        awaitable) goes to graphql-core's own path, which reads the attribute again and
        reports it exactly as before."""
        node = field_details_list[0].node
        leaf = self._leaf_reads.get((parent_type.name, node.name.value))
        if leaf is not None and not node.arguments:
            try:
                value = leaf.read(source, leaf.attribute)
                if value is None:
                    if leaf.nullable:
                        return None
                elif not isinstance(value, Exception) and not self.is_awaitable(value):
                    serialized = leaf.serialize(value)
                    if serialized is not None and serialized is not Undefined:
                        return serialized
            except Exception:  # noqa: S110 - graphql-core's path below reports it
                pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

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
