"""GraphQL's omitted-versus-null, turned into the services' partial updates (`domain.changes`)."""

from __future__ import annotations

from typing import Protocol, TypeVar

from gql_chat.domain.changes import UNSET, Maybe

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Sent(Protocol[T_co]):
    """Strawberry's `Some`: a field the client sent, its value possibly null."""

    @property
    def value(self) -> T_co: ...


def given(maybe: Sent[T] | None) -> Maybe[T]:
    """A field that may be null (`strawberry.Maybe`): omitted is UNSET; sent, null included,
    is its value."""
    return UNSET if maybe is None else maybe.value


def unless_null(value: T | None) -> Maybe[T]:
    """A field that cannot be cleared: omitted or null leaves it unchanged."""
    return UNSET if value is None else value
