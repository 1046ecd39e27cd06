"""Domain errors, each with a contract error code; the api layer makes them GraphQL errors."""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    """An expected failure a client can act on; its message is safe to show."""

    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    default_message: ClassVar[str] = "Internal server error."

    def __init__(self, message: str | None = None, **extra: Any) -> None:
        self.message = message or self.default_message
        self.extra = extra
        super().__init__(self.message)

    @property
    def extensions(self) -> dict[str, Any]:
        """What graphql-core copies into the error's `extensions` (it reads this attribute)."""
        return {"code": self.code, **self.extra}


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    default_message = "Authentication required."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    default_message = "You are not allowed to do this."


class EmailNotVerified(Forbidden):
    """`GQL_CHAT_REQUIRE_VERIFIED_EMAIL`: the user signs in, but sends nothing before verifying."""

    code = "EMAIL_NOT_VERIFIED"
    default_message = (
        "Confirm your email address first (`resendVerification` sends the link again)."
    )


class NotFound(DomainError):
    code = "NOT_FOUND"
    default_message = "Not found."


class BadUserInput(DomainError):
    code = "BAD_USER_INPUT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.field = field


class InvalidFields(BadUserInput):
    """Several fields of one input are invalid at once: the api reports one error per field
    (`problems`), so a form can mark them all. It is itself the first of them."""

    def __init__(self, problems: list[BadUserInput]) -> None:
        super().__init__(problems[0].field, problems[0].message)
        self.problems = problems


class Conflict(DomainError):
    code = "CONFLICT"


class AlreadyExists(Conflict):
    """A unique key was used before: the store raises it for the driver's duplicate-key error,
    so no service sees the driver's exception."""

    default_message = "This was stored before."


class LimitReached(Conflict):
    """The user already has as many of something as one account may (folders, presets): the
    lists that are not paged must stay small. `extensions.limit` says how many."""

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message, limit=limit)


class RateLimited(DomainError):
    code = "RATE_LIMITED"
    default_message = "Too many requests; try again later."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, retryAfter=retry_after)
        self.retry_after = retry_after


class QuotaExceeded(DomainError):
    """The user's spending budget for the period is used up (`extensions.resetsAt`)."""

    code = "QUOTA_EXCEEDED"


class UpstreamError(DomainError):
    code = "UPSTREAM_ERROR"
    default_message = "The model provider failed."


class UpstreamTimeout(UpstreamError):
    code = "UPSTREAM_TIMEOUT"
    default_message = "The model provider did not answer in time."


class UpstreamRateLimited(UpstreamError):
    code = "UPSTREAM_RATE_LIMITED"
    default_message = "The model provider is rate limiting requests."
