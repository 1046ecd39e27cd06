"""`parse_object_id` turns any client string into an ObjectId or None, never an exception, so a
malformed id answers NOT_FOUND like an id that matches nothing."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.ids import parse_object_id


def test_none_and_object_ids_pass_through() -> None:
    oid = ObjectId()
    assert parse_object_id(None) is None
    assert parse_object_id(oid) is oid


SEEDED = settings(derandomize=True, deadline=None)
"""Hypothesis, deterministic: the same examples every run; no deadline on a busy machine."""


@SEEDED
@given(raw=st.binary(min_size=12, max_size=12))
def test_hex_round_trips(raw: bytes) -> None:
    oid = ObjectId(raw)
    assert parse_object_id(str(oid)) == oid
    assert parse_object_id(str(oid).upper()) == oid


@pytest.mark.parametrize(
    "value",
    [
        "",
        "0",
        "abc",
        "g" * 24,
        "0" * 23,
        "0" * 25,
        " " + "0" * 23,
        "0" * 24 + "\n",
        "abcdefghijkl",  # 12 characters: bytes would be an id, a str must not be
        "\uff10" * 24,  # full-width digits
        "null",
    ],
)
def test_malformed_strings_are_none(value: str) -> None:
    assert parse_object_id(value) is None


@pytest.mark.parametrize("value", [12, 1.5, ["0" * 24], {"$oid": "0" * 24}])
def test_values_of_other_types_are_none_not_an_error(value: Any) -> None:
    """GraphQL scalars are strings, but a JSON body can carry anything."""
    assert parse_object_id(value) is None


@SEEDED
@given(text=st.text(max_size=40))
def test_any_text_parses_to_none_or_the_id_it_spells(text: str) -> None:
    parsed = parse_object_id(text)
    assert parsed is None or str(parsed) == text.lower()
