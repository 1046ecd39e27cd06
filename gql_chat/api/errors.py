"""Error mapping: coded (domain) errors reach clients; a step that timed out becomes a retryable
INTERNAL_SERVER_ERROR after one log line; anything else becomes a generic INTERNAL_SERVER_ERROR
after its traceback is logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError
from strawberry import Schema
from strawberry.types import ExecutionContext

logger = logging.getLogger("gql_chat.api")

INTERNAL_MESSAGE = "Internal server error."
TIMED_OUT_MESSAGE = "The server did not finish in time; try again."
RETRY_AFTER_TIMEOUT = 1


def is_expected(error: GraphQLError) -> bool:
    """Request errors (parse, validation, variable coercion) and errors carrying a contract code."""
    return (
        error.original_error is None
        or isinstance(error.original_error, GraphQLError)
        or "code" in (error.extensions or {})
    )


def masked(error: GraphQLError, message: str = INTERNAL_MESSAGE, **extensions: Any) -> GraphQLError:
    """Where it happened, but nothing of what happened."""
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={"code": "INTERNAL_SERVER_ERROR", **extensions},
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
            if is_expected(error):
                continue
            original: Any = error.original_error
            where = ".".join(str(p) for p in error.path or ()) or "operation"
            if isinstance(original, TimeoutError):
                # A bounded step ran out of time (an overloaded database, a stalled connection):
                # expected under load, so one line each, and the client may retry.
                logger.warning("%s timed out", where)
                errors[index] = masked(error, TIMED_OUT_MESSAGE, retryAfter=RETRY_AFTER_TIMEOUT)
                continue
            logger.error(
                "unexpected error in %s",
                where,
                exc_info=(type(original), original, original.__traceback__),
            )
            errors[index] = masked(error)
