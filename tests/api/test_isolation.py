"""Isolation matrix: another user's ids behave exactly like unknown or malformed ids."""

from __future__ import annotations

from typing import Any

import bson
from bson import ObjectId
from starlette.applications import Starlette

from tests.support import SignedIn, create_conversation, create_folder, create_preset

OWNED_COLLECTIONS = ("folders", "conversations", "llm_configs", "messages")


async def snapshot(app: Starlette, user: SignedIn) -> dict[str, list[bytes]]:
    """Every stored document of the user, as BSON bytes."""
    db = app.state.services.database.db
    owner = ObjectId(user.user_id)
    result: dict[str, list[bytes]] = {}
    for name in OWNED_COLLECTIONS:
        docs = await db[name].find({"owner_id": owner}).sort("_id", 1).to_list(None)
        result[name] = [bson.encode(doc) for doc in docs]
    user_doc = await db["users"].find_one({"_id": owner})
    result["users"] = [bson.encode(user_doc)]
    return result


def operations(
    folder: str, conversation: str, preset: str, own_folder: str, own_conversation: str
) -> list[tuple[str, dict[str, Any]]]:
    """(document, variables) pairs; `$target` is the id under test."""
    return [
        ("query($t: ID!) { folder(id: $t) { id } }", {}),
        ("query($t: ID!) { conversation(id: $t) { id } }", {}),
        ("query($t: ID!) { llmConfig(id: $t) { id } }", {}),
        ("query($t: ID!) { conversations(folderId: $t) { totalCount } }", {}),
        ('mutation($t: ID!) { createFolder(input: {name: "x", parentId: $t}) { id } }', {}),
        ('mutation($t: ID!) { updateFolder(id: $t, input: {name: "x"}) { id } }', {}),
        (
            "mutation($t: ID!, $o: ID!) { updateFolder(id: $o, input: {parentId: $t}) { id } }",
            {"o": own_folder},
        ),
        ("mutation($t: ID!) { deleteFolder(id: $t) }", {}),
        ("mutation($t: ID!) { deleteFolder(id: $t, deleteContents: true) }", {}),
        ("mutation($t: ID!) { createConversation(input: {folderId: $t}) { id } }", {}),
        ("mutation($t: ID!) { createConversation(input: {llmConfigId: $t}) { id } }", {}),
        ('mutation($t: ID!) { updateConversation(id: $t, input: {title: "x"}) { id } }', {}),
        (
            "mutation($t: ID!, $o: ID!) { updateConversation(id: $o, input: {folderId: $t}) { id } }",
            {"o": own_conversation},
        ),
        (
            "mutation($t: ID!, $o: ID!) { updateConversation(id: $o, input: {llmConfigId: $t}) { id } }",
            {"o": own_conversation},
        ),
        ("mutation($t: ID!) { deleteConversation(id: $t) }", {}),
        ('mutation($t: ID!) { updateLlmConfig(id: $t, input: {name: "x"}) { id } }', {}),
        ("mutation($t: ID!) { updateLlmConfig(id: $t, input: {isDefault: true}) { id } }", {}),
        ("mutation($t: ID!) { deleteLlmConfig(id: $t) }", {}),
        ("mutation($t: ID!) { updateProfile(input: {defaultLlmConfigId: $t}) { id } }", {}),
    ]


def target_kind(document: str) -> str:
    """Which of Alice's resources an operation's `$t` names."""
    if "llmConfig" in document.lower() or "LlmConfig" in document:
        return "preset"
    if "Conversation(id: $t" in document or "conversation(id" in document:
        return "conversation"
    return "folder"


async def test_foreign_ids_answer_not_found_and_change_nothing(
    app: Starlette, alice: SignedIn, bob: SignedIn
) -> None:
    top = await create_folder(alice, "Private")
    await create_folder(alice, "Inner", top)
    preset = await create_preset(alice, "Secret preset", isDefault=True)
    conversation = await create_conversation(alice, title="Diary", folderId=top, llmConfigId=preset)
    await app.state.services.database.db["messages"].insert_one(
        {
            "owner_id": ObjectId(alice.user_id),
            "conversation_id": ObjectId(conversation),
            "content": "x",
        }
    )
    own_folder = await create_folder(bob, "Bob's")
    own_conversation = await create_conversation(bob)
    before = await snapshot(app, alice)

    targets = {"folder": top, "conversation": conversation, "preset": preset}
    for document, extra in operations(top, conversation, preset, own_folder, own_conversation):
        kind = target_kind(document)
        answers = []
        for target in (targets[kind], str(ObjectId()), "not-an-object-id"):
            result = await bob.execute(document, {"t": target, **extra})
            assert result.error_codes == ["NOT_FOUND"], (document, target, result.body)
            answers.append(result.errors[0]["message"])
        assert len(set(answers)) == 1, (document, answers)

    listed = await bob.ok("{ conversations(archived: null) { edges { node { id } } } }")
    assert [e["node"]["id"] for e in listed["conversations"]["edges"]] == [own_conversation]
    assert [f["id"] for f in (await bob.ok("{ folders { id } }"))["folders"]] == [own_folder]
    assert (await bob.ok("{ llmConfigs { id } }"))["llmConfigs"] == []
    assert (await bob.ok("{ me { defaultLlmConfig { id } } }"))["me"]["defaultLlmConfig"] is None
    assert (await bob.ok('{ conversations(search: "diary") { totalCount } }'))["conversations"][
        "totalCount"
    ] == 0

    assert await snapshot(app, alice) == before
