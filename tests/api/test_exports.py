"""`exportAccount` through the public API: one archive of all of a user's data, downloaded through
a signed URL, readable back by `importConversations`; another user's job or archive is
NOT_FOUND, and the archive goes with its expiry or the account."""

from __future__ import annotations

import asyncio
import io
import json
import time
import zipfile
from typing import Any

import httpx
import pytest

from gql_chat.config import Settings
from tests.api.test_imports import CONVERSATIONS, finished, start_import
from tests.conftest import live_server_of, make_settings
from tests.files_support import png
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    SignedIn,
    create_folder,
    create_preset,
    final_message,
    send_message,
    sign_up,
    upload_attachment,
)

EXPORT = "mutation { exportAccount { id status url } }"
JOB = """query($id: ID!) { exportJob(id: $id) { id status size error url createdAt finishedAt
    expiresAt } }"""
REGENERATE = """mutation($id: ID!) { regenerateMessage(messageId: $id) {
    assistantMessage { id } } }"""
RATE = """mutation($id: ID!) { rateMessage(messageId: $id, rating: UP, comment: "Nice") { id } }"""
MOVE = """mutation($id: ID!, $folder: ID) {
    updateConversation(id: $id, input: {folderId: $folder}) { id } }"""


@pytest.fixture
def settings() -> Settings:
    return make_settings(offline_token_delay=0.0)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


async def exported(user: SignedIn, within: float = 60.0) -> dict[str, Any]:
    job_id = (await user.ok(EXPORT))["exportAccount"]["id"]
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = (await user.ok(JOB, {"id": job_id}))["exportJob"]
        if job["status"] in ("DONE", "FAILED"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def fill_account(user: SignedIn) -> dict[str, str]:
    folder = await create_folder(user, "Work")
    await create_preset(user, "Careful", systemPrompt="Be careful.")
    first = await send_message(user, "first question")
    await final_message(user, first["assistantMessage"]["id"])
    again = await user.ok(REGENERATE, {"id": first["assistantMessage"]["id"]})
    await final_message(user, again["regenerateMessage"]["assistantMessage"]["id"])
    await user.ok(RATE, {"id": first["assistantMessage"]["id"]})
    await user.ok(MOVE, {"id": first["conversation"]["id"], "folder": folder})
    image = await upload_attachment(user, png(8, 6), "photo.png")
    second = await send_message(user, "look", attachmentIds=[image["id"]])
    await final_message(user, second["assistantMessage"]["id"])
    return {
        "folder": folder,
        "first": first["conversation"]["id"],
        "second": second["conversation"]["id"],
        "image": image["id"],
    }


async def test_an_account_archive_holds_everything_and_imports_back(
    user: SignedIn, live_gql: GraphQLClient
) -> None:
    ids = await fill_account(user)

    job = await exported(user)

    assert job["status"] == "DONE", job
    assert user.user_id in job["url"]
    async with httpx.AsyncClient() as browser:  # no Authorization header
        response = await browser.get(job["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    assert int(job["size"]) == len(response.content)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = set(archive.namelist())
    assert {
        "index.json",
        "folders.json",
        "presets.json",
        "feedback.json",
        "attachments.json",
        f"conversations/{ids['first']}.json",
        f"conversations/{ids['second']}.json",
        f"attachments/{ids['image']}/photo.png",
    } <= names
    index = json.loads(archive.read("index.json"))
    assert index["account"]["email"] == user.email
    where = {c["id"]: c for c in index["conversations"]}
    assert where[ids["first"]]["folderId"] == ids["folder"]
    assert [f["name"] for f in json.loads(archive.read("folders.json"))] == ["Work"]
    assert [p["systemPrompt"] for p in json.loads(archive.read("presets.json"))] == ["Be careful."]
    assert [(f["rating"], f["comment"]) for f in json.loads(archive.read("feedback.json"))] == [
        ("UP", "Nice")
    ]
    assert archive.read(f"attachments/{ids['image']}/photo.png")[:4] == b"\x89PNG"
    first = json.loads(archive.read(f"conversations/{ids['first']}.json"))
    assert len(first["messages"]) == 3  # both replies: every branch

    # Leave with the data, come back with it.
    newcomer = await sign_up(live_gql)
    back = await finished(
        newcomer, (await start_import(newcomer, response.content, "GQL_CHAT_JSON"))["id"]
    )
    assert (back["status"], back["importedCount"], back["problemCount"]) == ("DONE", 2, 0)
    assert back["placeholderCount"] == 0  # the photo came back too
    photos = await newcomer.ok(
        """query { conversations(first: 10) { edges { node { messages(first: 10) {
            edges { node { attachments { filename width height url } } } } } } } }"""
    )
    attached = [
        a
        for c in photos["conversations"]["edges"]
        for m in c["node"]["messages"]["edges"]
        for a in m["node"]["attachments"]
    ]
    assert [(a["filename"], a["width"], a["height"]) for a in attached] == [("photo.png", 8, 6)]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(attached[0]["url"])).content[:4] == b"\x89PNG"
    titles = sorted(
        e["node"]["title"] for e in (await newcomer.ok(CONVERSATIONS))["conversations"]["edges"]
    )
    assert titles == sorted(
        [first["title"], json.loads(archive.read(f"conversations/{ids['second']}.json"))["title"]]
    )


async def test_another_users_export_is_not_found_and_urls_are_not_transferable(
    user: SignedIn, live_gql: GraphQLClient
) -> None:
    job = await exported(user)
    other = await sign_up(live_gql)
    result = await other.execute(JOB, {"id": job["id"]})
    assert result.errors[0]["extensions"]["code"] == "NOT_FOUND"
    url = job["url"]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(url.replace(user.user_id, other.user_id))).status_code == 403
        assert (await browser.get(url.replace("signature=", "signature=A"))).status_code == 403
        files_url = url.replace("/exports/", "/files/")  # an archive signature reads no file
        assert (await browser.get(files_url)).status_code == 403
        assert (await browser.get(url)).status_code == 200


async def test_deleting_the_account_deletes_its_archive(user: SignedIn) -> None:
    job = await exported(user)
    await user.ok("mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD})
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(job["url"])).status_code == 404


async def test_an_archive_expires(settings_factory: Any) -> None:
    brief = settings_factory(offline_token_delay=0.0, export_ttl=3)
    async with live_server_of(brief) as server, httpx.AsyncClient(base_url=server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
        job = await exported(user)
        assert job["status"] == "DONE"
        await asyncio.sleep(3.2)
        later = (await user.ok(JOB, {"id": job["id"]}))["exportJob"]
        assert (later["status"], later["url"]) == ("FAILED", None)
        assert "expired" in later["error"]
        async with httpx.AsyncClient() as browser:
            assert (await browser.get(job["url"])).status_code == 404
        assert await server.app.state.services.exports.sweep() == 1  # and its bytes go


async def test_a_user_has_one_export_at_a_time_and_keeps_one_archive(user: SignedIn) -> None:
    await fill_account(user)
    first, again = [(await user.ok(EXPORT))["exportAccount"]["id"] for _ in range(2)]
    assert again == first  # the one being written
    written = await exported(user)  # once written, exporting starts a new one...
    while written["id"] == first:
        written = await exported(user)
    assert written["status"] == "DONE"
    # ...which replaces it: just after it reads DONE (the older is let go after that write).
    deadline = time.monotonic() + 10
    while (older := (await user.ok(JOB, {"id": first}))["exportJob"])["status"] == "DONE":
        assert time.monotonic() < deadline, older
        await asyncio.sleep(0.02)
    assert (older["status"], older["url"]) == ("FAILED", None)
    assert "replaced" in older["error"]
    async with httpx.AsyncClient() as browser:
        assert (await browser.get(written["url"])).status_code == 200
