"""Conversations: defaults, updates with explicit nulls, filters, search and keyset paging."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId
from starlette.applications import Starlette

from gql_chat.api.conversations import ConversationType
from gql_chat.services.folders import FolderService
from tests.support import SignedIn, create_conversation, create_folder, create_preset

GET = """query($id: ID!) { conversation(id: $id) {
    id title pinned archived folder { id } llmConfig { id } lastMessageAt createdAt updatedAt } }"""
UPDATE = """mutation($id: ID!, $input: UpdateConversationInput!) {
    updateConversation(id: $id, input: $input) {
        title pinned archived folder { id } llmConfig { id } } }"""
LIST = """query($first: Int, $after: String, $folderId: ID, $pinned: Boolean, $archived: Boolean,
        $search: String) {
    conversations(first: $first, after: $after, folderId: $folderId, pinned: $pinned,
                  archived: $archived, search: $search) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id title } } } }"""


async def listed(user: SignedIn, **variables: Any) -> dict[str, Any]:
    data: dict[str, Any] = (await user.ok(LIST, variables))["conversations"]
    return data


def ids(connection: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


async def test_create_with_defaults_and_relations(alice: SignedIn) -> None:
    plain = await create_conversation(alice)
    data = (await alice.ok(GET, {"id": plain}))["conversation"]
    assert data["title"] == "New conversation"
    assert (data["pinned"], data["archived"], data["folder"], data["llmConfig"]) == (
        False,
        False,
        None,
        None,
    )
    assert data["lastMessageAt"] is None
    folder = await create_folder(alice, "F")
    preset = await create_preset(alice)
    filed = await create_conversation(alice, title=" Plans ", folderId=folder, llmConfigId=preset)
    data = (await alice.ok(GET, {"id": filed}))["conversation"]
    assert data["title"] == "Plans"
    assert data["folder"] == {"id": folder}
    assert data["llmConfig"] == {"id": preset}


async def test_titles_are_checked(alice: SignedIn) -> None:
    for bad in ("", "   ", "t" * 201):
        result = await alice.execute(
            "mutation($t: String) { createConversation(input: {title: $t}) { id } }", {"t": bad}
        )
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}
    conversation = await create_conversation(alice)
    result = await alice.execute(UPDATE, {"id": conversation, "input": {"title": ""}})
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "title"}


async def test_update_tells_omitted_from_null(alice: SignedIn) -> None:
    folder = await create_folder(alice, "F")
    preset = await create_preset(alice)
    conversation = await create_conversation(alice, folderId=folder, llmConfigId=preset)

    renamed = (await alice.ok(UPDATE, {"id": conversation, "input": {"title": "Renamed"}}))[
        "updateConversation"
    ]
    assert renamed["folder"] == {"id": folder}
    assert renamed["llmConfig"] == {"id": preset}

    flags = await alice.ok(
        UPDATE, {"id": conversation, "input": {"pinned": True, "archived": True}}
    )
    assert flags["updateConversation"]["pinned"] is True
    assert flags["updateConversation"]["archived"] is True

    cleared = (
        await alice.ok(
            UPDATE, {"id": conversation, "input": {"folderId": None, "llmConfigId": None}}
        )
    )["updateConversation"]
    assert cleared["folder"] is None
    assert cleared["llmConfig"] is None
    assert cleared["title"] == "Renamed"

    refiled = await alice.ok(
        UPDATE, {"id": conversation, "input": {"folderId": folder, "llmConfigId": preset}}
    )
    assert refiled["updateConversation"]["folder"] == {"id": folder}
    nothing = await alice.ok(UPDATE, {"id": conversation, "input": {}})
    assert nothing["updateConversation"]["title"] == "Renamed"


async def test_delete_removes_the_conversation_and_its_messages(
    alice: SignedIn, app: Starlette
) -> None:
    conversation = await create_conversation(alice)
    messages = app.state.services.database.db["messages"]
    await messages.insert_one(
        {
            "owner_id": ObjectId(alice.user_id),
            "conversation_id": ObjectId(conversation),
            "content": "hi",
        }
    )
    assert await alice.ok(
        "mutation($id: ID!) { deleteConversation(id: $id) }", {"id": conversation}
    )
    assert (await alice.execute(GET, {"id": conversation})).error_codes == ["NOT_FOUND"]
    assert await messages.count_documents({"conversation_id": ObjectId(conversation)}) == 0


async def test_filters_and_order(alice: SignedIn) -> None:
    folder = await create_folder(alice, "F")
    first = await create_conversation(alice, title="first")
    second = await create_conversation(alice, title="second", folderId=folder)
    third = await create_conversation(alice, title="third")
    await alice.ok(UPDATE, {"id": third, "input": {"pinned": True}})
    archived = await create_conversation(alice, title="old")
    await alice.ok(UPDATE, {"id": archived, "input": {"archived": True}})

    assert ids(await listed(alice)) == [third, second, first]
    assert ids(await listed(alice, folderId=folder)) == [second]
    assert ids(await listed(alice, pinned=True)) == [third]
    assert ids(await listed(alice, pinned=False)) == [second, first]
    assert ids(await listed(alice, archived=True)) == [archived]
    every = await listed(alice, archived=None)
    assert every["totalCount"] == 4


async def test_search_matches_titles_and_messages_literally(
    alice: SignedIn, app: Starlette
) -> None:
    plain = await create_conversation(alice, title="Trip to Lisbon")
    regexy = await create_conversation(alice, title="Costs (.*) [draft]+")
    by_message = await create_conversation(alice, title="Untitled")
    await app.state.services.database.db["messages"].insert_one(
        {
            "owner_id": ObjectId(alice.user_id),
            "conversation_id": ObjectId(by_message),
            "content": "We should visit LISBON in May",
        }
    )
    assert set(ids(await listed(alice, search="lisbon"))) == {plain, by_message}
    assert ids(await listed(alice, search="(.*) [draft]+")) == [regexy]
    for hostile in (".*", "[", "(?i)", "a{1000000}", "^$", "\\"):
        result = await listed(alice, search=hostile)
        literal_match = hostile in "Costs (.*) [draft]+"
        assert ids(result) == ([regexy] if literal_match else []), hostile
    assert (await listed(alice, search="   "))["totalCount"] == 3


async def test_keyset_pages_survive_inserts_between_pages(alice: SignedIn) -> None:
    originals = {await create_conversation(alice, title=f"c{i}") for i in range(45)}
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await listed(alice, first=20, after=after)
        seen.extend(ids(page))
        pages += 1
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        await create_conversation(alice, title="newcomer")  # lands before every cursor
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert pages == 3
    assert sorted(seen) == sorted(originals)


async def test_page_size_and_cursor_validation(alice: SignedIn) -> None:
    for _ in range(3):
        await create_conversation(alice)
    assert len(ids(await listed(alice))) == 3
    empty = await listed(alice, first=0)
    assert empty["edges"] == []
    assert empty["totalCount"] == 3
    assert empty["pageInfo"]["startCursor"] is None
    for first in (101, -1):
        result = await alice.execute(LIST, {"first": first})
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "first"}
    for cursor in ("garbage!", "eyJ4IjoxfQ", "WzFd"):
        result = await alice.execute(LIST, {"after": cursor})
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "after"}


async def test_a_page_reads_its_folders_and_presets_up_front(
    alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows resolve `folder` and `llmConfig` from one read per page, through named and inline
    fragments too; only a conversation outside a page loads its own."""
    folder = await create_folder(alice, "Work")
    preset = await create_preset(alice, "Fast")
    for _ in range(3):
        await create_conversation(alice, folderId=folder, llmConfigId=preset)
    row_loads: list[str] = []
    load_folder, load_preset = ConversationType._load_folder, ConversationType._load_preset

    def counting(name: str, load: Any) -> Any:
        def wrapper(self: ConversationType, *args: Any) -> Any:
            row_loads.append(name)
            return load(self, *args)

        return wrapper

    monkeypatch.setattr(ConversationType, "_load_folder", counting("folder", load_folder))
    monkeypatch.setattr(ConversationType, "_load_preset", counting("preset", load_preset))
    page = await alice.ok(
        """{ conversations { edges { node { folder { name } }
                                     ... on ConversationEdge { node { ...preset } } } } }
        fragment preset on Conversation { llmConfig { name } }"""
    )
    nodes = [edge["node"] for edge in page["conversations"]["edges"]]
    assert nodes == [{"folder": {"name": "Work"}, "llmConfig": {"name": "Fast"}}] * 3
    assert row_loads == []
    one = await alice.ok(GET, {"id": (await listed(alice))["edges"][0]["node"]["id"]})
    assert (one["conversation"]["folder"], one["conversation"]["llmConfig"]) == (
        {"id": folder},
        {"id": preset},
    )
    assert row_loads == ["folder", "preset"]


async def test_a_pages_folders_serve_the_rest_of_its_request(
    alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page's one read of its folders is primed into the request's loader: a conversation
    asked for beside the page finds its folder there instead of reading it again."""
    folder = await create_folder(alice, "Work")
    conversation = await create_conversation(alice, folderId=folder)
    reads: list[list[ObjectId]] = []
    get_many = FolderService.get_many

    async def counting(self: FolderService, owner_id: ObjectId, ids: list[ObjectId]) -> Any:
        reads.append(ids)
        return await get_many(self, owner_id, ids)

    monkeypatch.setattr(FolderService, "get_many", counting)
    data = await alice.ok(
        """query($id: ID!) {
            conversations { edges { node { folder { name } } } }
            conversation(id: $id) { folder { name } }
        }""",
        {"id": conversation},
    )
    assert data["conversations"]["edges"] == [{"node": {"folder": {"name": "Work"}}}]
    assert data["conversation"] == {"folder": {"name": "Work"}}
    assert reads == [[ObjectId(folder)]]
