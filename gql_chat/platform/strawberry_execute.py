"""Strawberry's `Schema.execute` for a schema whose own stages are plain calls, not extensions.

For every operation Strawberry instantiates each schema extension, builds a
`SchemaExtensionsRunner`, four hook context managers (each asking every extension for its hook)
and a `MiddlewareManager`, and enters and leaves each stage through them. gql_chat's own stages
are a parse (the document cache and limits), a validation (the cached result) and a log line:
a few plain calls. On a `{ me { id email } }` request the machinery around them was about a
sixth of the request's server time.

`execute_with_stages` takes the steps of Strawberry 0.341's `Schema.execute` in the same order
with the stages called directly: the same exceptions raised (no query, an operation that cannot
be chosen or is not allowed), the same `PreExecutionError` for a document refused before
execution, `_process_errors` once on every error list, graphql-core's `execute` called with the
same arguments (as its two steps: the executor built, the operation executed), and the
`ExecutionContext` filled as an extension would see it. `stage_hooks`
wraps the same stages as one schema extension for the paths that still take Strawberry's
machinery (subscriptions, `execute_sync`). It relies on Strawberry's `Schema` internals
(`_schema`, `_process_errors`, `execution_context_class`, `_create_execution_context`) and on
graphql-core 3.3's `Executor.build` and `execute_operation`, so `require_supported_versions`
stops start-up on a version this was not checked against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import graphql
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from graphql.execution.executor import UNEXPECTED_MULTIPLE_PAYLOADS
from strawberry import Schema
from strawberry.exceptions import MissingQueryError
from strawberry.execution import optimized_is_awaitable
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types.execution import ExecutionContext, ExecutionResult, PreExecutionError
from strawberry.types.graphql import OperationType

from gql_chat.platform.versions import UnsupportedVersion, distribution_version, require_versions

SUPPORTED_STRAWBERRY = ("0.341.",)
"""The Strawberry versions whose `Schema.execute` this module follows."""
SUPPORTED_GRAPHQL_CORE = ("3.3.",)
"""The graphql-core versions whose `execute` this module takes in its two steps."""

Parsed = TypeVar("Parsed")


class Finished(Protocol):
    def __call__(
        self, execution: ExecutionContext, started: float, /, *, cancelled: bool = False
    ) -> None:
        """Called once an operation ends, with its `time.perf_counter()` start: with its
        result, refused, or `cancelled` (a query or mutation ended by cancellation before its
        result: its client completed it, its socket closed, its sign-in ended, shutdown)."""


class DocumentStages(Protocol[Parsed]):
    def parse(self, context: ExecutionContext) -> Parsed:
        """Set `context.graphql_document`, or raise a GraphQLError to refuse the request."""

    def validate(self, context: ExecutionContext, parsed: Parsed) -> None:
        """Set `context.pre_execution_errors`: an empty list for a valid document."""


async def execute_with_stages(
    schema: Schema,
    context: ExecutionContext,
    stages: DocumentStages[Any],
    finished: Finished | None = None,
) -> ExecutionResult:
    """Strawberry's `execute` for `context`, built by `schema._create_execution_context`.
    `finished` is not called when an exception leaves: `NOT_OPERATION_ERRORS` (the view answers
    them), or a cancellation (over HTTP, only a shutdown's: no answer, and no line)."""
    started = time.perf_counter()
    if not context.query:
        raise MissingQueryError
    try:
        parsed = stages.parse(context)
        try:
            operation_type = context.operation_type
        except RuntimeError as no_operation:
            raise CannotGetOperationTypeError(context.operation_name) from no_operation
        if operation_type not in context.allowed_operations:
            raise InvalidOperationTypeError(operation_type)
        stages.validate(context, parsed)
        if context.pre_execution_errors:
            result: ExecutionResult = _refused(schema, context, context.pre_execution_errors)
        else:
            result = _result(schema, context, await _execute(schema, context))
    except NOT_OPERATION_ERRORS:
        raise
    except Exception as exc:  # as Strawberry: any other error is the operation's one error
        result = _refused(schema, context, [operation_error(exc)])
    context.result = result
    if finished is not None:
        finished(context, started)
    return result


NOT_OPERATION_ERRORS = (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError)
"""Strawberry's refusals of a request, which leave `execute` as exceptions (the HTTP view answers
them itself): not an operation's error, and not in the operation log."""


def _left_before_its_result(context: ExecutionContext) -> bool:
    """A query or mutation ended by cancellation before it had a result or a refusal. (A
    subscription's cancellation is its usual end, whether or not an event came.)"""
    if context.result is not None or context.pre_execution_errors:
        return False
    try:
        return context.operation_type is not OperationType.SUBSCRIPTION
    except RuntimeError:  # no document
        return True


def operation_error(exc: Exception) -> GraphQLError:
    """As Strawberry: any error before execution is the operation's one error."""
    return exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)


async def _execute(schema: Schema, context: ExecutionContext) -> GraphQLExecutionResult:
    """graphql-core's `execute` with Strawberry's arguments, its steps taken here: the executor
    built (or the request's errors), the operation executed, and anything but one result
    refused, as `execute` refuses incremental results."""
    assert context.graphql_document is not None
    executor = schema.execution_context_class.build(
        schema._schema,
        context.graphql_document,
        root_value=context.root_value,
        context_value=context.context,
        raw_variable_values=context.variables,
        operation_name=context.operation_name,
        is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]  # as Strawberry
        operation_extensions=context.operation_extensions,
    )
    if isinstance(executor, list):
        return GraphQLExecutionResult(None, errors=executor)
    result: Any = executor.execute_operation()
    if optimized_is_awaitable(result):
        result = await result
    if not isinstance(result, GraphQLExecutionResult):
        raise GraphQLError(UNEXPECTED_MULTIPLE_PAYLOADS)
    return result


def _result(
    schema: Schema, context: ExecutionContext, executed: GraphQLExecutionResult
) -> ExecutionResult:
    if executed.errors:
        context.pre_execution_errors = executed.errors
        schema._process_errors(executed.errors, context)
    return ExecutionResult(
        data=executed.data, errors=executed.errors, extensions=dict(context.extensions_results)
    )


def _refused(
    schema: Schema, context: ExecutionContext, errors: list[GraphQLError]
) -> PreExecutionError:
    context.pre_execution_errors = errors
    schema._process_errors(errors, context)
    return PreExecutionError(data=None, errors=errors, extensions=dict(context.extensions_results))


def stage_hooks(
    stages: DocumentStages[Any], finished: Finished | None = None
) -> type[SchemaExtension]:
    """The same stages as one schema extension, for Strawberry's own paths."""

    class StageHooks(SchemaExtension):
        _parsed: Any = None

        if finished is not None:  # otherwise no hook, which costs nothing

            def on_operation(self) -> Iterator[None]:
                """Also when the operation does not end by itself. A websocket handler closes
                the result stream of a refused document once it has sent the refusal
                (GeneratorExit here); a subscription ends by cancellation (its client
                completed it, or its socket closed), as may a query or mutation before its
                result (logged as cancelled). A document the parse stage refuses
                leaves Strawberry as the exception: it is logged as the error
                `execute_with_stages` makes of it. `NOT_OPERATION_ERRORS` leave unlogged, as
                there (over websockets Strawberry makes them results, so they have a line)."""
                assert finished is not None
                started = time.perf_counter()
                try:
                    yield
                except NOT_OPERATION_ERRORS:
                    raise
                except Exception as exc:
                    self.execution_context.pre_execution_errors = [operation_error(exc)]
                    finished(self.execution_context, started)
                    raise
                except (GeneratorExit, asyncio.CancelledError):
                    context = self.execution_context
                    finished(context, started, cancelled=_left_before_its_result(context))
                    raise
                finished(self.execution_context, started)

        def on_parse(self) -> Iterator[None]:
            self._parsed = stages.parse(self.execution_context)
            yield

        def on_validate(self) -> Iterator[None]:
            stages.validate(self.execution_context, self._parsed)
            yield

    return StageHooks


def require_supported_versions() -> None:
    """Stop start-up when Strawberry is a version this module was not checked against."""
    require_versions(
        __name__,
        {"strawberry-graphql": SUPPORTED_STRAWBERRY, "graphql-core": SUPPORTED_GRAPHQL_CORE},
        {
            "strawberry-graphql": distribution_version("strawberry-graphql"),
            "graphql-core": graphql.__version__,
        },
    )
    for name in ("_process_errors", "_create_execution_context"):
        if not callable(getattr(Schema, name, None)):
            raise UnsupportedVersion(f"Strawberry's Schema has no {name}()")
