"""Error mapping: coded (domain) errors reach clients; a transient failure (a timeout, the
database unreachable) becomes a retryable INTERNAL_SERVER_ERROR after one log line; anything else
becomes a generic INTERNAL_SERVER_ERROR after its traceback is logged."""

from __future__ import annotations

import logging
from typing import Any

from graphql import GraphQLError

from gql_chat.errors import InvalidFields
from gql_chat.platform.strawberry_execute import NOT_OPERATION_ERRORS

logger = logging.getLogger("gql_chat.api")

INTERNAL_MESSAGE = "Internal server error."
UNAVAILABLE_MESSAGE = "The server is temporarily unavailable; try again."
RETRY_AFTER_UNAVAILABLE = 1


def is_expected(error: GraphQLError) -> bool:
    """Request errors (parse, validation, variable coercion) and errors carrying a contract code."""
    return (
        error.original_error is None
        or isinstance(error.original_error, GraphQLError)
        or "code" in (error.extensions or {})
    )


VARIABLE_ERROR_CODE = "BAD_USER_INPUT"
"""Apollo Server's code for a variable that does not coerce: parse and validation errors carry
their own codes (`api/documents.py`), so a request error without one is a variable's."""


def refusal(error: GraphQLError) -> GraphQLError | None:
    """One of Strawberry's own refusals of a request (`NOT_OPERATION_ERRORS`: no query, no
    operation of the given name, an operation type the protocol does not carry) as a request
    error coded BAD_REQUEST, or None. Over HTTP the view answers them with a 400 (or 405) so
    coded before any result exists; over websockets they reach `process_errors` as results.
    Without the original error, which Strawberry would take as a reason to close the socket
    (4400) rather than refuse the one operation."""
    if isinstance(error.original_error, NOT_OPERATION_ERRORS):
        return GraphQLError(error.message, extensions={"code": "BAD_REQUEST"})
    return None


def with_code(error: GraphQLError, code: str) -> GraphQLError:
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        {**(error.extensions or {}), "code": code},
    )


def expand_invalid_fields(errors: list[GraphQLError]) -> None:
    """One error per invalid field (`InvalidFields`), in place, each at the same path."""
    index = 0
    while index < len(errors):
        original = errors[index].original_error
        if isinstance(original, InvalidFields):
            errors[index : index + 1] = [
                GraphQLError(
                    problem.message,
                    errors[index].nodes,
                    errors[index].source,
                    errors[index].positions,
                    errors[index].path,
                    problem,
                    problem.extensions,
                )
                for problem in original.problems
            ]
            index += len(original.problems)
        else:
            index += 1


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


def process_errors(errors: list[GraphQLError], transient: tuple[type[Exception], ...]) -> None:
    """Logs each unexpected error with its traceback, then masks it in place. A transient
    failure (one of `transient`: a bounded step that timed out, the database unreachable or
    too slow) is expected under load or an outage: one log line each, naming
    its type only, and a retryable error for the client.

    Strawberry passes every result's error list through the schema's `process_errors`
    (queries, mutations, each subscription event, over HTTP and websockets) before the result
    is sent, so `GqlChatSchema.process_errors`, which calls this, is the one place that sees
    them all. Doing it there rather than with the `MaskErrors` extension saves an extension
    instance and its hooks on every operation and every subscription event."""
    expand_invalid_fields(errors)
    for index, error in enumerate(errors):
        if (refused := refusal(error)) is not None:
            errors[index] = refused
            continue
        if is_expected(error):
            if "code" not in (error.extensions or {}) and error.path is None:
                errors[index] = with_code(error, VARIABLE_ERROR_CODE)
            continue
        original: Any = error.original_error
        where = ".".join(str(p) for p in error.path or ()) or "operation"
        if isinstance(original, transient):
            logger.warning("%s failed: %s", where, type(original).__name__)
            errors[index] = masked(error, UNAVAILABLE_MESSAGE, retryAfter=RETRY_AFTER_UNAVAILABLE)
            continue
        logger.error(
            "unexpected error in %s",
            where,
            exc_info=(type(original), original, original.__traceback__),
        )
        errors[index] = masked(error)
