"""Error mapping: coded (domain) errors reach clients; anything else becomes a generic
INTERNAL_SERVER_ERROR after its traceback is logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.extensions import MaskErrors
from strawberry.types import ExecutionContext

logger = logging.getLogger("gql_chat.api")

INTERNAL_MESSAGE = "Internal server error."


def is_expected(error: GraphQLError) -> bool:
    """Request errors (parse, validation, variable coercion) and errors carrying a contract code."""
    return (
        error.original_error is None
        or isinstance(error.original_error, GraphQLError)
        or "code" in (error.extensions or {})
    )


class MaskInternalErrors(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=lambda error: not is_expected(error))

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        return GraphQLError(
            message=INTERNAL_MESSAGE,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR"},
        )

    def _process_result(self, result: object) -> None:
        """As the base class, without its per-call `isinstance` against a runtime Protocol."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = self._process_errors(errors)  # type: ignore[attr-defined]


class GqlChatSchema(Schema):
    """Logs unexpected errors with their traceback; expected ones stay quiet."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if not is_expected(error):
                original: Any = error.original_error
                logger.error(
                    "unexpected error in %s",
                    ".".join(str(p) for p in error.path or ()) or "operation",
                    exc_info=(type(original), original, original.__traceback__),
                )
