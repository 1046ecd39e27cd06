"""The executor: a request's execution is freed when it ends, not left to the cyclic garbage
collector, its resolvers' async helpers still reach it, and plain leaf fields read directly
answer exactly as graphql-core's own path does."""

from __future__ import annotations

import asyncio
import enum
import gc
from typing import Any

import graphql
import pytest
import strawberry
from graphql import parse
from graphql.execution import Executor
from hypothesis import given, settings
from hypothesis import strategies as st

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

    @strawberry.field
    def computed(self) -> str:  # a resolver: never read directly
        return f"computed {self.text}"


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


def _row(values: dict[str, Any]) -> Any:
    row = Row.__new__(Row)
    row.__dict__.update(values)
    return row


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                name: ANY_VALUE
                for name in [
                    "text",
                    "maybe_text",
                    "number",
                    "maybe_number",
                    "ratio",
                    "flag",
                    "mood",
                    "maybe_mood",
                    "identifier",
                ]
            }
        ),
        min_size=1,
        max_size=3,
    )
)
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


def test_plain_leaf_fields_are_found_once_per_schema() -> None:
    schema = strawberry.Schema(query=RowQuery)._schema
    reads = graphql_executor.leaf_reads(schema)
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
    assert graphql_executor.leaf_reads(schema) is reads
