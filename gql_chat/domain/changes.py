"""Partial updates: a field left `UNSET` keeps its stored value; None, where a field allows it,
clears it. The api turns GraphQL's omitted-versus-null into this, so services never see
GraphQL's shapes."""

from __future__ import annotations

import enum
from typing import Final, TypeAlias, TypeVar

T = TypeVar("T")


class Unset(enum.Enum):
    UNSET = "UNSET"

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET
Maybe: TypeAlias = T | Unset
"""`Maybe[int | None]`: an int, an explicit None, or not given."""
