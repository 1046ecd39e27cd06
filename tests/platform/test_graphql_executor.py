"""The executor: a request's execution is freed when it ends, not left to the cyclic garbage
collector, its resolvers' async helpers still reach it, and plain leaf fields read directly
answer exactly as graphql-core's own path does."""

from __future__ import annotations

import asyncio
import enum
import gc
import inspect
import json
import warnings
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import graphql
import pytest
import strawberry
from graphql import parse
from graphql.execution import (
    Executor,
    ExperimentalIncrementalExecutionResults,
    experimental_execute_incrementally,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.permission import BasePermission
from strawberry.schema.config import StrawberryConfig

from gql_chat.api.context import Context
from gql_chat.api.schema import build_schema
from gql_chat.platform import graphql_executor
from gql_chat.platform.graphql_executor import EventScopedExecutor
from gql_chat.platform.versions import UnsupportedVersion
from tests.support import SignedIn

PAGE = "{ me { id } conversations(first: 5) { edges { node { id folder { id } } } } }"


async def test_a_request_leaves_no_cyclic_garbage_behind(alice: SignedIn) -> None:
    await alice.ok(PAGE)  # caches warm
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            await alice.ok(PAGE)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, Executor | Context)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []


async def test_the_async_helpers_reach_their_executor() -> None:
    schema = build_schema()._schema
    executor = EventScopedExecutor.build(schema, parse("{ __typename }"))
    assert isinstance(executor, EventScopedExecutor)

    async def value(result: int) -> int:
        await asyncio.sleep(0)
        return result

    assert await executor.async_helpers.gather([value(1), value(2)]) == [1, 2]
    pending = asyncio.ensure_future(value(3))
    executor.async_helpers.track([pending, "not awaitable"])
    assert executor.background_futures  # settled in the background, errors observed
    assert await pending == 3


def test_an_unchecked_graphql_core_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphql, "__version__", "3.4.0")
    with pytest.raises(UnsupportedVersion) as raised:
        graphql_executor.require_supported_versions()
    message = str(raised.value)
    assert "gql_chat.platform.graphql_executor" in message
    assert "graphql-core 3.3.*" in message
    assert "found graphql-core 3.4.0" in message


def test_an_unchecked_strawberry_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphql_executor, "distribution_version", lambda name: "0.400.0")
    with pytest.raises(UnsupportedVersion, match=r"found .*strawberry-graphql 0\.400\.0"):
        graphql_executor.require_supported_versions()


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


@strawberry.type
class Row:
    text: str
    maybe_text: str | None
    number: int
    maybe_number: int | None
    ratio: float
    flag: bool
    mood: Mood
    maybe_mood: Mood | None
    identifier: strawberry.ID

    child: Row | None
    kids: list[Row]

    @strawberry.field
    def computed(self) -> str:  # a resolver: never read directly
        return f"computed {self.text}"

    @strawberry.field
    async def later_child(self) -> Row | None:
        return self.child


@strawberry.type
class RowQuery:
    @strawberry.field
    def rows(self) -> list[Row]:
        return ROWS


ROWS: list[Any] = []
ROW_FIELDS = "text maybeText number maybeNumber ratio flag mood maybeMood identifier computed"

# What an attribute may hold: right and wrong types, nulls, out-of-range numbers, exceptions.
ANY_VALUE = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from([Mood.CALM, Mood.LOUD, "CALM", "calm", ValueError("boom")]),
)


LEAVES = ["text", "maybe_text", "number", "maybe_number", "ratio", "flag", "mood"]
LEAVES += ["maybe_mood", "identifier"]


def _row(values: dict[str, Any], child: Any = None, kids: Any = ()) -> Any:
    row = Row.__new__(Row)
    row.__dict__.update(values, child=child, kids=list(kids))
    return row


ROW_VALUES = st.fixed_dictionaries({name: ANY_VALUE for name in LEAVES})
# A row's `child` may be a row, null, or what no row is; its `kids`, rows.
ROW_TREES = st.recursive(
    st.builds(_row, ROW_VALUES),
    lambda rows: st.builds(
        _row,
        ROW_VALUES,
        st.one_of(rows, st.none(), st.just("not a row"), st.just(ValueError("no child"))),
        st.lists(rows, max_size=2),
    ),
    max_leaves=6,
)
SELECTABLE = [*ROW_FIELDS.split(), "__typename"]


@st.composite
def row_selections(draw: st.DrawFn, depth: int = 0) -> str:
    """A selection set over `Row`: fields aliased, asked twice, under fragments or directives,
    and its object fields nested further."""
    parts = []
    for index, name in enumerate(draw(st.lists(st.sampled_from(SELECTABLE), max_size=5))):
        parts.append(f"a{depth}x{index}: {name}" if draw(st.booleans()) else name)
    if depth < 3:
        for name in draw(st.lists(st.sampled_from(["child", "kids", "laterChild"]), max_size=2)):
            parts.append(f"{name} {{ {draw(row_selections(depth + 1))} }}")
    shape = ["{}", "... on Row {{ {} }}", "...F {}", "number @skip(if: true) {}"]
    return draw(st.sampled_from(shape)).format(" ".join(parts) or "text")


@given(st.lists(ROW_VALUES, min_size=1, max_size=3))
@settings(max_examples=150, deadline=None)
def test_plain_leaf_fields_answer_as_graphql_core_would(rows: list[dict[str, Any]]) -> None:
    """The direct read of plain scalar and enum attributes against graphql-core's own path:
    the same data and the same errors (message and path) for any value an attribute holds."""
    ROWS[:] = [_row(values) for values in rows]
    query = f"{{ rows {{ {ROW_FIELDS} }} }}"
    fast = strawberry.Schema(query=RowQuery, execution_context_class=EventScopedExecutor)
    plain = strawberry.Schema(query=RowQuery)
    expected = plain.execute_sync(query)
    actual = fast.execute_sync(query)
    assert actual.data == expected.data
    assert [(e.message, e.path) for e in actual.errors or []] == [
        (e.message, e.path) for e in expected.errors or []
    ]


@given(rows=st.lists(ROW_TREES, min_size=1, max_size=3), selection=row_selections())
@settings(max_examples=150, deadline=None)
def test_nested_selections_answer_as_graphql_core_would(rows: list[Any], selection: str) -> None:
    """Generated documents over nested and listed objects, with aliases, repeated fields,
    fragments and directives: the executor's own field loop and object completion give
    graphql-core's answer, key order included."""
    ROWS[:] = rows
    query = f"{{ rows {{ {selection} }} }} fragment F on Row {{ text child {{ number }} }}"
    fast = strawberry.Schema(query=RowQuery, execution_context_class=EventScopedExecutor)
    plain = strawberry.Schema(query=RowQuery)
    expected = asyncio.run(plain.execute(query))
    actual = asyncio.run(fast.execute(query))
    assert json.dumps(actual.data) == json.dumps(expected.data)
    assert sorted((e.message, e.path) for e in actual.errors or []) == sorted(
        (e.message, e.path) for e in expected.errors or []
    )


def test_plain_leaf_fields_are_found_once_per_schema() -> None:
    schema = strawberry.Schema(query=RowQuery)._schema
    reads = graphql_executor.memos_of(schema).leaf_reads
    assert set(reads) == {
        ("Row", name)
        for name in (
            [
                "text",
                "maybeText",
                "number",
                "maybeNumber",
                "ratio",
                "flag",
                "mood",
                "maybeMood",
                "identifier",
            ]
        )
    }
    assert reads[("Row", "maybeText")].nullable
    assert not reads[("Row", "text")].nullable
    assert graphql_executor.memos_of(schema).leaf_reads is reads


async def test_a_variable_directive_is_evaluated_in_every_execution(alice: SignedIn) -> None:
    """A document whose fields depend on its variables is collected afresh each time, though
    the document itself is cached: the second and third executions see their own `$skip`."""
    query = "query($skip: Boolean!) { me { id email @skip(if: $skip) } }"
    for skip in (True, False, True):
        me = (await alice.ok(query, {"skip": skip}))["me"]
        assert ("email" in me) is not skip


async def test_a_cached_document_answers_each_execution_from_its_own_data(
    alice: SignedIn,
) -> None:
    """The memo a cached document shares holds how to read fields, never what was read."""
    query = "{ conversations(first: 5) { edges { node { title folder { name } } } } }"
    assert (await alice.ok(query))["conversations"]["edges"] == []
    folder = (await alice.ok('mutation { createFolder(input: {name: "F"}) { id } }'))[
        "createFolder"
    ]["id"]
    await alice.ok(
        'mutation($f: ID) { createConversation(input: {title: "T", folderId: $f}) { id } }',
        {"f": folder},
    )
    edges = (await alice.ok(query))["conversations"]["edges"]
    assert edges == [{"node": {"title": "T", "folder": {"name": "F"}}}]


def test_an_operation_shares_its_memo_only_without_directives() -> None:
    schema = strawberry.Schema(query=RowQuery)._schema
    plain = parse("{ rows { text ...F } } fragment F on Row { child { number } }")
    directed = parse(
        "query($x: Boolean!) { rows { text ...F } } fragment F on Row { number @include(if: $x) }"
    )
    first = EventScopedExecutor.build(schema, plain)
    second = EventScopedExecutor.build(schema, plain)
    assert isinstance(first, EventScopedExecutor)
    assert isinstance(second, EventScopedExecutor)
    assert first._plans is second._plans
    assert first._sub_fields is second._sub_fields
    third = EventScopedExecutor.build(schema, directed, raw_variable_values={"x": True})
    fourth = EventScopedExecutor.build(schema, directed, raw_variable_values={"x": False})
    assert isinstance(third, EventScopedExecutor)
    assert isinstance(fourth, EventScopedExecutor)
    assert third._sub_fields is not fourth._sub_fields
    operation = plain.definitions[0]
    assert isinstance(operation, graphql.OperationDefinitionNode)
    memo = weakref.ref(first._memo)
    assert graphql_executor.memos_of(schema).shared(operation, first.fragments) is memo()
    del plain, operation, first, second
    gc.collect()
    assert memo() is None  # gone with its document


@strawberry.type
class Tick:
    number: int
    child: Tick | None


@strawberry.type
class TickSubscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[Tick, None]:
        for number in range(30):
            yield Tick(number=number, child=Tick(number=-number, child=None))


@pytest.mark.parametrize(
    "document",
    [
        "subscription { ticks { number child { number } } }",
        "subscription($x: Boolean!) { ticks { number child @include(if: $x) { number } } }",
    ],
)
async def test_a_subscription_memo_does_not_grow_with_its_events(document: str) -> None:
    """Each event executes the subscription's selection again, on a copy of the executor; what
    the executors work out for it stays one entry per field, not one more per event."""
    schema = strawberry.Schema(query=RowQuery, subscription=TickSubscription)._schema
    executor = EventScopedExecutor.build(schema, parse(document), raw_variable_values={"x": True})
    assert isinstance(executor, EventScopedExecutor)
    sizes = []
    for number in range(30):
        event = executor.build_per_event_executor(
            Tick(number=number, child=Tick(number=-number, child=None))
        )
        assert isinstance(event, EventScopedExecutor)
        result = event.execute_operation(False)
        assert isinstance(result, graphql.ExecutionResult)
        assert result.data == {"ticks": {"number": number, "child": {"number": -number}}}
        sizes.append(
            tuple(
                len(memo)
                for held in (executor, event)
                for memo in (held._sub_fields, held._plans, held._relevant_sub_fields)
            )
        )
    assert sizes[1:] == sizes[:1] * 29


def test_deferred_fields_are_collected_with_their_defer_usage() -> None:
    """One fragment's fields reached outside and inside `@defer` are two different sub-field
    sets (graphql-core's memo keeps them apart; one keyed only by the nodes would not)."""
    ROWS[:] = [_row({"text": "top"}, child=_row({"text": "mid"}, child=_row({"text": "low"})))]
    query = """{ rows { a: child { ...F } b: child { ... @defer { ...F } } } }
        fragment F on Row { child { text } }"""
    config = StrawberryConfig(enable_experimental_incremental_execution=True)

    async def answer(schema: strawberry.Schema) -> list[Any]:
        result = experimental_execute_incrementally(
            schema._schema, parse(query), executor_class=schema.execution_context_class
        )
        if inspect.isawaitable(result):
            result = await result
        assert isinstance(result, ExperimentalIncrementalExecutionResults)
        payloads: list[Any] = [result.initial_result.formatted]
        payloads += [later.formatted async for later in result.subsequent_results]
        return payloads

    plain = strawberry.Schema(query=RowQuery, config=config)
    fast = strawberry.Schema(
        query=RowQuery, config=config, execution_context_class=EventScopedExecutor
    )
    expected = asyncio.run(answer(plain))
    assert len(expected) == 2  # the initial payload and the deferred one
    assert asyncio.run(answer(fast)) == expected


def test_a_cached_document_run_with_middleware_reads_no_leaf_in_place() -> None:
    """Resolver middleware sees every field, also of a document the executor has already
    worked out without middleware."""

    def upper(next_: Any, root: Any, info: Any, **kwargs: Any) -> Any:
        value = next_(root, info, **kwargs)
        return value.upper() if isinstance(value, str) else value

    ROWS[:] = [_row({"text": "quiet"})]
    schema = strawberry.Schema(query=RowQuery, execution_context_class=EventScopedExecutor)
    document = parse("{ rows { text } }")
    for middleware, expected in (([], "quiet"), ([upper], "QUIET"), ([], "quiet")):
        result = graphql.execute(
            schema._schema, document, middleware=middleware, executor_class=EventScopedExecutor
        )
        assert isinstance(result, graphql.ExecutionResult)
        assert result.data == {"rows": [{"text": expected}]}


class Deny(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any) -> bool:
        return False


@strawberry.type
class Guarded:
    name: str
    secret: str | None = strawberry.field(permission_classes=[Deny])


@strawberry.type
class GuardedQuery:
    @strawberry.field
    def guarded(self) -> Guarded:
        return Guarded(name="alice", secret="s3cr3t")


def test_a_plain_attribute_with_a_permission_keeps_its_check() -> None:
    """Strawberry marks a field's extension chain as its default resolver too: a field with
    permission classes but no resolver is not a plain leaf."""
    schema = strawberry.Schema(query=GuardedQuery, execution_context_class=EventScopedExecutor)
    assert ("Guarded", "secret") not in graphql_executor.memos_of(schema._schema).leaf_reads
    result = schema.execute_sync("{ guarded { name secret } }")
    assert result.data == {"guarded": {"name": "alice", "secret": None}}
    assert [(e.message, e.path) for e in result.errors or []] == [("denied", ["guarded", "secret"])]


class Lazy:
    """A row whose `text` is a property answering a new coroutine each time it is read."""

    reads = 0

    @property
    def text(self) -> Any:
        Lazy.reads += 1

        async def value() -> str:
            return "later"

        return value()


@strawberry.type
class LazyRow:
    text: str


@strawberry.type
class LazyQuery:
    @strawberry.field
    def rows(self) -> list[LazyRow]:
        return [Lazy()]  # type: ignore[list-item]


def test_an_awaitable_attribute_read_in_place_is_closed_not_leaked() -> None:
    schema = strawberry.Schema(query=LazyQuery, execution_context_class=EventScopedExecutor)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = asyncio.run(schema.execute("{ rows { text } }"))
        gc.collect()
    assert result.data == {"rows": [{"text": "later"}]}
    assert [w for w in caught if "never awaited" in str(w.message)] == []
    assert Lazy.reads == 2  # read in place, then again by graphql-core's own path
