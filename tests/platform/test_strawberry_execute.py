"""Executing with the stages called directly answers exactly as Strawberry's own `execute` does
with the same stages as an extension: the same result, the same errors with the same codes and
paths, the same exceptions, the same error lists through `process_errors`, and the same
operations seen by `finished`, for generated documents and for hostile ones. (A document the
parse stage refuses leaves Strawberry's path as the exception; its operation hook records the
error, so that the operation log has its line on both paths.)"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import graphql
import pytest
import strawberry
from graphql import DocumentNode, GraphQLError, parse, validate
from hypothesis import HealthCheck, given, settings
from hypothesis_graphql import mutations, queries
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType

from gql_chat.platform import strawberry_execute
from gql_chat.platform.strawberry_execute import execute_with_stages, stage_hooks
from gql_chat.platform.versions import UnsupportedVersion


@strawberry.type
class Item:
    id: strawberry.ID
    name: str

    @strawberry.field
    def broken(self) -> str | None:
        raise ValueError(f"broken {self.name}")

    @strawberry.field
    def refused(self) -> str:
        raise GraphQLError("no", extensions={"code": "FORBIDDEN"})


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"

    @strawberry.field
    async def items(self, first: int = 2) -> list[Item]:
        if first < 0:
            raise ValueError("first must not be negative")
        return [Item(id=strawberry.ID(str(i)), name=f"item {i}") for i in range(min(first, 5))]

    @strawberry.field
    def item(self, id: strawberry.ID) -> Item | None:
        return Item(id=id, name="one") if id == "1" else None


@strawberry.type
class Mutation:
    @strawberry.mutation
    def touch(self, times: int = 1) -> int:
        return times * 2


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        yield 1


class Stages:
    """A cache of parsed documents and a refusal for one marker, as gql_chat's stages do."""

    def __init__(self) -> None:
        self.documents: dict[str, DocumentNode] = {}

    def parse(self, context: ExecutionContext) -> DocumentNode:
        assert context.query is not None
        if "#refuse" in context.query:
            raise GraphQLError("refused", extensions={"code": "PARSE_REFUSED"})
        if "#crash" in context.query:
            raise RuntimeError("the stage failed")
        document = self.documents.get(context.query)
        if document is None:
            document = self.documents[context.query] = parse(context.query)
        context.graphql_document = document
        return document

    def validate(self, context: ExecutionContext, parsed: DocumentNode) -> None:
        assert context.graphql_document is parsed
        context.pre_execution_errors = validate(context.schema._schema, parsed)


class RecordingSchema(strawberry.Schema):
    def __init__(self, **kwargs: Any) -> None:
        self.processed: list[list[str]] = []
        self.finished: list[tuple[str | None, list[str]]] = []
        self.stages = Stages()
        super().__init__(
            query=Query,
            mutation=Mutation,
            subscription=Subscription,
            extensions=[stage_hooks(self.stages, self.record_finished)],
            config=StrawberryConfig(disable_field_suggestions=True),
            **kwargs,
        )

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        self.processed.append([error.message for error in errors])
        errors[:] = [
            GraphQLError(e.message, e.nodes, e.source, e.positions, e.path, None, e.extensions)
            for e in errors
        ]

    def record_finished(
        self, context: ExecutionContext, started: float, *, cancelled: bool = False
    ) -> None:
        errors = context.result.errors if context.result else context.pre_execution_errors
        messages = [e.message for e in errors or []]
        self.finished.append((context.operation_name, ["cancelled"] if cancelled else messages))


def outcome(schema: RecordingSchema, result: Any) -> dict[str, Any]:
    seen = {"processed": schema.processed, "finished": schema.finished}
    if result is None:
        return seen
    return {
        "data": result.data,
        "errors": [error.formatted for error in result.errors or []],
        "extensions": result.extensions,
        "refused before execution": isinstance(result, PreExecutionError),
        **seen,
    }


def assert_alike(strawberry_outcome: dict[str, Any], direct_outcome: dict[str, Any]) -> None:
    assert direct_outcome == strawberry_outcome


async def both(
    query: str | None,
    variables: dict[str, Any] | None = None,
    operation_name: str | None = None,
    allowed: set[OperationType] | None = None,
) -> tuple[Any, Any]:
    """(Strawberry's outcome, the direct outcome): a dict, or the exception's type and text."""
    allowed = allowed or {OperationType.QUERY, OperationType.MUTATION}
    answers = []
    for direct in (False, True):
        schema = RecordingSchema()
        try:
            if direct:
                context = schema._create_execution_context(
                    query=query,
                    allowed_operation_types=allowed,
                    variable_values=variables,
                    operation_name=operation_name,
                )
                result = await execute_with_stages(
                    schema, context, schema.stages, schema.record_finished
                )
            else:
                result = await schema.execute(
                    query, variables, operation_name=operation_name, allowed_operation_types=allowed
                )
            answers.append(outcome(schema, result))
        except Exception as exc:
            answers.append({"raised": (type(exc).__name__, str(exc)), **outcome(schema, None)})
    return answers[0], answers[1]


SCHEMA = RecordingSchema()
DOCUMENTS = queries(SCHEMA.as_str()) | mutations(SCHEMA.as_str())
HOSTILE = [
    "",
    "{",
    "{ nothing }",
    "{ helo }",
    "{ hello(name: 3) }",
    "{ items(first: -1) { id } }",
    "{ items(first: 3) { id broken refused } }",
    "{ items { name } } #refuse",
    "{ hello } #crash",
    "query A { hello } query B { touch }",
    "query A { hello } mutation B { touch }",
    "subscription { ticks }",
    "mutation { touch(times: 4) }",
    "query($id: ID!) { item(id: $id) { name } }",
    "fragment F on Query { hello }",
]


@given(document=DOCUMENTS)
@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
async def test_generated_documents_answer_alike(document: str) -> None:
    assert_alike(*await both(document))


@pytest.mark.parametrize("document", HOSTILE)
@pytest.mark.parametrize("operation_name", [None, "A", "B", "C"])
@pytest.mark.parametrize(
    "allowed", [None, {OperationType.QUERY}, {OperationType.QUERY, OperationType.SUBSCRIPTION}]
)
async def test_hostile_documents_answer_alike(
    document: str, operation_name: str | None, allowed: set[OperationType] | None
) -> None:
    for variables in (None, {"id": "1"}, {"id": 1.5}):
        assert_alike(*await both(document, variables, operation_name, allowed))


async def test_no_query_is_refused_alike() -> None:
    strawberry_outcome, direct_outcome = await both(None)
    assert direct_outcome["raised"][0] == "MissingQueryError"
    assert_alike(strawberry_outcome, direct_outcome)


async def test_the_outcomes_differ_where_they_should() -> None:
    """The comparison can fail: a resolver error and a valid answer are told apart, and every
    error list reaches `process_errors` once, with `finished` seeing the operation."""
    _, broken = await both("{ items(first: 1) { broken } }")
    _, fine = await both("{ items(first: 1) { name } }")
    assert broken != fine
    assert broken["processed"] == [["broken item 0"]]
    assert broken["finished"] == [(None, ["broken item 0"])]
    _, refused = await both("{ hello } #refuse")
    assert refused["refused before execution"] is True
    assert refused["errors"][0]["extensions"] == {"code": "PARSE_REFUSED"}


def test_an_unchecked_strawberry_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strawberry_execute, "distribution_version", lambda _name: "0.999.0")
    with pytest.raises(UnsupportedVersion):
        strawberry_execute.require_supported_versions()


def test_an_unchecked_graphql_core_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graphql, "__version__", "3.4.0")
    with pytest.raises(UnsupportedVersion, match=r"found .*graphql-core 3\.4\.0"):
        strawberry_execute.require_supported_versions()
