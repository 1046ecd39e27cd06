"""`Conversation.messages(leafId)`: any branch, for one view, without moving the branch every
device shows."""

from __future__ import annotations

from typing import Any

from tests.support import SignedIn, final_message, send_message

BRANCH = """query($id: ID!, $leaf: ID) { conversation(id: $id) {
    messages(leafId: $leaf) { edges { node { id content } } } } }"""


def ids(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in data["conversation"]["messages"]["edges"]]


async def test_a_view_of_another_branch_leaves_the_active_one(alice: SignedIn) -> None:
    sent = await send_message(alice, "first question")
    conversation = sent["conversation"]["id"]
    question, reply = sent["userMessage"]["id"], sent["assistantMessage"]["id"]
    await final_message(alice, reply)
    edited = await alice.ok(
        """mutation($id: ID!) { editMessage(messageId: $id, content: "second question") {
            userMessage { id } assistantMessage { id } } }""",
        {"id": question},
    )
    new_question = edited["editMessage"]["userMessage"]["id"]
    new_reply = edited["editMessage"]["assistantMessage"]["id"]
    await final_message(alice, new_reply)
    assert ids(await alice.ok(BRANCH, {"id": conversation, "leaf": None})) == [
        new_question,
        new_reply,
    ]
    # Through the first question: down to its newest leaf, the first reply.
    assert ids(await alice.ok(BRANCH, {"id": conversation, "leaf": question})) == [
        question,
        reply,
    ]
    assert ids(await alice.ok(BRANCH, {"id": conversation, "leaf": reply})) == [question, reply]
    # The branch every device shows did not move.
    assert ids(await alice.ok(BRANCH, {"id": conversation, "leaf": None}))[-1] == new_reply
    missing = await alice.execute(BRANCH, {"id": conversation, "leaf": "0" * 24})
    assert missing.error_codes == ["NOT_FOUND"]
