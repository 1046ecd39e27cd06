"""Our own JSON export read back: every branch through `parentId`, or the active branch of the
older export without it; a broken conversation reported on its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gql_chat.domain.clock import iso_utc
from gql_chat.domain.messages import MessageRole
from gql_chat.imports.gql_chat_json import parse_gql_chat_json
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedFile,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)

LIMITS = ImportLimits()
USER, ASSISTANT, SYSTEM = MessageRole.USER, MessageRole.ASSISTANT, MessageRole.SYSTEM
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def parse(document: object, limits: ImportLimits = LIMITS) -> list[ImportItem]:
    return list(parse_gql_chat_json(document, limits))


def exported(
    key: str,
    role: MessageRole,
    content: str,
    seconds: float,
    *,
    parent: str | None = None,
    linked: bool = True,
    reasoning: str | None = None,
    model: str | None = None,
    attachments: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A message as `exportConversation(format: JSON)` writes it (with `parentId` if linked)."""
    message: dict[str, Any] = {
        "id": key,
        "role": role.value,
        "content": content,
        "reasoning": reasoning,
        "attachments": [
            {"id": f"f{i}", "filename": name, "mediaType": "image/png", "size": 10}
            for i, name in enumerate(attachments)
        ],
        "status": "COMPLETE",
        "model": model,
        "createdAt": iso_utc(at(seconds)),
        "usage": None,
    }
    if linked:
        message["parentId"] = parent
    return message


def branched() -> dict[str, Any]:
    """A conversation with two edits of the first prompt and a regenerated reply, exported with
    every branch (parents first, siblings in the order they were written)."""
    return {
        "id": "c1",
        "title": "Round trip",
        "createdAt": iso_utc(at(0)),
        "updatedAt": iso_utc(at(60)),
        "activeLeafId": "a2",
        "messages": [
            exported("s", SYSTEM, "Be brief.", 0),
            exported("u1", USER, "Hi", 1, parent="s", attachments=("photo.png",)),
            exported("u2", USER, "Hello", 30, parent="s"),
            exported("a1", ASSISTANT, "Hey", 2, parent="u1", model="m/x"),
            exported("a2", ASSISTANT, "Hi!", 31, parent="u2", model="m/x", reasoning="Greet."),
            exported("a3", ASSISTANT, "Yo", 40, parent="u2", model="m/y"),
        ],
    }


def test_the_extended_export_round_trips_with_every_branch() -> None:
    (item,) = parse(branched())
    assert item == ImportedConversation(
        index=0,
        title="Round trip",
        created_at=at(0),
        updated_at=at(60),
        messages=(
            ImportedMessage("s", None, SYSTEM, "Be brief.", at(0)),
            ImportedMessage("u1", "s", USER, "Hi\n\n[attachment photo.png not imported]", at(1)),
            ImportedMessage("a1", "u1", ASSISTANT, "Hey", at(2), "m/x"),
            ImportedMessage("u2", "s", USER, "Hello", at(30)),
            ImportedMessage("a2", "u2", ASSISTANT, "Hi!", at(31), "m/x", "Greet."),
            ImportedMessage("a3", "u2", ASSISTANT, "Yo", at(40), "m/y"),
        ),
        active_leaf_key="a2",
        placeholders=1,
    )


def test_the_older_export_is_one_branch_in_order() -> None:
    document = {
        "id": "c1",
        "title": "Old",
        "createdAt": "2026-12-03T12:00:00.000Z",
        "messages": [
            exported("u", USER, "Hi", 1, linked=False, attachments=("a.pdf", "b.txt")),
            exported("a", ASSISTANT, "Hey", 2, linked=False, model="m"),
            exported("u2", USER, "More", 3, linked=False),
        ],
    }
    (item,) = parse(document)
    assert item == ImportedConversation(
        index=0,
        title="Old",
        created_at=T0,
        updated_at=None,
        messages=(
            ImportedMessage(
                "u",
                None,
                USER,
                "Hi\n\n[attachment a.pdf not imported]\n[attachment b.txt not imported]",
                at(1),
            ),
            ImportedMessage("a", "u", ASSISTANT, "Hey", at(2), "m"),
            ImportedMessage("u2", "a", USER, "More", at(3)),
        ),
        active_leaf_key="u2",
        placeholders=2,
    )


def test_without_an_active_leaf_the_newest_leaf_is_active() -> None:
    document = branched()
    document["activeLeafId"] = None
    (item,) = parse(document)
    assert isinstance(item, ImportedConversation)
    assert item.active_leaf_key == "a3"


def test_parents_may_come_after_their_children_in_the_file() -> None:
    document = branched()
    document["messages"].reverse()
    (item,) = parse(document)
    assert isinstance(item, ImportedConversation)
    assert {m.key: m.parent_key for m in item.messages} == {
        "s": None,
        "u1": "s",
        "u2": "s",
        "a1": "u1",
        "a2": "u2",
        "a3": "u2",
    }
    seen: set[str] = set()
    for m in item.messages:
        assert m.parent_key is None or m.parent_key in seen
        seen.add(m.key)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-03T12:00:00Z", T0),
        ("2026-12-03T13:00:00.123456+01:00", T0.replace(microsecond=123000)),
        ("2026-12-03T12:00:00", T0),  # no offset: UTC
    ],
)
def test_times_are_rfc3339_in_utc_to_the_millisecond(text: str, expected: datetime) -> None:
    document = branched()
    document["createdAt"] = text
    (item,) = parse(document)
    assert isinstance(item, ImportedConversation)
    assert item.created_at == expected
    assert item.created_at.tzinfo is UTC


# --- shapes of document --------------------------------------------------------------------


def test_a_conversation_an_array_and_an_archive_index_are_read() -> None:
    (single,) = parse(branched())
    assert isinstance(single, ImportedConversation)
    assert parse([branched(), branched()]) == [single, replace(single, index=1)]
    assert parse({"conversations": [branched()]}) == [single]


@pytest.mark.parametrize("document", [None, "x", 3, {}, {"id": "c1", "title": "no messages field"}])
def test_a_document_of_no_known_shape_raises_at_once(document: object) -> None:
    with pytest.raises(ValueError, match="not a gql_chat JSON export"):
        parse_gql_chat_json(document, LIMITS)


def test_an_archive_index_whose_conversations_are_not_an_array_raises() -> None:
    with pytest.raises(ValueError, match="`conversations` is not a JSON array"):
        parse_gql_chat_json({"conversations": {}}, LIMITS)


def test_too_many_conversations_raise_before_anything_is_read() -> None:
    with pytest.raises(ValueError, match="holds 2 conversations; at most 1 per import"):
        parse_gql_chat_json({"conversations": [branched(), 1]}, ImportLimits(max_conversations=1))


# --- broken conversations ------------------------------------------------------------------


def broken(change: Callable[[dict[str, Any]], object], limits: ImportLimits = LIMITS) -> str:
    """The error `branched()` gets once `change` has broken it; the next one is still read."""
    document = branched()
    change(document)
    tiny = {"title": "Tiny", "messages": [exported("m", USER, "Hi", 0, linked=False)]}
    first, second = parse([document, tiny], limits)
    assert isinstance(first, ConversationError)
    assert (first.index, first.title) == (0, "Round trip")
    assert isinstance(second, ImportedConversation)
    return first.message


def on(key: str, **fields: object) -> Callable[[dict[str, Any]], None]:
    """A change that sets fields of the message `key`."""

    def change(document: dict[str, Any]) -> None:
        (message,) = [m for m in document["messages"] if m["id"] == key]
        message.update(fields)

    return change


def test_broken_conversations_are_reported_one_by_one() -> None:
    assert broken(lambda d: d.update(messages={})) == "It has no `messages` array."
    assert broken(lambda d: d.update(messages=[])) == "It holds no messages."
    assert broken(lambda d: d["messages"].append("hi")) == "Message 7 is not a JSON object."
    assert broken(on("a3", id="")) == "Message 6 has no `id`."
    assert broken(on("a3", id="a2")) == "Two messages have the id 'a2'."
    assert broken(on("a3", parentId="zz")) == (
        "Message 'a3' names a parent 'zz' that is not in the conversation."
    )
    assert broken(on("a3", parentId=7)) == "Message 'a3' has a `parentId` that is not an id."
    assert broken(lambda d: d["messages"][5].pop("parentId")) == (
        "Message 'a3' has no `parentId`, while others of its conversation do."
    )
    assert broken(on("s", parentId="a1")) == "The parent links of its messages loop (a cycle)."
    assert broken(on("a3", role="assistant")) == (
        "Message 'a3' has no role USER, ASSISTANT or SYSTEM."
    )
    assert broken(on("a3", content=["x"])) == "Message 'a3' has a `content` that is not text."
    assert broken(on("a3", reasoning=1)) == "Message 'a3' has a `reasoning` that is not text."
    assert broken(on("a3", model=1)) == "Message 'a3' has a `model` that is not text."
    assert broken(on("a3", attachments="x")) == (
        "Message 'a3' has `attachments` that are not a JSON array."
    )
    assert broken(on("a3", createdAt="noon")) == (
        "The time of message 'a3' is not a valid time: 'noon'."
    )
    assert broken(on("a3", createdAt=5)) == "The time of message 'a3' is not a time string."
    assert broken(lambda d: d.update(createdAt="2026-13-01T00:00:00Z")) == (
        "Its `createdAt` is not a valid time: '2026-13-01T00:00:00Z'."
    )
    assert broken(lambda d: d.update(updatedAt="0001-01-01T00:00:00+01:00")) == (
        "Its `updatedAt` is not a valid time: '0001-01-01T00:00:00+01:00'."
    )
    assert broken(lambda d: d.update(activeLeafId="zz")) == (
        "Its `activeLeafId` names no message of it."
    )


def test_limits_break_a_conversation() -> None:
    assert broken(lambda d: None, ImportLimits(max_messages=5)) == (
        "The conversation holds more than 5 messages; at most 5 per conversation."
    )
    assert broken(on("a3", content="x" * 41), ImportLimits(max_message_chars=40)) == (
        "Message 'a3' has 41 characters; at most 40 per message."
    )
    assert broken(on("a3", reasoning="x" * 41), ImportLimits(max_message_chars=40)) == (
        "The reasoning of message 'a3' has 41 characters; at most 40 per message."
    )


def test_control_characters_and_odd_attachments_are_cleaned() -> None:
    document = branched()
    document["title"] = "Round\ntrip\x00"
    message = document["messages"][1]
    message["content"] = "Hi\x00\tthere"
    message["attachments"] = [{"filename": "a\nb.png"}, "odd", {}]
    (item,) = parse(document)
    assert isinstance(item, ImportedConversation)
    assert item.title == "Round trip"
    assert item.messages[1].content == (
        "Hi\tthere\n\n[attachment a b.png not imported]\n[attachment not imported]\n"
        "[attachment not imported]"
    )
    assert item.placeholders == 3


# --- generated trees -----------------------------------------------------------------------


TEXT = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\t\r\n"), max_size=20
)
"""Text the app stores as it is (no control characters but tab and line breaks)."""


@st.composite
def trees(draw: st.DrawFn) -> list[ImportedMessage]:
    """Messages of a random tree in an order where each comes after its parent."""
    size = draw(st.integers(1, 20))
    messages: list[ImportedMessage] = []
    for i in range(size):
        parent = draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None
        messages.append(
            ImportedMessage(
                key=f"id{i}",
                parent_key=None if parent is None else f"id{parent}",
                role=draw(st.sampled_from(MessageRole)),
                content=draw(TEXT),
                created_at=draw(
                    st.none()
                    | st.datetimes(
                        min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)
                    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))
                ),
                model=draw(st.none() | st.sampled_from(["a/b", "c"])),
                reasoning=draw(st.sampled_from(["", "why"])),
            )
        )
    return messages


def to_json(message: ImportedMessage) -> dict[str, Any]:
    return {
        "id": message.key,
        "parentId": message.parent_key,
        "role": message.role.value,
        "content": message.content,
        "reasoning": message.reasoning or None,
        "attachments": [],
        "status": "COMPLETE",
        "model": message.model,
        "createdAt": iso_utc(message.created_at) if message.created_at else None,
        "usage": None,
    }


@settings(max_examples=100, deadline=None)
@given(messages=trees(), data=st.data())
def test_generated_trees_round_trip(messages: list[ImportedMessage], data: st.DataObject) -> None:
    active = data.draw(st.sampled_from([m.key for m in messages]))
    document = {"title": "T", "activeLeafId": active, "messages": [to_json(m) for m in messages]}
    (item,) = parse([document])
    assert isinstance(item, ImportedConversation)
    assert sorted(item.messages, key=lambda m: m.key) == sorted(messages, key=lambda m: m.key)
    seen: set[str] = set()
    for m in item.messages:
        assert m.parent_key is None or m.parent_key in seen
        seen.add(m.key)
    assert item.active_leaf_key == active


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
MESSAGES = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["a", "b", "c"]) | JSON,
        "parentId": st.sampled_from(["a", "b", "c"]) | JSON,
        "role": st.sampled_from(["USER", "ASSISTANT", "SYSTEM"]) | JSON,
        "content": st.text() | JSON,
        "reasoning": JSON,
        "model": JSON,
        "attachments": JSON,
        "createdAt": st.sampled_from(["2026-12-03T12:00:00Z"]) | JSON,
    },
)
SHAPED = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGES | JSON, max_size=5) | JSON},
    optional={
        "title": JSON,
        "activeLeafId": st.sampled_from(["a", "b", "c"]) | JSON,
        "createdAt": JSON,
        "updatedAt": JSON,
    },
)


@settings(max_examples=200, deadline=None)
@given(document=JSON | SHAPED | st.lists(SHAPED | JSON, max_size=4))
def test_any_json_gives_one_item_per_conversation_or_a_value_error(document: object) -> None:
    if isinstance(document, dict) and "conversations" in document:
        listed = document["conversations"]
    elif isinstance(document, dict) and "messages" in document:
        listed = [document]
    else:
        listed = document
    if not isinstance(listed, list):
        with pytest.raises(ValueError, match=r"not a gql_chat JSON export|not a JSON array"):
            parse(document)
        return
    items = parse(document)
    assert [item.index for item in items] == list(range(len(listed)))


def test_with_files_at_hand_attachments_are_listed_instead_of_noted() -> None:
    """An account archive holds the files' bytes: the messages list them by id."""
    message = exported("u", USER, "Hi", 1, linked=False, attachments=("a.pdf", "b/c.txt"))
    conversation: dict[str, Any] = {
        "title": "Files",
        "createdAt": iso_utc(at(0)),
        "messages": [message],
    }
    [item] = parse_gql_chat_json(conversation, ImportLimits(), with_files=True)
    assert isinstance(item, ImportedConversation)
    [imported] = item.messages
    assert imported.content == "Hi"
    assert imported.files == (ImportedFile("f0", "a.pdf"), ImportedFile("f1", "b/c.txt"))
    assert item.placeholders == 0
    message["attachments"] = [{"filename": "x.png"}]
    [error] = parse_gql_chat_json(conversation, ImportLimits(), with_files=True)
    assert isinstance(error, ConversationError)
    assert "without an `id`" in error.message
