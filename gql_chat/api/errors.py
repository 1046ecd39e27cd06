"""Error mapping: coded (domain) errors reach clients; anything else becomes a generic
INTERNAL_SERVER_ERROR after its traceback is logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
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


def masked(error: GraphQLError) -> GraphQLError:
    """Where it happened, but nothing of what happened."""
    return GraphQLError(
        message=INTERNAL_MESSAGE,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR"},
    )


class GqlChatSchema(Schema):
    """Logs each unexpected error with its traceback, then masks it in place.

    Strawberry passes every result's error list through `process_errors` (queries, mutations,
    each subscription event, over HTTP and websockets) before the result is sent, so this is
    the one place that sees them all. Doing it here rather than with the `MaskErrors`
    extension saves an extension instance and its hooks on every operation and every
    subscription event."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for index, error in enumerate(errors):
            if not is_expected(error):
                original: Any = error.original_error
                logger.error(
                    "unexpected error in %s",
                    ".".join(str(p) for p in error.path or ()) or "operation",
                    exc_info=(type(original), original, original.__traceback__),
                )
                errors[index] = masked(error)
