"""The executor class: Strawberry's, without the reference cycle graphql-core 3.3 builds into
every executor, with plain attribute fields of scalar or enum type read in place, object values
completed straight to their sub-fields, and what it works out about a document (its sub-field
sets, their plans) shared by every execution of a cached document and bounded per subscription.

`EventScopedExecutor` subclasses Strawberry's undocumented `StrawberryGraphQLCoreExecutionContext`
(passed to `strawberry.Schema` as `execution_context_class`), replaces graphql-core's
`async_helpers` and overrides `execute_fields` (a copy of graphql-core's loop),
`complete_value`, `collect_subfields` and `build_per_event_executor`. These depend on
graphql-core 3.3's executor internals, Strawberry's subclass of it and Strawberry's marker on its
plain-attribute resolvers, so `require_supported_versions` stops start-up on a version this was
not checked against.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, NamedTuple

import graphql
from graphql import (
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    is_leaf_type,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import (
    CollectedFields,
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_subfields,
)
from graphql.language import (
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql.pyutils import Path, Undefined, gather_with_cancel
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
        "execute_fields",
        "complete_value",
        "collect_subfields",
        "settle_in_background",
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


class SchemaMemos:
    """What executions on one schema work out once and share: its plain leaf fields by (type
    name, field name) (`leaf_reads`) and each cached operation's memo (`shared`).

    Kept on the schema object itself (`memos_of`), never in a module-level table: an operation's
    memo leads back to the schema (its field types' resolvers close over Strawberry's converter,
    which holds the schema), and the schema's document cache holds the operation, so a table
    keyed by operation kept every schema ever built alive with all its cached documents. The
    test suite, which builds an app per test, grew to 4 M objects, and each full collection then
    paused the event loop for 2-3 s. On the schema, all of it is freed with the schema."""

    __slots__ = ("leaf_reads", "operations")

    def __init__(self, schema: GraphQLSchema) -> None:
        self.leaf_reads = _find_leaf_reads(schema)
        self.operations: dict[
            int, tuple[weakref.ref[OperationDefinitionNode], OperationMemo | None]
        ] = {}

    def shared(
        self, operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
    ) -> OperationMemo | None:
        """The memo every execution of `operation` shares, or None if its fields depend on the
        variables (a directive such as `@skip(if: $x)` or `@defer` anywhere in its
        selections). Documents come from the schema's document cache, so a repeated request
        finds its sub-fields and plans already worked out. Kept by identity (AST nodes compare
        and hash by value, deeply) for as long as the operation's node lives."""
        operations = self.operations
        key = id(operation)
        entry = operations.get(key)
        if entry is not None and entry[0]() is operation:
            return entry[1]
        shareable = _without_directives(operation.selection_set, fragments, set())
        memo = OperationMemo() if shareable else None  # None kept: walked once, not per request
        operations[key] = (weakref.ref(operation, lambda _: operations.pop(key, None)), memo)
        return memo


_MEMOS_ATTRIBUTE = "_gql_chat_execution_memos"


def memos_of(schema: GraphQLSchema) -> SchemaMemos:
    """The schema's `SchemaMemos`, made on its first execution."""
    memos: SchemaMemos | None = getattr(schema, _MEMOS_ATTRIBUTE, None)
    if memos is None:
        memos = SchemaMemos(schema)
        setattr(schema, _MEMOS_ATTRIBUTE, memos)
    return memos


def _find_leaf_reads(schema: GraphQLSchema) -> dict[tuple[str, str], LeafRead]:
    """Fields whose resolver is Strawberry's basic one (no resolver function, no permission
    classes, no field extensions, no error handlers: it only reads the attribute), without
    arguments, of a scalar or enum type."""
    reads: dict[tuple[str, str], LeafRead] = {}
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
                or definition.extensions  # Strawberry marks their chain `_is_default` too
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
        plain = middleware is None or not middleware._middleware_resolvers
        memos = memos_of(self.schema)
        self._leaf_reads = memos.leaf_reads if plain else {}
        # A shared memo's plans read leaves in place: not for an execution with middleware.
        shared = memos.shared(self.operation, self.fragments) if plain else None
        self._shared = shared is not None
        self._use(shared or OperationMemo())

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        """graphql-core's `execute_fields`, with each plain leaf field (a plain attribute of
        scalar or enum type, `leaf_reads`) read and serialized here: graphql-core would build a
        path, a resolve info, call Strawberry's resolver chain (three calls to reach `getattr`)
        and recurse through `complete_value`, most of a field's cost and most of a
        `conversations` page's GraphQL overhead. Which fields are plain leaves is worked out
        once per field set (sub-field sets are memoized). Anything unusual (an exception, a
        null for a non-null field, a value the scalar refuses, an awaitable, which is closed
        unawaited) goes to graphql-core's own `execute_field`, which reads the attribute again
        (a property runs twice then) and reports it exactly as before."""
        if path is None:  # the root's field set is collected anew in every execution
            plan = _plan(self._leaf_reads, parent_type, grouped_field_set)
        else:
            known = self._plans.get(id(grouped_field_set))
            if known is not None and known.fields is grouped_field_set:
                plan = known
            else:
                plan = self._plans[id(grouped_field_set)] = _plan(
                    self._leaf_reads, parent_type, grouped_field_set
                )
        results: dict[str, Any] = {}
        is_awaitable = self.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for response_name, field_details_list, leaf in plan.steps:
                if leaf is not None:
                    try:
                        value = leaf.read(source_value, leaf.attribute)
                        if value is None:
                            if leaf.nullable:
                                results[response_name] = None
                                continue
                        elif is_awaitable(value):
                            if isinstance(value, Coroutine):  # read again below: not awaited
                                value.close()
                        elif not isinstance(value, Exception):
                            serialized = leaf.serialize(value)
                            if serialized is not None and serialized is not Undefined:
                                results[response_name] = serialized
                                continue
                    except Exception:  # noqa: S110 - graphql-core's path below reports it
                        pass
                result = self.execute_field(
                    parent_type,
                    source_value,
                    field_details_list,
                    Path(path, response_name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[response_name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(response_name)
        except Exception:
            if awaitable_fields:
                self.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results
        return _gathered(results, awaitable_fields)

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        """For a document without directives (`SchemaMemos.shared`), graphql-core's memo of
        collected sub-fields keyed by the field nodes rather than by the identity of a list that
        is new in every execution, so that it serves every later execution of the document. With
        directives the sub-fields depend on the variables and on `@defer` (each field's defer
        usage): graphql-core's own memo, within one execution."""
        if not self._shared:  # directives: graphql-core's memo, by the lists' identity
            return super().collect_subfields(return_type, field_details_list)
        if len(field_details_list) == 1:
            key: tuple[Any, ...] = (return_type, id(field_details_list[0].node))
        else:
            key = (return_type, *[id(details.node) for details in field_details_list])
        cached = self._sub_fields.get(key)
        if cached is None:
            collected = collect_subfields(
                self.schema,
                self.fragments,
                self.variable_values,
                self.operation,
                return_type,
                field_details_list,
                self.hide_suggestions,
            )
            # The field list keeps the nodes whose ids make the key alive with the entry.
            cached = self._sub_fields[key] = (field_details_list, collected)
        return cached[1]

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """An object value (of a type without `is_type_of`, outside `@defer`) goes straight to
        its sub-fields: graphql-core would get there through five calls, each testing the type
        again, for every object of a page."""
        object_type = return_type.of_type if type(return_type) is GraphQLNonNull else return_type
        if (
            type(object_type) is GraphQLObjectType
            and object_type.is_type_of is None
            and position_context is None
            and result is not None
            and result is not Undefined
            and not isinstance(result, Exception)
        ):
            grouped_field_set, new_defer_usages, _ = self.collect_subfields(
                object_type, field_details_list
            )
            if not new_defer_usages:
                return self.execute_fields(object_type, result, path, grouped_field_set, None)
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        """Each event's executor is a shallow copy of the subscription's. Keyed by the field
        nodes, a shared memo (`SchemaMemos.shared`) serves every event and stays one entry per
        field. A memo of a document with directives (whose fields depend on the variables) is the
        event's own: graphql-core 3.3 shares its memo between all the events, keyed by field
        lists that are new in every event, so it grew by an entry per event for as long as the
        subscription lived (a `userEvents` socket held for a day held every event's field sets,
        and each streamed delta left long-lived objects behind that made full garbage
        collections, tens of ms on the loop, more frequent)."""
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, EventScopedExecutor)
        if not self._shared:
            executor._use(OperationMemo())
            executor._relevant_sub_fields = {}
        return executor

    def _use(self, memo: OperationMemo) -> None:
        self._memo = memo
        self._sub_fields = memo.sub_fields  # read on every object and field set: one lookup
        self._plans = memo.plans


class OperationMemo:
    """What executing one operation works out about its document: each object field's collected
    sub-fields, and each field set's plan (`EventScopedExecutor.execute_fields`)."""

    __slots__ = ("__weakref__", "plans", "sub_fields")

    def __init__(self) -> None:
        self.sub_fields: dict[tuple[Any, ...], tuple[FieldDetailsList, CollectedFields]] = {}
        self.plans: dict[int, FieldPlan] = {}


def _without_directives(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDetails],
    visited: set[str],
) -> bool:
    if selection_set is None:
        return True
    for selection in selection_set.selections:
        if selection.directives:
            return False
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if selection.arguments or fragment is None or fragment.definition.directives:
                return False
            if name not in visited:
                visited.add(name)
                if not _without_directives(fragment.definition.selection_set, fragments, visited):
                    return False
        elif isinstance(selection, FieldNode | InlineFragmentNode) and not _without_directives(
            selection.selection_set, fragments, visited
        ):
            return False
    return True


class FieldPlan(NamedTuple):
    """A field set (kept alive, as its id keys the executor's plans) and, per response name,
    its fields and how to read it if it is a plain leaf."""

    fields: GroupedFieldSet
    steps: tuple[tuple[str, FieldDetailsList, LeafRead | None], ...]


def _plan(
    reads: dict[tuple[str, str], LeafRead],
    parent_type: GraphQLObjectType,
    grouped_field_set: GroupedFieldSet,
) -> FieldPlan:
    steps = []
    for response_name, field_details_list in grouped_field_set.items():
        node = field_details_list[0].node
        leaf = None if node.arguments else reads.get((parent_type.name, node.name.value))
        steps.append((response_name, field_details_list, leaf))
    return FieldPlan(grouped_field_set, tuple(steps))


async def _gathered(results: dict[str, Any], awaitable_fields: list[str]) -> dict[str, Any]:
    """graphql-core's tail of `execute_fields`: the awaitable results awaited together."""
    if len(awaitable_fields) == 1:
        field = awaitable_fields[0]
        results[field] = await results[field]
    else:
        awaited = await gather_with_cancel(*(results[field] for field in awaitable_fields))
        results.update(zip(awaitable_fields, awaited, strict=True))
    return results


def _alive(reference: weakref.ref[EventScopedExecutor]) -> EventScopedExecutor:
    executor = reference()
    if executor is None:  # pragma: no cover - a resolver outliving its execution
        raise RuntimeError("GraphQL execution already finished")
    return executor
