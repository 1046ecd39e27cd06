"""`deleteMessage`: the message and its subtree go, the active branch moves to the nearest one
left, a reply still being written blocks it, and the usage rollups keep the deleted replies."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageNode
from gql_chat.domain.trees import leaf_after_removal, path_to, subtree_of
from tests.conftest import make_settings
from tests.support import SignedIn, final_message, send_message

DELETE = """mutation($id: ID!) { deleteMessage(messageId: $id) {
    id messageCount messages(first: 10) { edges { node { id } } } } }"""
USAGE = "{ usageSummary(groupBy: MODEL) { key messages promptTokens completionTokens } }"


@pytest.fixture
def settings() -> Settings:
    return make_settings(offline_token_delay=0.01)


def ids(conversation: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in conversation["messages"]["edges"]]


async def test_deleting_a_branch_moves_to_the_nearest_one_and_keeps_usage(
    alice: SignedIn,
) -> None:
    sent = await send_message(alice, "first")
    conversation = sent["conversation"]["id"]
    question, reply = sent["userMessage"]["id"], sent["assistantMessage"]["id"]
    await final_message(alice, reply)
    second = await send_message(alice, "second", conversationId=conversation)
    await final_message(alice, second["assistantMessage"]["id"])
    edited = (
        await alice.ok(
            """mutation($id: ID!) { editMessage(messageId: $id, content: "first, again") {
                userMessage { id } assistantMessage { id } } }""",
            {"id": question},
        )
    )["editMessage"]
    await final_message(alice, edited["assistantMessage"]["id"])
    usage_before = (await alice.ok(USAGE))["usageSummary"]

    # The active branch is the edit: deleting it goes back to the first question's branch.
    after = (await alice.ok(DELETE, {"id": edited["userMessage"]["id"]}))["deleteMessage"]
    assert ids(after) == [
        question,
        reply,
        second["userMessage"]["id"],
        second["assistantMessage"]["id"],
    ]
    # A reply in the middle: it and everything below go; the branch ends at its question.
    after = (await alice.ok(DELETE, {"id": reply}))["deleteMessage"]
    assert ids(after) == [question]
    assert after["messageCount"] == 1
    missing = await alice.execute(
        "query($id: ID!) { message(id: $id) { id } }", {"id": second["userMessage"]["id"]}
    )
    assert missing.error_codes == ["NOT_FOUND"]
    assert (await alice.ok(USAGE))["usageSummary"] == usage_before  # billing kept
    after = (await alice.ok(DELETE, {"id": question}))["deleteMessage"]
    assert (ids(after), after["messageCount"]) == ([], 0)


async def test_a_reply_being_written_blocks_the_delete(alice: SignedIn, bob: SignedIn) -> None:
    sent = await send_message(alice, " ".join(["word"] * 400))  # streams for a while
    result = await alice.execute(DELETE, {"id": sent["userMessage"]["id"]})
    assert result.error_codes == ["CONFLICT"]
    await final_message(alice, sent["assistantMessage"]["id"])
    assert (await bob.execute(DELETE, {"id": sent["userMessage"]["id"]})).error_codes == [
        "NOT_FOUND"
    ]
    await alice.ok(DELETE, {"id": sent["userMessage"]["id"]})


@st.composite
def trees(draw: st.DrawFn) -> list[MessageNode]:
    conversation = ObjectId()
    nodes: list[MessageNode] = []
    for _ in range(draw(st.integers(1, 25))):
        parent = draw(st.sampled_from([None, *[n.id for n in nodes]])) if nodes else None
        nodes.append(MessageNode(ObjectId(), conversation, parent))
    return nodes


@hypothesis_settings(derandomize=True, deadline=None, max_examples=150)
@given(nodes=trees(), seed=st.integers(0, 10_000))
def test_after_removing_a_subtree_the_active_leaf_is_a_leaf_that_is_left(
    nodes: list[MessageNode], seed: int
) -> None:
    target = random.Random(seed).choice(nodes)
    removed = set(subtree_of(nodes, target.id))
    # Exactly the target's descendants: every removed node's path runs through the target.
    for node in nodes:
        assert (node.id in removed) == (target.id in path_to(nodes, node.id))
    remaining = [node for node in nodes if node.id not in removed]
    leaf = leaf_after_removal(remaining, target.parent_id)
    if not remaining:
        assert leaf is None
        return
    assert leaf is not None
    assert leaf not in removed
    assert all(node.parent_id != leaf for node in remaining)  # a leaf
    if target.parent_id is not None:
        assert target.parent_id in path_to(remaining, leaf)  # under the removed part's parent


async def test_a_reply_started_during_a_delete_is_refused_or_swept(
    alice: SignedIn, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regenerate under the message being deleted, while the delete runs: either it is
    refused, or its reply goes with the rest; no message is left under a deleted one."""
    from gql_chat.store.usage import UsageStore

    sent = await send_message(alice, "to be deleted")
    conversation = sent["conversation"]["id"]
    await final_message(alice, sent["assistantMessage"]["id"])
    archive = UsageStore.archive

    async def slow_archive(self: UsageStore, docs: list[dict[str, Any]]) -> None:
        await asyncio.sleep(0.3)  # a slow database between reading the tree and deleting
        await archive(self, docs)

    monkeypatch.setattr(UsageStore, "archive", slow_archive)
    deleting = asyncio.create_task(alice.ok(DELETE, {"id": sent["userMessage"]["id"]}))
    await asyncio.sleep(0.1)
    regenerated = await alice.execute(
        "mutation($id: ID!) { regenerateMessage(messageId: $id) { assistantMessage { id } } }",
        {"id": sent["assistantMessage"]["id"]},
    )
    assert regenerated.error_codes == ["NOT_FOUND"]
    assert (await deleting)["deleteMessage"]["messageCount"] == 0
    nodes = await app.state.services.database.messages.nodes(
        ObjectId(alice.user_id), [ObjectId(conversation)]
    )
    assert nodes == []


async def test_deleting_a_conversation_takes_its_kept_usage_along(alice: SignedIn) -> None:
    sent = await send_message(alice, "counted")
    await final_message(alice, sent["assistantMessage"]["id"])
    by_conversation = "{ usageSummary(groupBy: CONVERSATION) { key } }"
    await alice.ok(DELETE, {"id": sent["assistantMessage"]["id"]})
    rows = (await alice.ok(by_conversation))["usageSummary"]
    assert [row["key"] for row in rows] == [sent["conversation"]["id"]]  # kept after the delete
    await alice.ok(
        "mutation($id: ID!) { deleteConversation(id: $id) }", {"id": sent["conversation"]["id"]}
    )
    assert (await alice.ok(by_conversation))["usageSummary"] == []
