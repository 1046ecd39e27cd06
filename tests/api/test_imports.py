"""`importConversations` through the public API: a background job per file (ChatGPT's export or
our own JSON), every branch and time kept, broken conversations reported one by one, the same
file sent again importing nothing twice, and an export read back into the same tree."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from gql_chat.config import Settings
from gql_chat.store.conversations import ConversationStore
from tests.api.test_branching import wait_for_subscribers
from tests.conftest import TEST_MONGODB_URL, LiveServer, live_server_of, make_settings
from tests.imports.generated import chatgpt_export
from tests.support import GraphQLClient, SignedIn, final_message, send_message, sign_up, ws_client

FIXTURE = Path(__file__).parent.parent / "imports" / "fixtures" / "chatgpt_small.json"
IMPORT = """mutation($file: Upload!, $format: ImportFormat!) {
    importConversations(file: $file, format: $format) { id status format } }"""
JOB = """query($id: ID!) { importJob(id: $id) { id status format total done importedCount
    skippedCount placeholderCount problemCount problems { index title message } error
    createdAt finishedAt } }"""
CONVERSATIONS = """query { conversations(first: 100) { totalCount edges { node {
    id title createdAt messageCount } } } }"""
TREE = """query($id: ID!) { conversation(id: $id) { title createdAt
    messages(last: 100) { edges { node { id role content model createdAt parentId siblingIds
    reasoning } } } } }"""
EXPORT = """query($id: ID!) {
    exportConversation(id: $id, format: JSON, allBranches: true) }"""
REGENERATE = """mutation($id: ID!) { regenerateMessage(messageId: $id) {
    assistantMessage { id } } }"""


@pytest.fixture
def settings() -> Settings:
    return make_settings(offline_token_delay=0.0)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


async def start_import(
    user: SignedIn, content: bytes, fmt: str, filename: str = "conversations.json"
) -> dict[str, Any]:
    """As apollo-upload-client sends a file (see `tests/support.upload_file`)."""
    operations = {"query": IMPORT, "variables": {"file": None, "format": fmt}}
    response = await user.gql.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"1": ["variables.file"]})},
        files={"1": (filename, content, "application/json")},
        headers={"Authorization": f"Bearer {user.token}", "Apollo-Require-Preflight": "true"},
    )
    body = response.json()
    assert not body.get("errors"), body
    job: dict[str, Any] = body["data"]["importConversations"]
    return job


async def finished(user: SignedIn, job_id: str, within: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = (await user.ok(JOB, {"id": job_id}))["importJob"]
        if job["status"] in ("DONE", "FAILED"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def conversations(user: SignedIn) -> dict[str, dict[str, Any]]:
    found = (await user.ok(CONVERSATIONS))["conversations"]["edges"]
    return {edge["node"]["title"]: edge["node"] for edge in found}


async def test_a_chatgpt_export_is_imported_with_its_branches_times_and_report(
    user: SignedIn,
) -> None:
    started = await start_import(user, FIXTURE.read_bytes(), "CHATGPT")
    assert (started["status"], started["format"]) == ("PENDING", "CHATGPT")

    job = await finished(user, started["id"])

    assert job["status"] == "DONE"
    assert (job["total"], job["done"], job["importedCount"]) == (8, 8, 3)
    assert job["placeholderCount"] == 2
    assert job["problemCount"] == 5
    assert [(p["index"], p["title"]) for p in job["problems"]] == [
        (2, "Broken mapping"),
        (3, "Loop"),
        (4, None),
        (5, None),
        (7, "Odd part"),
    ]
    assert all(p["message"] for p in job["problems"])
    listed = await conversations(user)
    assert set(listed) == {"Branching chat", "Image question", "Imported conversation"}
    branching = listed["Branching chat"]
    assert branching["createdAt"] == "2023-11-14T22:13:20.000Z"
    tree = (await user.ok(TREE, {"id": branching["id"]}))["conversation"]
    path = [edge["node"] for edge in tree["messages"]["edges"]]
    # The active branch is ChatGPT's current_node, not the newest one.
    assert [(m["role"], m["content"]) for m in path] == [
        ("USER", "Hello"),
        ("ASSISTANT", "Hi there"),
        ("USER", "Tell me a joke"),
        ("ASSISTANT", "Joke A"),
    ]
    assert [m["model"] for m in path] == [None, "gpt-4o", None, "gpt-4o-mini"]
    assert path[1]["createdAt"] == "2023-11-14T22:13:21.500Z"
    assert path[2]["parentId"] == path[1]["id"]
    assert len(path[2]["siblingIds"]) == 2  # the edited question's other branch is kept
    image = (await user.ok(TREE, {"id": listed["Image question"]["id"]}))["conversation"]
    texts = [edge["node"]["content"] for edge in image["messages"]["edges"]]
    assert texts[0] == "You are terse."
    assert texts[1].startswith("[image not imported]")


async def test_the_same_file_again_imports_nothing_twice(user: SignedIn) -> None:
    content = FIXTURE.read_bytes()
    first = await finished(user, (await start_import(user, content, "CHATGPT"))["id"])
    count = (await user.ok(CONVERSATIONS))["conversations"]["totalCount"]

    again = await start_import(user, content, "CHATGPT")

    assert again["id"] == first["id"]  # its finished job, not a new one
    assert (await user.ok(CONVERSATIONS))["conversations"]["totalCount"] == count == 3


async def test_files_that_are_no_export_fail_the_job_with_a_reason(user: SignedIn) -> None:
    for content, fmt in (
        (b"{not json", "CHATGPT"),
        (b'{"a": 1}', "CHATGPT"),
        (b"7", "GQL_CHAT_JSON"),
    ):
        job = await finished(user, (await start_import(user, content, fmt))["id"])
        assert job["status"] == "FAILED"
        assert job["error"]
        assert "Traceback" not in job["error"]
    empty = await finished(user, (await start_import(user, b"[]", "CHATGPT"))["id"])
    assert (empty["status"], empty["total"]) == ("DONE", 0)


async def test_another_users_job_is_not_found(user: SignedIn, live_gql: GraphQLClient) -> None:
    job = await start_import(user, FIXTURE.read_bytes(), "CHATGPT")
    other = await sign_up(live_gql)
    result = await other.execute(JOB, {"id": job["id"]})
    assert result.errors[0]["extensions"]["code"] == "NOT_FOUND"
    for unknown in ("nope", "0" * 24):
        result = await user.execute(JOB, {"id": unknown})
        assert result.errors[0]["extensions"]["code"] == "NOT_FOUND"


async def test_each_imported_conversation_is_announced(
    live_server: LiveServer, user: SignedIn
) -> None:
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe("subscription { userEvents { kind conversation { title } } }")
        await wait_for_subscribers(live_server, user, 1)

        await finished(user, (await start_import(user, FIXTURE.read_bytes(), "CHATGPT"))["id"])

        titles: list[str] = []
        while len(titles) < 3:
            message = await asyncio.wait_for(ws.receive(), timeout=5)
            event = message["payload"]["data"]["userEvents"]
            assert event["kind"] == "CONVERSATION_CREATED"
            titles.append(event["conversation"]["title"])
    assert sorted(titles) == ["Branching chat", "Image question", "Imported conversation"]


async def test_an_export_with_every_branch_imports_back_into_the_same_tree(
    user: SignedIn,
) -> None:
    sent = await send_message(user, "first question")
    await final_message(user, sent["assistantMessage"]["id"])
    regenerated = await user.ok(REGENERATE, {"id": sent["assistantMessage"]["id"]})
    await final_message(user, regenerated["regenerateMessage"]["assistantMessage"]["id"])
    conversation = sent["conversation"]["id"]
    follow = await send_message(user, "second question", conversationId=conversation)
    await final_message(user, follow["assistantMessage"]["id"])
    exported = (await user.ok(EXPORT, {"id": conversation}))["exportConversation"]

    job = await finished(user, (await start_import(user, exported.encode(), "GQL_CHAT_JSON"))["id"])

    assert (job["status"], job["importedCount"], job["problemCount"]) == ("DONE", 1, 0)
    listed = (await user.ok(CONVERSATIONS))["conversations"]["edges"]
    copy = next(e["node"]["id"] for e in listed if e["node"]["id"] != conversation)
    original = json.loads(exported)
    again = json.loads((await user.ok(EXPORT, {"id": copy}))["exportConversation"])

    def shape(export: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The tree, by positions instead of ids."""
        position = {m["id"]: i for i, m in enumerate(export["messages"])}
        return [
            (
                position.get(m["parentId"]),
                m["role"],
                m["content"],
                m["reasoning"],
                m["model"],
                m["createdAt"],
                m["id"] == export["activeLeafId"],
            )
            for m in export["messages"]
        ]

    assert shape(again) == shape(original)
    assert len(original["messages"]) == 5  # two replies to the first question
    assert (again["title"], again["createdAt"]) == (original["title"], original["createdAt"])


async def test_a_file_over_the_conversation_limit_fails_whole(settings_factory: Any) -> None:
    import httpx

    limited = settings_factory(import_max_conversations=2)
    async with (
        live_server_of(limited) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        job = await finished(
            user, (await start_import(user, FIXTURE.read_bytes(), "CHATGPT"))["id"]
        )
        assert job["status"] == "FAILED"
        assert "2" in job["error"]
        assert (await user.ok(CONVERSATIONS))["conversations"]["totalCount"] == 0


@pytest.mark.skipif(
    TEST_MONGODB_URL is not None,
    reason="a size check of the import itself, run in the embedded pass (SecantusDB, a Python "
    "server, takes 40 s to store its 47,000 messages)",
)
async def test_two_thousand_generated_conversations_import(settings_factory: Any) -> None:
    """A big export (34 MB: over the default 20 MiB, so the limit is raised here)."""
    import httpx

    content = json.dumps(chatgpt_export(2000, seed=7)).encode()
    roomy = settings_factory(offline_token_delay=0.0, max_upload_bytes=48 * 1_048_576)
    async with live_server_of(roomy) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
        job = await finished(user, (await start_import(user, content, "CHATGPT"))["id"], 300)
        assert job["status"] == "DONE", job
        assert job["total"] == 2000
        assert job["importedCount"] + job["problemCount"] == 2000
        assert job["importedCount"] > 1900
        total = (await user.ok(CONVERSATIONS))["conversations"]["totalCount"]
        assert total == job["importedCount"]


async def test_a_user_has_one_import_at_a_time(
    user: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = ConversationStore.insert_imported

    async def slow(self: ConversationStore, *args: Any) -> bool:
        await asyncio.sleep(0.3)  # the first import is still running when the second comes
        return await original(self, *args)

    monkeypatch.setattr(ConversationStore, "insert_imported", slow)
    first = await start_import(user, FIXTURE.read_bytes(), "CHATGPT")
    operations = {"query": IMPORT, "variables": {"file": None, "format": "CHATGPT"}}
    response = await user.gql.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"1": ["variables.file"]})},
        files={"1": ("other.json", b"[]", "application/json")},
        headers={"Authorization": f"Bearer {user.token}", "Apollo-Require-Preflight": "true"},
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert (await finished(user, first["id"]))["status"] == "DONE"
    after = await finished(user, (await start_import(user, b"[]", "CHATGPT"))["id"])
    assert after["status"] == "DONE"


async def test_a_damaged_archive_fails_with_a_reason(user: SignedIn) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("conversations/a.json", json.dumps({"messages": []}) * 50)
    damaged = bytearray(buffer.getvalue())
    start = damaged.index(b"conversations/a.json") + len("conversations/a.json")
    for offset in range(start + 2, start + 12):  # inside the compressed data
        damaged[offset] ^= 0xFF
    job = await finished(user, (await start_import(user, bytes(damaged), "GQL_CHAT_JSON"))["id"])
    assert (job["status"], job["error"]) == ("FAILED", "The archive cannot be read.")
