"""ChatGPT's `conversations.json` read into conversation trees: every branch kept, skipped nodes
bridged, what we cannot represent noted, a broken conversation reported on its own."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.characters import forbidden_character
from gql_chat.domain.messages import MessageRole
from gql_chat.imports.chatgpt import parse_chatgpt
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)
from gql_chat.imports.text import clean_name, clean_prose
from tests.imports.generated import chatgpt_export

FIXTURE = Path(__file__).parent / "fixtures" / "chatgpt_small.json"
LIMITS = ImportLimits()
USER, ASSISTANT, SYSTEM = MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def parse(document: object, limits: ImportLimits = LIMITS) -> list[ImportItem]:
    return list(parse_chatgpt(document, limits))


def conversations(items: list[ImportItem]) -> list[ImportedConversation]:
    found = [item for item in items if isinstance(item, ImportedConversation)]
    assert found == items, [item for item in items if isinstance(item, ConversationError)]
    return found


def message(key: str, parent: str | None, role: MessageRole, text: str) -> dict[str, Any]:
    """A node of a ChatGPT mapping holding a plain text message."""
    return {
        "id": key,
        "parent": parent,
        "children": [],
        "message": {
            "id": key,
            "author": {"role": role.value.lower()},
            "create_time": None,
            "content": {"content_type": "text", "parts": [text]},
            "metadata": {},
        },
    }


def chain(length: int) -> dict[str, Any]:
    """A conversation that is one branch of `length` messages, keyed m0, m1, ..."""
    mapping = {
        f"m{i}": message(f"m{i}", f"m{i - 1}" if i else None, (USER, ASSISTANT)[i % 2], f"t{i}")
        for i in range(length)
    }
    return {"title": "Chain", "mapping": mapping, "current_node": f"m{length - 1}"}


# --- the hand-made fixture -----------------------------------------------------------------


def test_the_small_fixture_reads_exactly_as_expected() -> None:
    items = parse(json.loads(FIXTURE.read_text()))
    assert items == [
        ImportedConversation(
            index=0,
            title="Branching chat",
            created_at=at(1700000000),
            updated_at=at(1700000021.25),
            messages=(
                # The hidden system message under the empty root is skipped: u1 is a root.
                ImportedMessage("u1", None, USER, "Hello", at(1700000000)),
                ImportedMessage("a1", "u1", ASSISTANT, "Hi there", at(1700000001.5), "gpt-4o"),
                # Two branches from a1, the older first; the active one is not the newest.
                ImportedMessage("u2", "a1", USER, "Tell me a joke", at(1700000010)),
                ImportedMessage("a2", "u2", ASSISTANT, "Joke A", at(1700000011), "gpt-4o-mini"),
                ImportedMessage("u2b", "a1", USER, "Tell me a pun", at(1700000020)),
                ImportedMessage("a2b", "u2b", ASSISTANT, "Pun B", at(1700000021.25), "gpt-4o"),
            ),
            active_leaf_key="a2",
            placeholders=0,
        ),
        ImportedConversation(
            index=1,
            title="Image question",  # the line break became a space
            created_at=at(1700001000),
            updated_at=None,
            messages=(
                ImportedMessage("s1", None, SYSTEM, "You are terse.", None),
                ImportedMessage(
                    "u1",
                    "s1",
                    USER,
                    "[image not imported]\n\nWhat is in this picture?",
                    at(1700001000),
                ),
                ImportedMessage(
                    "a1", "u1", ASSISTANT, "```python\nprint(1)\n```", at(1700001001), "gpt-4o"
                ),
                ImportedMessage(
                    "t1",
                    "a1",
                    ASSISTANT,
                    "[tool output from python not imported]",
                    at(1700001002),
                ),
                # The thoughts and the recap are skipped; the thoughts are the answer's reasoning,
                # the bell character is gone, and the empty reply below it is skipped.
                ImportedMessage(
                    "a2",
                    "t1",
                    ASSISTANT,
                    "A cat.",
                    at(1700001005),
                    "o3",
                    reasoning="**Looking**\n\nIt is a cat.",
                ),
            ),
            active_leaf_key="a2",  # current_node e1 is skipped: its nearest kept ancestor
            placeholders=2,  # the image and the tool output
        ),
        ConversationError(2, "Broken mapping", "It has no `mapping` object of messages."),
        ConversationError(3, "Loop", "The parent links of its messages loop (a cycle)."),
        ConversationError(4, None, "It holds no messages."),
        ConversationError(5, None, "It is not a JSON object."),
        ImportedConversation(
            index=6,
            title="Imported conversation",
            created_at=None,  # "yesterday" is no time
            updated_at=None,
            messages=(
                ImportedMessage("q", None, USER, "Which is better?", at(1700005000)),
                ImportedMessage(
                    "b2", "q", ASSISTANT, "The first answer.", at(1700005001), "gpt-4o"
                ),
                ImportedMessage(
                    "b1", "q", ASSISTANT, "The second answer.", at(1700005002), "gpt-4o"
                ),
            ),
            active_leaf_key="b1",  # no current_node: the newest leaf
            placeholders=0,
        ),
        ConversationError(7, "Odd part", "Message 'm' has a part that is not text."),
    ]


# --- documents that are no export ----------------------------------------------------------


@pytest.mark.parametrize("document", [{}, {"conversations": []}, "text", None, 3])
def test_a_document_that_is_not_an_array_raises_at_once(document: object) -> None:
    with pytest.raises(ValueError, match="not a ChatGPT export"):
        parse_chatgpt(document, LIMITS)  # not iterated: the call itself refuses


def test_too_many_conversations_raise_before_anything_is_read() -> None:
    with pytest.raises(ValueError, match="holds 3 conversations; at most 2 per import"):
        parse_chatgpt([chain(1), chain(1), "broken"], ImportLimits(max_conversations=2))


def test_an_empty_array_yields_nothing() -> None:
    assert parse([]) == []


# --- nodes and contents --------------------------------------------------------------------


def test_a_ten_thousand_deep_chain_is_read_without_recursion() -> None:
    depth = max(10_000, sys.getrecursionlimit() + 1)
    (conversation,) = conversations(parse([chain(depth)]))
    assert [m.key for m in conversation.messages] == [f"m{i}" for i in range(depth)]
    assert conversation.active_leaf_key == f"m{depth - 1}"


def test_the_mapping_order_does_not_change_the_result() -> None:
    document = chatgpt_export(5, seed=7)
    reversed_maps = [{**c, "mapping": dict(reversed(list(c["mapping"].items())))} for c in document]
    assert parse(document) == parse(reversed_maps)


def test_a_part_of_an_unknown_kind_and_an_unknown_content_type_become_notes() -> None:
    conversation = chain(2)
    conversation["mapping"]["m0"]["message"]["content"] = {
        "content_type": "multimodal_text",
        "parts": [
            "Listen:",
            {"content_type": "audio_transcription", "text": "hello there"},
            {"content_type": "audio_asset_pointer", "asset_pointer": "sediment://x"},
            {"content_type": "some_new_part"},
        ],
    }
    conversation["mapping"]["m1"]["message"]["content"] = {
        "content_type": "tether_browsing_display",
        "result": "...",
    }
    (imported,) = conversations(parse([conversation]))
    assert [m.content for m in imported.messages] == [
        "Listen:\n\nhello there\n\n[audio not imported]\n\n[some new part not imported]",
        "[tether browsing display not imported]",
    ]
    assert imported.placeholders == 3


def test_a_message_of_an_unknown_role_is_kept_as_a_note() -> None:
    conversation = chain(2)
    conversation["mapping"]["m1"]["message"]["author"] = {"role": "critic"}
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[1].role is ASSISTANT
    assert imported.messages[1].content == "[critic message not imported]"
    assert imported.placeholders == 1


def test_thoughts_that_reach_no_assistant_message_are_counted_and_dropped() -> None:
    conversation = chain(2)
    mapping = conversation["mapping"]
    thoughts = message("th", "m1", ASSISTANT, "")
    thoughts["message"]["content"] = {
        "content_type": "thoughts",
        "thoughts": [{"summary": "Hmm", "content": "Stopped here."}],
    }
    mapping["th"] = thoughts  # a leaf: the user stopped the reply while it thought
    mapping["u"] = message("u", "m1", USER, "next")
    (imported,) = conversations(parse([conversation]))
    assert [m.key for m in imported.messages] == ["m0", "m1", "u"]
    assert all(m.reasoning == "" for m in imported.messages)
    assert imported.placeholders == 1


def test_thoughts_in_a_row_join_in_order() -> None:
    conversation = chain(1)
    mapping = conversation["mapping"]
    for key, parent, text in (("t1", "m0", "first"), ("t2", "t1", "second")):
        node = message(key, parent, ASSISTANT, "")
        node["message"]["content"] = {"content_type": "thoughts", "thoughts": [{"content": text}]}
        mapping[key] = node
    mapping["a"] = message("a", "t2", ASSISTANT, "answer")
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[-1] == ImportedMessage(
        "a", "m0", ASSISTANT, "answer", None, reasoning="first\n\nsecond"
    )
    assert imported.placeholders == 0


def test_thoughts_over_many_replies_are_kept_once() -> None:
    """Regenerated replies below one thoughts node: its text goes to the first, not to each
    (copied, 240 KB of thoughts over 4,000 replies took 1.9 GB)."""
    conversation = chain(1)
    mapping = conversation["mapping"]
    node = message("t", "m0", ASSISTANT, "")
    node["message"]["content"] = {"content_type": "thoughts", "thoughts": [{"content": "x" * 99}]}
    mapping["t"] = node
    for i in range(50):
        mapping[f"a{i:02}"] = message(f"a{i:02}", "t", ASSISTANT, f"answer {i}")
    (imported,) = conversations(parse([conversation]))
    replies = [m for m in imported.messages if m.role is ASSISTANT]
    assert len(replies) == 50
    assert sum(len(m.reasoning) for m in replies) == 99
    assert imported.placeholders == 0


def test_code_with_backticks_gets_a_longer_fence() -> None:
    conversation = chain(1)
    conversation["mapping"]["m0"]["message"]["author"] = {"role": "assistant"}
    conversation["mapping"]["m0"]["message"]["content"] = {
        "content_type": "code",
        "language": "unknown",
        "text": "x = '```'",
    }
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[0].content == "````\nx = '```'\n````"


def test_an_invalid_current_node_falls_back_to_the_newest_leaf() -> None:
    conversation = chain(3)
    conversation["mapping"]["m2"]["message"]["create_time"] = 5.0
    conversation["mapping"]["side"] = message("side", "m0", ASSISTANT, "older")
    conversation["mapping"]["side"]["message"]["create_time"] = 4.0
    for current in ("nowhere", 42, None):
        conversation["current_node"] = current
        (imported,) = conversations(parse([conversation]))
        assert imported.active_leaf_key == "m2"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300, True, "1700000000", -1e20])
def test_a_time_that_is_no_unix_time_is_none(value: object) -> None:
    conversation = chain(1)
    conversation["mapping"]["m0"]["message"]["create_time"] = value
    conversation["create_time"] = value
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[0].created_at is None
    assert imported.created_at is None


def test_times_keep_milliseconds() -> None:
    conversation = chain(1)
    conversation["mapping"]["m0"]["message"]["create_time"] = 1700000000.1234567
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[0].created_at == datetime(2023, 11, 14, 22, 13, 20, 123000, UTC)


# --- titles and control characters --------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("  Plans\tfor\r\n2026 \x00 ", "Plans for 2026"),
        ("", "Imported conversation"),
        ("\x01\x02 ", "Imported conversation"),
        (None, "Imported conversation"),
        (["a list"], "Imported conversation"),
        ("x" * 300, "x" * 200),
        ("word " * 50, ("word " * 40).strip()),
    ],
)
def test_titles_are_cleaned_cut_and_defaulted(title: object, expected: str) -> None:
    conversation = chain(1)
    conversation["title"] = title
    (imported,) = conversations(parse([conversation]))
    assert imported.title == expected


def test_control_characters_are_removed_from_text_but_tabs_and_breaks_stay() -> None:
    conversation = chain(1)
    conversation["mapping"]["m0"]["message"]["content"]["parts"] = ["a\x00b\tc\r\nd\x1b[0m\ud800"]
    (imported,) = conversations(parse([conversation]))
    assert imported.messages[0].content == "ab\tc\r\nd[0m"


def test_cleaning_agrees_with_the_apps_character_rules() -> None:
    for code in [*range(0x0, 0x3000), *range(0xD7F0, 0xE010), 0xFEFF, 0x10FFFF]:
        char = chr(code)
        assert (clean_prose(char) == "") == (forbidden_character(char, prose=True) is not None)
        if forbidden_character(char) is None:
            assert clean_name(f"a{char}b") == f"a{char}b"
        else:
            assert forbidden_character(clean_name(f"a{char}b")) is None


# --- broken conversations ------------------------------------------------------------------


def broken(change: Callable[[dict[str, Any]], object], limits: ImportLimits = LIMITS) -> str:
    """The error a chain of three messages gets once `change` has broken it; the conversation
    after it is still read."""
    conversation = chain(3)
    change(conversation)
    first, second = parse([conversation, chain(2)], limits)
    assert isinstance(first, ConversationError)
    assert first.index == 0
    assert isinstance(second, ImportedConversation)
    assert second.index == 1
    return first.message


def test_broken_conversations_are_reported_one_by_one() -> None:
    def set_node(key: str, value: object) -> Callable[[dict[str, Any]], None]:
        return lambda c: c["mapping"].__setitem__(key, value)

    def set_message(field: str, value: object) -> Callable[[dict[str, Any]], None]:
        return lambda c: c["mapping"]["m1"]["message"].__setitem__(field, value)

    def set_parts(value: object) -> Callable[[dict[str, Any]], None]:
        return lambda c: c["mapping"]["m1"]["message"]["content"].__setitem__("parts", value)

    assert broken(lambda c: c.pop("mapping")) == "It has no `mapping` object of messages."
    assert broken(set_node("m1", [])) == "Node 'm1' is not a JSON object."
    assert broken(set_node("m1", {"parent": 3})) == "Node 'm1' has a `parent` that is not an id."
    assert broken(set_node("m1", {"message": "hi"})) == (
        "Node 'm1' has a `message` that is no object."
    )
    assert broken(lambda c: c["mapping"]["m0"].update(parent="ghost")) == (
        "Message 'm0' names a parent 'ghost' that is not in the conversation."
    )
    assert broken(lambda c: c["mapping"]["m1"].update(parent="m1")) == (
        "The parent links of its messages loop (a cycle)."
    )
    assert broken(set_message("author", "user")) == "Message 'm1' has no author role."
    assert broken(set_message("content", "hello")) == "Message 'm1' has no content type."
    assert broken(set_parts("hello")) == "Message 'm1' has no list of parts."
    assert broken(set_parts([None])) == "Message 'm1' has a part that is not text."
    assert broken(set_parts([{"content_type": "image_asset_pointer"}])) == (
        "Message 'm1' has a part that is not text."  # objects belong in multimodal_text only
    )
    assert broken(set_message("content", {"content_type": "code", "text": 3})) == (
        "The code of message 'm1' is not a string."
    )


def test_limits_break_a_conversation() -> None:
    assert broken(lambda c: None, ImportLimits(max_messages=2)) == (
        "The conversation holds more than 2 messages; at most 2 per conversation."
    )
    long_text = "x" * 11
    assert (
        broken(
            lambda c: c["mapping"]["m1"]["message"]["content"].update(parts=[long_text]),
            ImportLimits(max_message_chars=10),
        )
        == "Message 'm1' has 11 characters; at most 10 per message."
    )


def test_a_long_key_is_cut_in_an_error_message() -> None:
    conversation = chain(1)
    key = "k" * 100
    conversation["mapping"][key] = {"parent": None, "message": 1}
    (error,) = parse([conversation])
    assert error == ConversationError(
        0, "Chain", f"Node {'k' * 40 + '…'!r} has a `message` that is no object."
    )


# --- generated exports ---------------------------------------------------------------------


def test_two_thousand_generated_conversations_are_all_read() -> None:
    items = parse(chatgpt_export(2000, seed=1))
    assert len(conversations(items)) == 2000
    assert [item.index for item in items] == list(range(2000))


def is_kept(node: dict[str, Any]) -> bool:
    """Whether a node of a generated export is one we keep (the generator's kinds of node)."""
    message = node["message"]
    if message is None or message["metadata"].get("is_visually_hidden_from_conversation"):
        return False
    content = message["content"]
    if content["content_type"] in ("thoughts", "reasoning_recap"):
        return False
    return content["content_type"] != "text" or any(p.strip() for p in content["parts"])


def kept_ancestor(mapping: dict[str, Any], key: str | None) -> str | None:
    while key is not None and not is_kept(mapping[key]):
        key = mapping[key]["parent"]
    return key


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_generated_exports_keep_every_kept_node_under_its_kept_ancestor(seed: int) -> None:
    document = chatgpt_export(4, seed)
    for source, imported in zip(document, conversations(parse(document)), strict=True):
        mapping = source["mapping"]
        keys = [m.key for m in imported.messages]
        assert set(keys) == {key for key, node in mapping.items() if is_kept(node)}
        seen: set[str] = set()
        for m in imported.messages:
            assert m.parent_key is None or m.parent_key in seen
            assert m.parent_key == kept_ancestor(mapping, mapping[m.key]["parent"])
            seen.add(m.key)
        assert imported.active_leaf_key == kept_ancestor(mapping, source["current_node"])


# --- generated trees -----------------------------------------------------------------------

KINDS = ("user", "assistant", "system", "hidden", "empty", "root")
"""Kinds of node: the first three are kept, the others bridged."""


@st.composite
def trees(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A ChatGPT conversation of random shape, and each kept node's expected parent."""
    size = draw(st.integers(1, 40))
    parents: list[int | None] = [
        draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None for i in range(size)
    ]
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=size, max_size=size))
    times = draw(st.lists(st.one_of(st.none(), st.floats(0, 2e9)), min_size=size, max_size=size))
    order = draw(st.permutations(range(size)))
    nodes = {i: _node(i, parents[i], kinds[i], times[i]) for i in range(size)}
    mapping = {f"n{i}": nodes[i] for i in order}
    current = draw(st.one_of(st.none(), st.sampled_from(sorted(mapping))))
    expected: dict[str, str | None] = {}
    for i in range(size):
        if kinds[i] in KINDS[:3]:
            up = parents[i]
            while up is not None and kinds[up] not in KINDS[:3]:
                up = parents[up]
            expected[f"n{i}"] = None if up is None else f"n{up}"
    return {"title": "t", "mapping": mapping, "current_node": current}, expected


def _node(i: int, parent: int | None, kind: str, time: float | None) -> dict[str, Any]:
    node: dict[str, Any] = {"parent": None if parent is None else f"n{parent}", "children": []}
    if kind == "root":
        node["message"] = None
        return node
    role = {"user": "user", "assistant": "assistant"}.get(kind, "system")
    text = "" if kind == "empty" else f"text {i}"
    node["message"] = {
        "author": {"role": role},
        "create_time": time,
        "content": {"content_type": "text", "parts": [text]},
        "metadata": {"is_visually_hidden_from_conversation": kind == "hidden"},
    }
    return node


@settings(max_examples=200, deadline=None)
@given(tree=trees())
def test_every_kept_node_comes_after_its_nearest_kept_ancestor(
    tree: tuple[dict[str, Any], dict[str, str | None]],
) -> None:
    conversation, expected = tree
    (item,) = parse([conversation])
    if not expected:
        assert item == ConversationError(0, "t", "It holds no messages.")
        return
    assert isinstance(item, ImportedConversation)
    assert {m.key: m.parent_key for m in item.messages} == expected
    seen: set[str] = set()
    for m in item.messages:
        assert m.parent_key is None or m.parent_key in seen
        seen.add(m.key)
    current = conversation["current_node"]
    while current is not None and current not in expected:
        current = conversation["mapping"][current]["parent"]
    leaves = {m.key for m in item.messages} - {m.parent_key for m in item.messages}
    assert item.active_leaf_key == current or (current is None and item.active_leaf_key in leaves)


# --- anything at all -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
NODES = (
    st.fixed_dictionaries(
        {},
        optional={
            "parent": st.sampled_from(["a", "b", "c"]) | JSON,
            "message": st.fixed_dictionaries(
                {},
                optional={
                    "author": st.fixed_dictionaries(
                        {"role": st.sampled_from(["user", "tool", "assistant"]) | JSON}
                    )
                    | JSON,
                    "content": st.fixed_dictionaries(
                        {
                            "content_type": st.sampled_from(
                                ["text", "multimodal_text", "code", "thoughts"]
                            )
                            | JSON
                        },
                        optional={
                            "parts": st.lists(JSON | st.text()),
                            "text": JSON,
                            "thoughts": JSON,
                        },
                    )
                    | JSON,
                    "metadata": JSON,
                    "create_time": JSON,
                },
            )
            | JSON,
        },
    )
    | JSON
)
SHAPED = st.fixed_dictionaries(
    {},
    optional={
        "title": JSON,
        "mapping": st.dictionaries(st.sampled_from(["a", "b", "c"]), NODES) | JSON,
        "current_node": st.sampled_from(["a", "b", "c"]) | JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(document=JSON | st.lists(SHAPED | JSON, max_size=4))
def test_any_json_gives_one_item_per_conversation_or_a_value_error(document: object) -> None:
    if not isinstance(document, list):
        with pytest.raises(ValueError, match="not a ChatGPT export"):
            parse(document)
        return
    items = parse(document)
    assert [item.index for item in items] == list(range(len(document)))
    for item in items:
        if isinstance(item, ImportedConversation):
            assert item.messages
            assert forbidden_character(item.title) is None
            assert all(forbidden_character(m.content, prose=True) is None for m in item.messages)
