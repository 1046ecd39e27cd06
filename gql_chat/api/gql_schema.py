"""The schema class: Strawberry's, with gql_chat's error processing, and its document stages
and operation log called directly for queries and mutations (`platform/strawberry_execute.py`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.schema.schema import DEFAULT_ALLOWED_OPERATION_TYPES
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from gql_chat.api.errors import process_errors
from gql_chat.platform.strawberry_execute import (
    DocumentStages,
    Finished,
    execute_with_stages,
    stage_hooks,
)
from gql_chat.platform.strawberry_resolvers import install_direct_resolvers


class GqlChatSchema(Schema):
    """`stages` and `finished` run directly in `execute` (queries and mutations), and as one
    extension on Strawberry's other paths (subscriptions, `execute_sync`). No other extension or
    directive: `execute` would not run them. `transient_errors`: the store's errors that mean
    "unavailable for now" (`api/errors.process_errors`)."""

    def __init__(
        self,
        *,
        stages: DocumentStages[Any],
        finished: Finished | None = None,
        transient_errors: tuple[type[Exception], ...] = (),
        **kwargs: Any,
    ) -> None:
        if kwargs.get("extensions") or kwargs.get("directives"):
            raise ValueError("GqlChatSchema runs its own stages only: no extensions or directives")
        super().__init__(extensions=[stage_hooks(stages, finished)], **kwargs)
        install_direct_resolvers(self)
        self.stages = stages
        self.finished = finished
        self.transient_errors: tuple[type[Exception], ...] = (TimeoutError, *transient_errors)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        process_errors(errors, self.transient_errors)

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if allowed_operation_types is None:
            allowed_operation_types = DEFAULT_ALLOWED_OPERATION_TYPES
        context = self._create_execution_context(
            query=query,
            allowed_operation_types=allowed_operation_types,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
        )
        return await execute_with_stages(self, context, self.stages, self.finished)
