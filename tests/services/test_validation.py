"""The character rule for names and prose, against Unicode's own categories."""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gql_chat.domain.characters import forbidden_character
from gql_chat.errors import BadUserInput
from gql_chat.services.validation import check_prose, check_text

NAME_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}
PROSE_ALLOWED = {"\t", "\n", "\r"}


def forbidden_in_name(character: str) -> bool:
    return unicodedata.category(character) in NAME_CATEGORIES


def forbidden_in_prose(character: str) -> bool:
    return unicodedata.category(character) in {"Cc", "Cs"} and character not in PROSE_ALLOWED


# Any code point, surrogates included, with the interesting ones drawn often.
CHARACTERS = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.sampled_from(["\x00", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "\x9f", "\u2028"]),
    st.sampled_from(["\u2029", "\ud800", "\udfff", "\u200d", "\u200c", "\u202e", "\ufeff"]),
)
TEXTS = st.text(alphabet=CHARACTERS, max_size=40)


def test_the_classes_are_exactly_the_unicode_categories() -> None:
    """Every code point: the fast character classes agree with `unicodedata`."""
    for code_point in range(sys.maxunicode + 1):
        character = chr(code_point)
        assert (forbidden_character(character) is not None) == forbidden_in_name(character)
        assert (forbidden_character(character, prose=True) is not None) == forbidden_in_prose(
            character
        )


@given(TEXTS)
@example("Family \U0001f468\u200d\U0001f469\u200d\U0001f467")
@example("tab\there")
@example("\ud83d")  # half of an emoji's surrogate pair: no encoder can store it
def test_a_name_is_accepted_iff_it_has_no_forbidden_character(text: str) -> None:
    if any(forbidden_in_name(c) for c in text):
        with pytest.raises(BadUserInput) as raised:
            check_text(text, "name", 0, 10_000, "Name")
        assert raised.value.extensions == {"code": "BAD_USER_INPUT", "field": "name"}
    else:
        cleaned = check_text(text, "name", 0, 10_000, "Name")
        assert cleaned == text.strip()
        cleaned.encode()  # storable: valid UTF-8


@given(TEXTS)
@example("line one\r\nline two\n\tindented")
@example("nul\x00")
def test_prose_is_accepted_iff_it_has_no_forbidden_character(text: str) -> None:
    if any(forbidden_in_prose(c) for c in text):
        with pytest.raises(BadUserInput) as raised:
            check_prose(text, "content", "A message")
        assert raised.value.field == "content"
    else:
        assert check_prose(text, "content", "A message") == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a\x00b", "Name must not contain control characters (found U+0000)."),
        ("a\u2028", "Name must not contain control characters (found U+2028)."),
    ],
)
def test_the_message_names_the_character(text: str, message: str) -> None:
    with pytest.raises(BadUserInput) as raised:
        check_text(text, "name", 1, 100, "Name")
    assert raised.value.message == message
