"""The executor: a request's execution is freed when it ends, not left to the cyclic garbage
collector, and its resolvers' async helpers still reach it."""

from __future__ import annotations

import asyncio
import gc

import graphql
import pytest
from graphql import parse
from graphql.execution import Executor

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
