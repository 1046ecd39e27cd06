"""Mapping OpenRouter failures to our error codes, with messages safe to show a client."""

from __future__ import annotations

from typing import Any

from gql_chat.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503})


class MalformedStream(UpstreamError):
    default_message = "The model provider sent a malformed stream."


def error_for_status(status: int, body: Any = None) -> UpstreamError:
    """Never echo the provider's text for auth failures: it may quote the key."""
    if status in (401, 403):
        return UpstreamError("The model provider rejected the API key.", upstreamStatus=status)
    if status == 402:
        return UpstreamError(
            "The model provider reports insufficient credits.", upstreamStatus=status
        )
    if status == 429:
        return UpstreamRateLimited(upstreamStatus=status)
    if status == 408:
        return UpstreamTimeout(upstreamStatus=status)
    if 400 <= status < 500:
        return UpstreamError(
            f"The model provider refused the request ({_provider_message(body)}).",
            upstreamStatus=status,
        )
    return UpstreamError(f"The model provider failed (HTTP {status}).", upstreamStatus=status)


def error_for_event(error: Any) -> UpstreamError:
    """An `error` object that arrived inside the stream (HTTP 200, finish_reason "error")."""
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, int) and code >= 400:
        return error_for_status(code, {"error": error})
    return UpstreamError("The model provider failed mid-reply.")


def _provider_message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if isinstance(message, str) and message.strip():
        return message.strip()[:200]
    return "no reason given"
