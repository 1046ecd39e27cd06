"""Input limits through the API: the length of free-text filters, and control characters in
names, titles and prompts (refused with BAD_USER_INPUT and the field, nothing written)."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gql_chat.services.validation import MAX_SEARCH_LENGTH
from tests.support import (
    GraphQLClient,
    SignedIn,
    create_conversation,
    create_folder,
    create_preset,
    unique_email,
)

CONVERSATIONS = """query($s: String) {
    conversations(search: $s, archived: null) { totalCount edges { node { title } } } }"""
CREATE_FOLDER = "mutation($input: CreateFolderInput!) { createFolder(input: $input) { id } }"
UPDATE_FOLDER = """mutation($id: ID!, $input: UpdateFolderInput!) {
    updateFolder(id: $id, input: $input) { id } }"""
CREATE_CONVERSATION = """mutation($input: CreateConversationInput!) {
    createConversation(input: $input) { id } }"""
UPDATE_CONVERSATION = """mutation($id: ID!, $input: UpdateConversationInput!) {
    updateConversation(id: $id, input: $input) { id } }"""
CREATE_PRESET = "mutation($input: CreateLlmConfigInput!) { createLlmConfig(input: $input) { id } }"
UPDATE_PRESET = """mutation($id: ID!, $input: UpdateLlmConfigInput!) {
    updateLlmConfig(id: $id, input: $input) { id } }"""
UPDATE_PROFILE = """mutation($input: UpdateProfileInput!) {
    updateProfile(input: $input) { displayName } }"""
REGISTER = "mutation($input: RegisterInput!) { register(input: $input) { accessToken } }"
SNAPSHOT = """{
    me { displayName }
    folders { name parent { id } }
    conversations(archived: null) { edges { node { title pinned } } }
    llmConfigs { name model systemPrompt } }"""

# Each field's refusals: one a line, so that a failure names the character.
NAME_REFUSALS = ["a\x00b", "a\tb", "line\nbreak", "\x07", "a\x7fb", "a\x85b", "a\u2028b", "x\r"]


def assert_bad_input(result: Any, field: str) -> None:
    assert result.error_codes == ["BAD_USER_INPUT"], result.errors
    assert result.errors[0]["extensions"]["field"] == field


# --- search ---------------------------------------------------------------------------


async def test_search_is_at_most_200_characters(alice: SignedIn) -> None:
    await create_conversation(alice, title="x" * 200)
    at_limit = await alice.ok(CONVERSATIONS, {"s": "x" * MAX_SEARCH_LENGTH})
    assert at_limit["conversations"]["totalCount"] == 1
    over = await alice.execute(CONVERSATIONS, {"s": "x" * (MAX_SEARCH_LENGTH + 1)})
    assert_bad_input(over, "search")
    assert "200" in over.errors[0]["message"]


async def test_a_huge_search_is_refused_before_any_scan(alice: SignedIn) -> None:
    """900 KB of search text used to hold the event loop for most of a second per request."""
    for index in range(3):
        await create_conversation(alice, title=f"conversation {index}")
    result = await alice.execute(CONVERSATIONS, {"s": "a" * 900_000})
    assert_bad_input(result, "search")


# --- control characters: one test per field --------------------------------------------


@pytest.mark.parametrize("bad", NAME_REFUSALS)
async def test_folder_names_refuse_control_characters(alice: SignedIn, bad: str) -> None:
    assert_bad_input(await alice.execute(CREATE_FOLDER, {"input": {"name": bad}}), "name")
    folder_id = await create_folder(alice, "Plain")
    renamed = await alice.execute(UPDATE_FOLDER, {"id": folder_id, "input": {"name": bad}})
    assert_bad_input(renamed, "name")
    assert [f["name"] for f in (await alice.ok(SNAPSHOT))["folders"]] == ["Plain"]


@pytest.mark.parametrize("bad", NAME_REFUSALS)
async def test_conversation_titles_refuse_control_characters(alice: SignedIn, bad: str) -> None:
    created = await alice.execute(CREATE_CONVERSATION, {"input": {"title": bad}})
    assert_bad_input(created, "title")
    conversation_id = await create_conversation(alice, title="Plain")
    renamed = await alice.execute(
        UPDATE_CONVERSATION, {"id": conversation_id, "input": {"title": bad, "pinned": True}}
    )
    assert_bad_input(renamed, "title")
    [edge] = (await alice.ok(SNAPSHOT))["conversations"]["edges"]
    assert edge["node"] == {"title": "Plain", "pinned": False}


@pytest.mark.parametrize("field", ["name", "model"])
@pytest.mark.parametrize("bad", NAME_REFUSALS)
async def test_preset_names_and_models_refuse_control_characters(
    alice: SignedIn, field: str, bad: str
) -> None:
    valid = {"name": "Plain", "model": "openai/gpt-4o-mini"}
    created = await alice.execute(CREATE_PRESET, {"input": {**valid, field: bad}})
    assert_bad_input(created, field)
    preset_id = await create_preset(alice, "Plain")
    updated = await alice.execute(
        UPDATE_PRESET, {"id": preset_id, "input": {field: bad, "temperature": 1.5}}
    )
    assert_bad_input(updated, field)
    assert (await alice.ok(SNAPSHOT))["llmConfigs"] == [{**valid, "systemPrompt": None}]


@pytest.mark.parametrize("bad", ["a\x00b", "\x1b[31mred", "a\x0bb", "a\x0cb", "a\x9bb"])
async def test_system_prompts_refuse_control_characters_but_tab_and_line_breaks(
    alice: SignedIn, bad: str
) -> None:
    valid = {"name": "Plain", "model": "openai/gpt-4o-mini"}
    created = await alice.execute(CREATE_PRESET, {"input": {**valid, "systemPrompt": bad}})
    assert_bad_input(created, "systemPrompt")
    prose = "Rules:\n\t1. Be brief.\r\n\t2. Be kind.\u2028Thanks \U0001f469\u200d\U0001f4bb"
    preset_id = await create_preset(alice, "Plain", systemPrompt=prose)
    updated = await alice.execute(UPDATE_PRESET, {"id": preset_id, "input": {"systemPrompt": bad}})
    assert_bad_input(updated, "systemPrompt")
    assert (await alice.ok(SNAPSHOT))["llmConfigs"][0]["systemPrompt"] == prose


@pytest.mark.parametrize("bad", NAME_REFUSALS)
async def test_display_names_refuse_control_characters(
    gql: GraphQLClient, alice: SignedIn, bad: str
) -> None:
    registered = await gql.execute(
        REGISTER,
        {"input": {"email": unique_email(), "password": "long enough pw", "displayName": bad}},
    )
    assert_bad_input(registered, "displayName")
    before = (await alice.ok(SNAPSHOT))["me"]
    updated = await alice.execute(UPDATE_PROFILE, {"input": {"displayName": bad}})
    assert_bad_input(updated, "displayName")
    assert (await alice.ok(SNAPSHOT))["me"] == before


@pytest.mark.parametrize("bad", ["ada\x00@example.com", "ada@exa\x7fmple.com", "a\x9b@ex.com"])
async def test_emails_refuse_control_characters(gql: GraphQLClient, bad: str) -> None:
    registered = await gql.execute(
        REGISTER, {"input": {"email": bad, "password": "long enough pw"}}
    )
    assert_bad_input(registered, "email")


async def test_names_keep_format_characters_and_trim_spaces(alice: SignedIn) -> None:
    """Emoji sequences (zero-width joiner), ZWNJ and bidi marks are text, not control."""
    name = "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u200f"
    folder_id = await create_folder(alice, f"  {name}  ")
    folder = await alice.ok("query($id: ID!) { folder(id: $id) { name } }", {"id": folder_id})
    assert folder["folder"]["name"] == name.strip()


async def test_a_refused_folder_update_changes_nothing(alice: SignedIn) -> None:
    """The name is checked before the move is written (and the move before the name)."""
    parent = await create_folder(alice, "Parent")
    child = await create_folder(alice, "Child")
    bad_name = await alice.execute(
        UPDATE_FOLDER, {"id": child, "input": {"name": "a\x00", "parentId": parent}}
    )
    assert_bad_input(bad_name, "name")
    inner = await create_folder(alice, "Inner", child)
    bad_move = await alice.execute(
        UPDATE_FOLDER, {"id": child, "input": {"name": "Renamed", "parentId": inner}}
    )
    assert_bad_input(bad_move, "parentId")
    folders = {f["name"]: f for f in (await alice.ok(SNAPSHOT))["folders"]}
    assert set(folders) == {"Parent", "Child", "Inner"}
    assert folders["Child"]["parent"] is None


# Lone surrogates cannot travel in JSON (the server refuses the body with a 400); the rule for
# them is covered in tests/services/test_validation.py.
API_CHARACTERS = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(["\x00", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"]),
    st.sampled_from([" ", "\u200d", "\u202e", "\ufeff"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.text(alphabet=API_CHARACTERS, min_size=1, max_size=12))
async def test_a_folder_name_is_accepted_iff_it_has_no_forbidden_character(
    alice: SignedIn, name: str
) -> None:
    forbidden = any(unicodedata.category(c) in {"Cc", "Cs", "Zl", "Zp"} for c in name)
    result = await alice.execute(CREATE_FOLDER, {"input": {"name": name}})
    if forbidden:
        assert_bad_input(result, "name")
    elif not name.strip():
        assert_bad_input(result, "name")  # blank: the length rule
    else:
        folder_id = result.ok()["createFolder"]["id"]
        stored = await alice.ok("query($id: ID!) { folder(id: $id) { name } }", {"id": folder_id})
        assert stored["folder"]["name"] == name.strip()


# --- messages, admin search, profile ------------------------------------------------------

SEND = """mutation($input: SendMessageInput!) {
    sendMessage(input: $input) { conversation { id } } }"""
USERS = "query($s: String) { users(search: $s) { totalCount } }"


@pytest.mark.parametrize("bad", ["a\x00b", "bell\x07", "a\x7fb"])
async def test_message_content_refuses_control_characters_but_keeps_line_breaks(
    alice: SignedIn, bad: str
) -> None:
    conversation = await create_conversation(alice, title="Chat")
    for fields in ({}, {"conversationId": conversation}):
        result = await alice.execute(SEND, {"input": {"content": bad, **fields}})
        assert_bad_input(result, "content")
    ok = await alice.execute(SEND, {"input": {"content": "tab\there\r\nand line", **fields}})
    assert not ok.errors, ok.errors
    titles = await alice.ok(CONVERSATIONS, {"s": None})
    assert titles["conversations"]["totalCount"] == 1  # the refused sends created nothing


async def test_models_and_client_message_ids_refuse_control_characters(alice: SignedIn) -> None:
    model = await alice.execute(SEND, {"input": {"content": "hi", "model": "a\x00b"}})
    assert_bad_input(model, "model")
    key = await alice.execute(SEND, {"input": {"content": "hi", "clientMessageId": "k\x00"}})
    assert_bad_input(key, "clientMessageId")


async def test_the_admin_user_search_is_bounded(admin: SignedIn) -> None:
    assert (await admin.ok(USERS, {"s": "x" * MAX_SEARCH_LENGTH}))["users"]["totalCount"] == 0
    over = await admin.execute(USERS, {"s": "x" * (MAX_SEARCH_LENGTH + 1)})
    assert_bad_input(over, "search")


async def test_a_refused_profile_update_leaves_the_default_preset_alone(alice: SignedIn) -> None:
    preset = await create_preset(alice)
    result = await alice.execute(
        UPDATE_PROFILE, {"input": {"displayName": "a\x00b", "defaultLlmConfigId": preset}}
    )
    assert_bad_input(result, "displayName")
    configs = await alice.ok("{ llmConfigs { id isDefault } }")
    assert configs["llmConfigs"] == [{"id": preset, "isDefault": False}]
