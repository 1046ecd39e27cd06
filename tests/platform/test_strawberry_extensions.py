"""Schema extensions behave as in Strawberry's own hook handling once their set-up is cached:
every kind of hook runs, in order, once per operation, for each new instance; classes without a
hook cost nothing and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gql_chat.platform import install, strawberry_extensions
from gql_chat.platform.versions import UnsupportedVersion

install()

events: list[str] = []
instances: list[SchemaExtension] = []


class SyncHooks(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        instances.append(self)
        events.append("operation start")
        yield
        events.append("operation end")

    def on_parse(self) -> Iterator[None]:
        events.append("parse start")
        yield
        events.append("parse end")


class AsyncHooks(SchemaExtension):
    async def on_execute(self) -> AsyncIterator[None]:
        events.append("execute start")
        yield
        events.append("execute end")


class CallableHook(SchemaExtension):
    def on_validate(self) -> None:  # type: ignore[override]
        events.append("validate called")


class NoHooks(SchemaExtension):
    pass


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"

    @strawberry.field
    def broken(self) -> str:
        raise ValueError("resolver failed")


SCHEMA = strawberry.Schema(query=Query, extensions=[SyncHooks, AsyncHooks, CallableHook, NoHooks])


async def test_every_kind_of_hook_runs_in_order_for_each_operation() -> None:
    events.clear()
    instances.clear()
    for _ in range(2):
        result = await SCHEMA.execute("{ hello }")
        assert result.data == {"hello": "world"}
    one_operation = [
        "operation start",
        "parse start",
        "parse end",
        "validate called",
        "execute start",
        "execute end",
        "operation end",
    ]
    assert events == one_operation * 2
    assert instances[0] is not instances[1]  # a new extension instance each time


async def test_an_error_inside_passes_through_the_hooks() -> None:
    events.clear()
    result = await SCHEMA.execute("{ broken }")
    assert result.errors is not None
    assert result.errors[0].message == "resolver failed"
    assert events[-2:] == ["execute end", "operation end"]


async def test_a_schema_without_extensions_runs_alike() -> None:
    bare = strawberry.Schema(query=Query)
    assert (await bare.execute("{ hello }")).data == {"hello": "world"}
    assert bare.execute_sync("{ hello }").data == {"hello": "world"}


def test_sync_execution_runs_the_hooks_too() -> None:
    events.clear()
    sync_schema = strawberry.Schema(query=Query, extensions=[SyncHooks, NoHooks])
    assert sync_schema.execute_sync("{ hello }").data == {"hello": "world"}
    assert events[1:] == ["parse start", "parse end", "operation end"]


class SeesErrors(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        events.append("first start")
        try:
            yield
        except Exception as exc:
            events.append(f"first saw {type(exc).__name__}")
            raise
        events.append("first end")


class SecondOnOperation(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        events.append("second start")
        yield
        events.append("second end")


class FailsOnLeaving(SchemaExtension):
    def on_validate(self) -> Iterator[None]:
        yield
        raise RuntimeError("left badly")


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self) -> bool:
        return True


@pytest.mark.parametrize("extensions", [[SeesErrors], [SeesErrors, SecondOnOperation]])
async def test_an_exception_through_a_stage_reaches_its_hooks(
    extensions: list[type[SchemaExtension]],
) -> None:
    """One hook is entered directly, several through Strawberry's exit stack: both see an
    exception raised inside their stage, and it still reaches the caller."""
    events.clear()
    schema = strawberry.Schema(query=Query, mutation=Mutation, extensions=extensions)
    with pytest.raises(InvalidOperationTypeError):
        await schema.execute("mutation { touch }", allowed_operation_types={OperationType.QUERY})
    assert events[0] == "first start"
    assert events[-1] == "first saw InvalidOperationTypeError"
    events.clear()
    assert (await schema.execute("{ hello }")).data == {"hello": "world"}
    expected = ["first start", "first end"]
    if len(extensions) == 2:
        expected = ["first start", "second start", "second end", "first end"]
    assert events == expected


def test_an_error_raised_by_a_hook_itself_is_the_operation_error() -> None:
    schema = strawberry.Schema(query=Query, extensions=[FailsOnLeaving])
    result = schema.execute_sync("{ hello }")
    assert result.errors is not None
    assert [error.message for error in result.errors] == ["left badly"]


async def test_an_error_raised_by_a_hook_itself_is_the_operation_error_async() -> None:
    schema = strawberry.Schema(query=Query, extensions=[FailsOnLeaving])
    result = await schema.execute("{ hello }")
    assert result.errors is not None
    assert [error.message for error in result.errors] == ["left badly"]


def test_an_unchecked_strawberry_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strawberry_extensions, "distribution_version", lambda _name: "0.999.0")
    with pytest.raises(UnsupportedVersion):
        strawberry_extensions.require_supported_versions()
