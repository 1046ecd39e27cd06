"""Model patterns: `*` globbing checked against a regular-expression model of it, on generated
patterns and model ids, and the parsing of the settings' lists."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gql_chat.domain.model_access import (
    MAX_PATTERNS,
    check_patterns,
    matches,
    parse_patterns,
)

ALPHABET = "ab/:*"  # few letters, so that generated patterns and ids often overlap


def reference(pattern: str, model: str) -> bool:
    return (
        re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), model) is not None
    )


@given(st.text(ALPHABET, max_size=12), st.text(ALPHABET.replace("*", ""), max_size=16))
def test_matching_agrees_with_a_regular_expression(pattern: str, model: str) -> None:
    assert matches(pattern, model) is reference(pattern, model)


@pytest.mark.parametrize(
    ("pattern", "model", "expected"),
    [
        ("openai/*", "openai/gpt-4o-mini", True),
        ("openai/*", "openai", False),
        ("*:free", "meta-llama/llama-3.1-8b-instruct:free", True),
        ("*:free", "meta-llama/llama-3.1-8b-instruct", False),
        ("anthropic/claude-*-sonnet", "anthropic/claude-3.5-sonnet", True),
        ("*", "", True),
        ("openai/gpt-4o", "openai/gpt-4o-mini", False),
    ],
)
def test_examples(pattern: str, model: str, expected: bool) -> None:
    assert matches(pattern, model) is expected


def test_many_stars_do_not_backtrack_exponentially() -> None:
    """A regex engine takes exponential time on this; the matcher, at most 200 x 200 steps."""
    assert not matches("*a" * 100 + "b", "a" * 200)


def test_settings_lists_are_split_on_commas_and_spaces_and_deduplicated() -> None:
    assert parse_patterns(" openai/*, *:free  openai/* ").patterns == ("openai/*", "*:free")
    assert parse_patterns("").patterns == ()
    assert not parse_patterns("").allows("openai/gpt-4o")


@pytest.mark.parametrize(
    "patterns", [[""], ["a b"], ["a,b"], ["x" * 201], [f"m{i}" for i in range(MAX_PATTERNS + 1)]]
)
def test_bad_patterns_are_refused(patterns: list[str]) -> None:
    with pytest.raises(ValueError, match="pattern"):
        check_patterns(patterns)
