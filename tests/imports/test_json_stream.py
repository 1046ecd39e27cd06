"""`decode` reads exactly what `json.loads` reads (a top-level array element by element), and
refuses what it refuses."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.imports.json_stream import decode, elements

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=JSON_VALUES, indent=st.sampled_from([None, 0, 2]))
def test_decodes_what_json_loads_decodes(value: object, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    assert decode(text.encode(), 10_000) == json.loads(text)
    assert decode(f" \n{text}\n ".encode(), 10_000) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        "[1, 2",
        "[1 2]",
        "[1,]",
        "[1] x",
        "[",
        "",
        "{",
        "[1],[2]",
        "\xff",
        '{"a": 1,}',
        '{"a" 1}',
        "{1: 2}",
        '[{"a": [1,]}]',
        "[[[[[1]]]]",
    ],
)
def test_refuses_what_is_not_json(text: str) -> None:
    data = text.encode("latin-1") if text == "\xff" else text.encode()
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError or UnicodeDecodeError
        decode(data, 10)


def test_an_array_over_the_limit_is_refused_before_the_rest_is_read() -> None:
    with pytest.raises(ValueError, match="more than 2 conversations"):
        decode(b"[1, 2, 3, {not json at all", 2)
    assert decode(b"[1, 2]", 2) == [1, 2]


def test_a_byte_order_mark_is_allowed() -> None:
    assert decode("\ufeff[1]".encode(), 5) == [1]


def test_nesting_past_the_decoders_reach_is_a_value_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(ValueError, match="nests JSON deeper"):
        decode(deep, 10)


def test_elements_are_decoded_as_they_are_asked_for() -> None:
    values = elements(b'[{"a": 1}, [2], 3, {broken', 10)
    assert values is not None
    assert [next(values), next(values), next(values)] == [{"a": 1}, [2], 3]
    with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError
        next(values)
    assert elements(b' {"messages": []}', 10) is None


def test_containers_past_the_entry_limit_fail_early() -> None:
    with pytest.raises(ValueError, match="more than 3 entries"):
        decode(b'{"messages": [{}, {}, {}, {}]}', 10, max_entries=3)
    with pytest.raises(ValueError, match="more than 3 entries"):
        decode(b'[{"a": 1, "b": 2, "c": 3, "d": 4}]', 10, max_entries=3)
    assert decode(b'[{"a": [1, 2, 3]}, 2, 3, 4]', 10, max_entries=3) == [{"a": [1, 2, 3]}, 2, 3, 4]
