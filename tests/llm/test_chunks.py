"""Chunks read strictly: every shape a provider or proxy may send either gives text and usage
that can be stored and shown, or is a malformed stream; never a value that fails later."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_chat.llm.chunks import (
    MAX_REPORTED_COST,
    delta_reasoning,
    delta_text,
    first_choice,
    parse_usage,
)
from gql_chat.llm.errors import MalformedStream
from gql_chat.llm.types import TokenUsage

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@pytest.mark.parametrize(
    ("chunk", "text"),
    [
        ({"choices": [{"delta": {"content": "hi"}}]}, "hi"),
        ({"choices": [{"delta": {}}]}, ""),
        ({"choices": [{"delta": {"content": None}}]}, ""),
        ({"choices": []}, ""),
        ({"usage": {}}, ""),
        (
            {
                "choices": [
                    {
                        "delta": {
                            "content": [
                                {"type": "text", "text": "a"},
                                {"type": "text", "text": "b"},
                            ]
                        }
                    }
                ]
            },
            "ab",
        ),
        ({"choices": [{"delta": {"content": [{"type": "image_url", "image_url": {}}]}}]}, ""),
    ],
)
def test_text_comes_from_strings_and_text_parts(chunk: dict[str, Any], text: str) -> None:
    assert delta_text(first_choice(chunk)) == text


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": "x"},
        {"choices": [1]},
        {"choices": [{"delta": "str"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"content": ["a"]}}]},
        {"choices": [{"delta": {"content": {"type": "text", "text": "hi"}}}]},
        {"choices": [{"delta": {"content": [{"type": "text", "text": 5}]}}]},
    ],
)
def test_any_other_shape_is_a_malformed_stream(chunk: dict[str, Any]) -> None:
    with pytest.raises(MalformedStream):
        delta_text(first_choice(chunk))


@given(JSON)
def test_whatever_arrives_is_text_or_a_malformed_stream(content: Any) -> None:
    try:
        text = delta_text(first_choice({"choices": [{"delta": {"content": content}}]}))
    except MalformedStream:
        return
    assert isinstance(text, str)


@pytest.mark.parametrize(
    ("raw", "usage"),
    [
        (
            {"prompt_tokens": 12, "completion_tokens": 4, "cost": 0.00042},
            TokenUsage(12, 4, 0.00042),
        ),
        ({"prompt_tokens": 12.0, "completion_tokens": None}, TokenUsage(12, 0, None)),
        ({}, TokenUsage(0, 0, None)),
        ({"prompt_tokens": 3_000_000_000, "completion_tokens": 1}, None),
        ({"prompt_tokens": 1e30}, None),
        ({"prompt_tokens": -5}, None),
        ({"prompt_tokens": 1.5}, None),
        ({"prompt_tokens": "12"}, None),
        ({"prompt_tokens": True}, None),
        ({"cost": "NaN"}, None),
        ({"cost": float("inf")}, None),
        ({"cost": -1}, None),
        ({"cost": 1.5e308}, None),
        ({"cost": 1_000_000.0}, TokenUsage(0, 0, 1_000_000.0)),
        (
            {"completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": 7}},
            TokenUsage(0, 9, None, reasoning_tokens=7),
        ),
        # A reasoning count that is not believable is dropped; the rest of the report stands.
        (
            {"completion_tokens": 9, "completion_tokens_details": {"reasoning_tokens": -1}},
            TokenUsage(0, 9, None),
        ),
        ({"completion_tokens_details": "x"}, TokenUsage(0, 0, None)),
        ("str", None),
    ],
)
def test_only_believable_usage_is_kept(raw: Any, usage: TokenUsage | None) -> None:
    assert parse_usage(raw) == usage


@given(JSON)
def test_kept_usage_fits_a_graphql_int_and_a_finite_cost(raw: Any) -> None:
    usage = parse_usage(raw)
    if usage is None:
        return
    assert 0 <= usage.prompt_tokens < 2**31
    assert 0 <= usage.completion_tokens < 2**31
    assert usage.reasoning_tokens is None or 0 <= usage.reasoning_tokens < 2**31
    assert usage.cost is None or 0 <= usage.cost <= MAX_REPORTED_COST


def reasoning_of(delta: Any) -> str:
    return delta_reasoning(first_choice({"choices": [{"delta": delta}]}))


@pytest.mark.parametrize(
    ("delta", "reasoning"),
    [
        ({"reasoning": "hmm"}, "hmm"),
        # OpenRouter sends the text twice: in `reasoning` and in `reasoning_details`.
        (
            {"reasoning": "hmm", "reasoning_details": [{"type": "reasoning.text", "text": "hmm"}]},
            "hmm",
        ),
        ({"reasoning_details": [{"type": "reasoning.text", "text": "a"}]}, "a"),
        ({"reasoning_details": [{"type": "reasoning.summary", "summary": "s"}]}, "s"),
        ({"reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}, ""),
        ({"reasoning_details": [{"type": "reasoning.text", "text": None}]}, ""),
        ({"reasoning_details": [{"type": "later.kind", "text": 5}]}, ""),
        ({"reasoning_details": [{"type": ["reasoning.text"], "text": "a"}]}, ""),
        ({"reasoning": None, "content": "answer"}, ""),
        ({"reasoning": ""}, ""),
        ({}, ""),
        (None, ""),
    ],
)
def test_reasoning_comes_from_reasoning_or_its_readable_details(delta: Any, reasoning: str) -> None:
    assert reasoning_of(delta) == reasoning


@pytest.mark.parametrize(
    "delta",
    [
        {"reasoning": 5},
        {"reasoning": ["a"]},
        {"reasoning_details": "a"},
        {"reasoning_details": ["a"]},
        {"reasoning_details": [{"type": "reasoning.text", "text": 5}]},
        "not a delta",
    ],
)
def test_reasoning_of_any_other_shape_is_a_malformed_stream(delta: Any) -> None:
    with pytest.raises(MalformedStream):
        reasoning_of(delta)


@given(JSON, JSON)
def test_whatever_reasoning_arrives_is_text_or_a_malformed_stream(
    reasoning: Any, details: Any
) -> None:
    try:
        text = reasoning_of({"reasoning": reasoning, "reasoning_details": details})
    except MalformedStream:
        return
    assert isinstance(text, str)
