"""Share links through the public API: a snapshot anyone with the link can read (no sign-in,
nothing of the owner shown but the messages), replaced by sharing again, revoked by the owner,
by deleting the conversation or the account; its files readable through URLs signed for it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from gql_chat.config import Settings
from gql_chat.store.cursors import encode_cursor
from gql_chat.store.messages import MessageStore
from tests.conftest import LiveServer, live_server_of, make_settings
from tests.files_support import png
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    final_message,
    send_message,
    sign_up,
    upload_attachment,
)

SHARE = """mutation($id: ID!, $upTo: ID) { shareConversation(id: $id, upToMessageId: $upTo) {
    id conversationId upToMessageId title messageCount createdAt token url } }"""
SHARED = """query($token: String!, $first: Int, $after: String) { sharedConversation(token: $token) {
    title sharedAt messageCount
    messages(first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { role content model createdAt
            attachments { filename mediaType size width height pageCount url } } } } } }"""
SHARES = "query { shares(first: 10) { totalCount edges { node { id conversationId token url } } } }"
REVOKE = "mutation($id: ID!) { revokeShare(id: $id) }"
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { id } }"


@pytest.fixture
def settings() -> Settings:
    return make_settings(offline_token_delay=0.0, rate_shared_reads_per_ip="40/minute")


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


@pytest.fixture
async def anonymous(live_server: LiveServer) -> Any:
    async with httpx.AsyncClient(base_url=live_server.http_url) as http:
        yield GraphQLClient(http)


def code_of(result: Any) -> str:
    assert result.errors, result.data
    code: str = result.errors[0]["extensions"]["code"]
    return code


async def exchange(user: SignedIn, content: str, conversation: str | None = None) -> dict[str, Any]:
    fields = {"conversationId": conversation} if conversation else {}
    sent = await send_message(user, content, **fields)
    await final_message(user, sent["assistantMessage"]["id"])
    return sent


async def read(anonymous: GraphQLClient, token: str, **variables: Any) -> dict[str, Any]:
    shared: dict[str, Any] = (await anonymous.execute(SHARED, {"token": token, **variables})).ok()[
        "sharedConversation"
    ]
    return shared


async def test_anyone_with_the_link_reads_a_snapshot_and_nothing_else_of_the_owner(
    user: SignedIn, anonymous: GraphQLClient
) -> None:
    first = await exchange(user, "What is a snapshot?")
    conversation = first["conversation"]["id"]
    share = (await user.ok(SHARE, {"id": conversation}))["shareConversation"]
    await exchange(user, "A later question", conversation)

    shared = await read(anonymous, share["token"])

    assert share["url"].endswith(f"/shared/{share['token']}")
    assert len(share["token"]) >= 40
    assert (share["messageCount"], shared["messageCount"]) == (2, 2)
    assert share["upToMessageId"] == first["assistantMessage"]["id"]
    nodes = [edge["node"] for edge in shared["messages"]["edges"]]
    assert [n["role"] for n in nodes] == ["USER", "ASSISTANT"]
    assert nodes[0]["content"] == "What is a snapshot?"
    assert nodes[1]["model"] == "offline/echo"
    assert "later question" not in json.dumps(shared)  # a snapshot
    text = json.dumps(shared)
    for private in (user.email, user.user_id, conversation, first["userMessage"]["id"]):
        assert private not in text
    assert shared["title"] == first["conversation"]["title"]


async def test_a_share_up_to_a_message_and_pages_of_it(
    user: SignedIn, anonymous: GraphQLClient
) -> None:
    first = await exchange(user, "one")
    conversation = first["conversation"]["id"]
    for content in ("two", "three"):
        await exchange(user, content, conversation)
    whole = (await user.ok(SHARE, {"id": conversation}))["shareConversation"]
    assert whole["messageCount"] == 6
    token = whole["token"]

    page = (await read(anonymous, token, first=4))["messages"]
    rest = (await read(anonymous, token, first=4, after=page["pageInfo"]["endCursor"]))["messages"]

    contents = [e["node"]["content"] for e in page["edges"] + rest["edges"]]
    assert contents[0::2] == ["one", "two", "three"]
    assert (page["pageInfo"]["hasNextPage"], rest["pageInfo"]["hasNextPage"]) == (True, False)
    assert page["totalCount"] == 6

    for cursor in ("not a cursor", *(encode_cursor({"p": p}) for p in (2**63, -1, 7, True))):
        bad_cursor = await anonymous.execute(SHARED, {"token": token, "after": cursor})
        assert code_of(bad_cursor) == "BAD_USER_INPUT", cursor
    part = await user.ok(SHARE, {"id": conversation, "upTo": first["assistantMessage"]["id"]})
    part_token = part["shareConversation"]["token"]
    assert (await read(anonymous, part_token))["messageCount"] == 2
    assert code_of(await anonymous.execute(SHARED, {"token": token})) == "NOT_FOUND"  # replaced


async def test_sharing_again_replaces_the_link_and_revoking_ends_it(
    user: SignedIn, anonymous: GraphQLClient, live_gql: GraphQLClient
) -> None:
    conversation = (await exchange(user, "hello"))["conversation"]["id"]
    old = (await user.ok(SHARE, {"id": conversation}))["shareConversation"]
    new = (await user.ok(SHARE, {"id": conversation}))["shareConversation"]

    assert code_of(await anonymous.execute(SHARED, {"token": old["token"]})) == "NOT_FOUND"
    assert (await read(anonymous, new["token"]))["messageCount"] == 2
    listed = (await user.ok(SHARES))["shares"]
    assert listed["totalCount"] == 1
    assert listed["edges"][0]["node"] == {
        "id": new["id"],
        "conversationId": conversation,
        "token": None,
        "url": None,
    }
    other = await sign_up(live_gql)
    assert (await other.ok(SHARES))["shares"]["totalCount"] == 0
    assert code_of(await other.execute(REVOKE, {"id": new["id"]})) == "NOT_FOUND"
    assert code_of(await other.execute(SHARE, {"id": conversation})) == "NOT_FOUND"

    assert (await user.ok(REVOKE, {"id": new["id"]}))["revokeShare"] is True

    assert code_of(await anonymous.execute(SHARED, {"token": new["token"]})) == "NOT_FOUND"
    assert code_of(await user.execute(REVOKE, {"id": new["id"]})) == "NOT_FOUND"


@pytest.mark.parametrize("token", ["", "x" * 5000, "unknown-token", "' OR 1=1 --"])
async def test_unknown_tokens_are_not_found(anonymous: GraphQLClient, token: str) -> None:
    assert code_of(await anonymous.execute(SHARED, {"token": token})) == "NOT_FOUND"


async def test_deleting_the_conversation_or_the_account_revokes_its_shares(
    user: SignedIn, anonymous: GraphQLClient
) -> None:
    first = (await exchange(user, "first"))["conversation"]["id"]
    second = (await exchange(user, "second"))["conversation"]["id"]
    first_token = (await user.ok(SHARE, {"id": first}))["shareConversation"]["token"]
    second_token = (await user.ok(SHARE, {"id": second}))["shareConversation"]["token"]

    await user.ok("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": first})
    assert code_of(await anonymous.execute(SHARED, {"token": first_token})) == "NOT_FOUND"
    assert (await read(anonymous, second_token))["messageCount"] == 2

    await user.ok("mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD})
    assert code_of(await anonymous.execute(SHARED, {"token": second_token})) == "NOT_FOUND"


async def test_a_shared_file_is_readable_through_its_share_until_revoked(
    user: SignedIn, anonymous: GraphQLClient, live_server: LiveServer
) -> None:
    image = await upload_attachment(user, png(20, 10), "photo.png")
    sent = await send_message(user, "Look", attachmentIds=[image["id"]])
    await final_message(user, sent["assistantMessage"]["id"])
    share = (await user.ok(SHARE, {"id": sent["conversation"]["id"]}))["shareConversation"]

    shared = await read(anonymous, share["token"])

    attachment = shared["messages"]["edges"][0]["node"]["attachments"][0]
    assert {k: attachment[k] for k in ("filename", "mediaType", "width", "height")} == {
        "filename": "photo.png",
        "mediaType": "image/png",
        "width": 20,
        "height": 10,
    }
    url = attachment["url"]
    assert user.user_id not in url
    async with httpx.AsyncClient() as browser:  # no Authorization header
        fetched = await browser.get(url)
        assert fetched.status_code == 200
        assert fetched.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert (await browser.get(url.replace("signature=", "signature=x"))).status_code == 403
        other_file = url.replace(image["id"], sent["userMessage"]["id"])
        assert (await browser.get(other_file)).status_code == 403
        await user.ok(REVOKE, {"id": share["id"]})
        assert (await browser.get(url)).status_code == 404


async def test_a_reply_still_being_written_cannot_be_shared(settings_factory: Any) -> None:
    slow = settings_factory(offline_token_delay=0.5)
    async with live_server_of(slow) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
        sent = await send_message(user, "a long answer please")
        conversation = sent["conversation"]["id"]

        assert code_of(await user.execute(SHARE, {"id": conversation})) == "CONFLICT"

        await user.ok(STOP, {"id": sent["assistantMessage"]["id"]})
        assert (await user.ok(SHARE, {"id": conversation}))["shareConversation"][
            "messageCount"
        ] == 2
        empty = await user.ok('mutation { createConversation(input: {title: "empty"}) { id } }')
        nothing = await user.execute(SHARE, {"id": empty["createConversation"]["id"]})
        assert code_of(nothing) == "BAD_USER_INPUT"
        unknown = await user.execute(SHARE, {"id": conversation, "upTo": "0" * 24})
        assert code_of(unknown) == "NOT_FOUND"


async def test_anonymous_reads_are_rate_limited_per_ip(settings_factory: Any) -> None:
    limited = settings_factory(rate_shared_reads_per_ip="3/minute")
    async with (
        live_server_of(limited) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        client = GraphQLClient(http)
        codes = [code_of(await client.execute(SHARED, {"token": "unknown"})) for _ in range(4)]
    assert codes == ["NOT_FOUND"] * 3 + ["RATE_LIMITED"]


async def test_a_share_made_while_its_conversation_is_deleted_does_not_outlive_it(
    user: SignedIn, anonymous: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete revokes shares before it deletes the messages (slowed here, as a big
    conversation's are on MongoDB) and again once the conversation is gone."""
    sent = await exchange(user, "my secret plan")
    conversation = sent["conversation"]["id"]
    original = MessageStore.delete_for_conversations

    async def slow(self: MessageStore, *args: Any) -> None:
        await asyncio.sleep(0.3)
        await original(self, *args)

    monkeypatch.setattr(MessageStore, "delete_for_conversations", slow)

    async def share_meanwhile() -> Any:
        await asyncio.sleep(0.1)
        return await user.execute(SHARE, {"id": conversation})

    deleted, shared = await asyncio.gather(
        user.execute("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": conversation}),
        share_meanwhile(),
    )
    assert deleted.data == {"deleteConversation": True}
    if not shared.errors:  # the share was made between the two revocations
        token = shared.data["shareConversation"]["token"]
        assert code_of(await anonymous.execute(SHARED, {"token": token})) == "NOT_FOUND"
    assert (await user.ok(SHARES))["shares"]["totalCount"] == 0
