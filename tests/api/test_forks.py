"""`forkConversation`: a new conversation with copies of the path up to a message, in the same
folder and with the same preset, files included; the original is unchanged."""

from __future__ import annotations

from starlette.applications import Starlette

from tests.support import SignedIn, create_folder, create_preset, final_message, upload_attachment

SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    conversation { id } userMessage { id } assistantMessage { id } } }"""
FORK = """mutation($id: ID!) { forkConversation(messageId: $id) {
    id title folder { id } llmConfig { id } messageCount
    messages(first: 10) { edges { node { id role content parentId
        attachments { id filename sha256 } } } } } }"""


async def test_a_fork_copies_the_path_up_to_the_message(alice: SignedIn, app: Starlette) -> None:
    folder = await create_folder(alice, "Work")
    preset = await create_preset(alice, "Careful")
    notes = await upload_attachment(alice, b"the plan", "plan.txt")
    first = (
        await alice.ok(
            SEND,
            {
                "i": {
                    "content": "one",
                    "folderId": folder,
                    "llmConfigId": preset,
                    "attachmentIds": [notes["id"]],
                }
            },
        )
    )["sendMessage"]
    conversation = first["conversation"]["id"]
    await alice.ok(
        "mutation($id: ID!, $p: ID) { updateConversation(id: $id, input: {llmConfigId: $p}) { id } }",
        {"id": conversation, "p": preset},
    )
    await final_message(alice, first["assistantMessage"]["id"])
    second = (await alice.ok(SEND, {"i": {"content": "two", "conversationId": conversation}}))[
        "sendMessage"
    ]
    await final_message(alice, second["assistantMessage"]["id"])

    usage = "{ usageSummary(groupBy: MODEL) { key messages completionTokens } }"
    usage_before = (await alice.ok(usage))["usageSummary"]
    await alice.ok(
        "mutation($id: ID!) { rateMessage(messageId: $id, rating: UP) { id } }",
        {"id": first["assistantMessage"]["id"]},
    )
    fork = (await alice.ok(FORK, {"id": first["assistantMessage"]["id"]}))["forkConversation"]
    assert (await alice.ok(usage))["usageSummary"] == usage_before  # paid once, counted once
    copy = await alice.ok(
        "query($id: ID!) { message(id: $id) { usage { totalTokens } feedback { rating } } }",
        {"id": fork["messages"]["edges"][1]["node"]["id"]},
    )
    assert copy["message"] == {"usage": None, "feedback": None}
    assert fork["id"] != conversation
    assert fork["title"].endswith(" (fork)")
    assert (fork["folder"]["id"], fork["llmConfig"]["id"]) == (folder, preset)
    nodes = [edge["node"] for edge in fork["messages"]["edges"]]
    assert (nodes[0]["role"], nodes[0]["content"]) == ("USER", "one")
    assert len(nodes) == fork["messageCount"] == 2
    assert nodes[1]["parentId"] == nodes[0]["id"]
    assert {n["id"] for n in nodes}.isdisjoint({first["userMessage"]["id"]})
    copied = nodes[0]["attachments"][0]
    assert (copied["filename"], copied["sha256"]) == ("plan.txt", notes["sha256"])
    assert copied["id"] != notes["id"]

    # The original keeps its messages and its file when the fork goes, and the other way round.
    await alice.ok("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": fork["id"]})
    original = await alice.ok(
        """query($id: ID!) { conversation(id: $id) { messageCount
            messages(first: 1) { edges { node { attachments { id } } } } } }""",
        {"id": conversation},
    )
    assert original["conversation"]["messageCount"] == 4
    edges = original["conversation"]["messages"]["edges"]
    assert edges[0]["node"]["attachments"] == [{"id": notes["id"]}]
    db = app.state.services.database.db
    assert await db["attachments"].count_documents({}) == 1


async def test_a_fork_of_someone_elses_message_is_not_found(alice: SignedIn, bob: SignedIn) -> None:
    sent = (await alice.ok(SEND, {"i": {"content": "mine"}}))["sendMessage"]
    await final_message(alice, sent["assistantMessage"]["id"])
    result = await bob.execute(FORK, {"id": sent["userMessage"]["id"]})
    assert result.error_codes == ["NOT_FOUND"]
