"""`UNSET` carries "not given" through partial updates: services tell it apart from None (clear
the field) and from every real value, and it must stay one object through copies."""

from __future__ import annotations

import copy
import pickle
from dataclasses import dataclass

import pytest

from gql_chat.domain.changes import UNSET, Maybe, Unset


@dataclass(frozen=True)
class Changes:
    """The shape services use: every field defaults to UNSET."""

    name: Maybe[str] = UNSET
    note: Maybe[str | None] = UNSET


def applied(stored: dict[str, str | None], changes: Changes) -> dict[str, str | None]:
    """How a service applies changes: UNSET keeps the stored value, anything else replaces it."""
    result = dict(stored)
    if changes.name is not UNSET:
        result["name"] = changes.name
    if changes.note is not UNSET:
        result["note"] = changes.note
    return result


def test_unset_is_falsy_and_reads_as_unset() -> None:
    assert not UNSET
    assert bool(UNSET) is False
    assert repr(UNSET) == "UNSET"
    assert isinstance(UNSET, Unset)


@pytest.mark.parametrize("value", [None, 0, "", False, [], "UNSET"])
def test_unset_is_distinct_from_every_other_value(value: object) -> None:
    """Falsy like None or "", yet never equal to them: `is not UNSET` is the only safe test."""
    assert value is not UNSET
    assert value != UNSET


def test_unset_survives_copies_and_pickling_as_the_same_object() -> None:
    assert copy.copy(UNSET) is UNSET
    assert copy.deepcopy(UNSET) is UNSET
    assert pickle.loads(pickle.dumps(UNSET)) is UNSET
    assert copy.deepcopy(Changes()).name is UNSET


def test_maybe_keeps_apart_not_given_none_and_a_value() -> None:
    stored: dict[str, str | None] = {"name": "old", "note": "kept"}
    assert applied(stored, Changes()) == stored
    assert applied(stored, Changes(note=None)) == {"name": "old", "note": None}
    assert applied(stored, Changes(name="", note="n")) == {"name": "", "note": "n"}
