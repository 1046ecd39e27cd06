"""One log line per GraphQL operation: name, type, user, duration and outcome (never the
document's variables or the result)."""

from __future__ import annotations

import logging
import time

from strawberry.types import ExecutionContext

logger = logging.getLogger("gql_chat.graphql")


def log_operation(execution: ExecutionContext, started: float, *, cancelled: bool = False) -> None:
    """One INFO line for a finished operation (`cancelled`: a query or mutation ended by
    cancellation before its result); `build_schema` passes it to the schema only when INFO is
    shown."""
    errors = execution.result.errors if execution.result else execution.pre_execution_errors
    codes = sorted({str((e.extensions or {}).get("code", "GRAPHQL_REQUEST")) for e in errors or []})
    principal = getattr(execution.context, "_principal", None)
    try:
        operation_type = execution.operation_type.value
    except Exception:  # no parsable document, or no such operation
        operation_type = "unknown"
    logger.info(
        "graphql %s %s",
        operation_type,
        execution.operation_name or "anonymous",
        extra={
            "operation_name": execution.operation_name,
            "operation_type": operation_type,
            "user_id": str(principal.user.id) if principal else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "outcome": "cancelled" if cancelled else "error" if codes else "ok",
            "error_codes": codes,
        },
    )
