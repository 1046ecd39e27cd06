"""Attachments through the public API, on whichever store the suite runs on: uploads as a
GraphQL multipart request (as apollo-upload-client sends them), types decided by content,
metadata stripped, signed downloads, the quota, isolation between users, files in messages
(with the offline model), edits, exports, and the deletes that take the files along."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import time
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from bson import ObjectId
from PIL import Image
from starlette.applications import Starlette

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.files.inspection import inspect_file
from gql_chat.services.file_urls import FileUrls
from tests.conftest import TEST_JWT_SECRET, live_server_of, make_settings
from tests.files_support import (
    GPS_IFD,
    decompression_bomb_png,
    image,
    jpeg_with_location,
    pdf,
    png,
    zip_bomb,
)
from tests.support import (
    UPLOAD,
    GraphQLClient,
    SignedIn,
    create_folder,
    final_message,
    send_message,
    sign_up,
    upload_attachment,
    upload_file,
)

MAX_UPLOAD = 200_000
QUOTA = 600_000


@pytest.fixture
def settings() -> Settings:
    return make_settings(
        max_upload_bytes=MAX_UPLOAD, user_storage_bytes=QUOTA, offline_token_delay=0
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 200, body
    assert body.get("errors"), body
    error: dict[str, Any] = body["errors"][0]
    return error


async def stored_files(app: Starlette) -> tuple[int, int, int]:
    """Attachment documents, GridFS files and GridFS chunks, counted in the database."""
    db = app.state.services.database.db
    return (
        await db["attachments"].count_documents({}),
        await db["attachment_files.files"].count_documents({}),
        await db["attachment_files.chunks"].count_documents({}),
    )


async def download(http: httpx.AsyncClient, url: str, **kwargs: Any) -> httpx.Response:
    parts = urlsplit(url)
    return await http.get(f"{parts.path}?{parts.query}", **kwargs)


# Uploads ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "filename", "kind", "media_type", "size"),
    [
        (png(40, 30), "pixel.png", "IMAGE", "image/png", (40, 30)),
        (image("JPEG"), "photo.jpg", "IMAGE", "image/jpeg", (32, 24)),
        (image("WEBP"), "sticker.webp", "IMAGE", "image/webp", (32, 24)),
        (image("GIF"), "anim.gif", "IMAGE", "image/gif", (32, 24)),
        (pdf(3), "paper.pdf", "PDF", "application/pdf", None),
        ("# Title\n\nSome *text* ✓\n".encode(), "README.md", "TEXT", "text/markdown", None),
        (b"a,b\n1,2\n", "table.csv", "TEXT", "text/csv", None),
        (b'{"a": 1}', "data.json", "TEXT", "application/json", None),
        (b"def f():\n    return 1\n", "code.py", "TEXT", "text/plain", None),
    ],
)
async def test_accepted_files_are_stored_and_read_back_by_their_signed_url(
    alice: SignedIn,
    content: bytes,
    filename: str,
    kind: str,
    media_type: str,
    size: tuple[int, int] | None,
) -> None:
    attachment = await upload_attachment(alice, content, filename, "application/octet-stream")
    assert (attachment["kind"], attachment["mediaType"]) == (kind, media_type)
    assert attachment["filename"] == filename
    if size is not None:
        assert (attachment["width"], attachment["height"]) == size
    if kind == "PDF":
        assert attachment["pageCount"] == 3
    response = await download(alice.gql.http, attachment["url"])
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == attachment["sha256"]
    assert len(response.content) == attachment["size"]
    if kind != "IMAGE":  # stored as uploaded
        assert response.content == content
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("inline" if kind == "IMAGE" else "attachment")
    assert filename in disposition


async def test_an_image_loses_its_location_and_metadata_but_keeps_its_orientation(
    alice: SignedIn,
) -> None:
    original = jpeg_with_location(64, 48, orientation=6)
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the fixture has one
    attachment = await upload_attachment(alice, original, "IMG_0001.jpg", "image/jpeg")
    # Orientation 6 shows the picture turned: 48 wide, 64 high.
    assert (attachment["width"], attachment["height"]) == (48, 64)
    stored = (await download(alice.gql.http, attachment["url"])).content
    with Image.open(io.BytesIO(stored)) as picture:
        exif = picture.getexif()
        assert dict(exif) == {0x0112: 6}
        assert not exif.get_ifd(GPS_IFD)
        assert "comment" not in picture.info
        assert picture.size == (64, 48)
    assert b"Phone Model X" not in stored
    assert b"secret" not in stored


@pytest.mark.parametrize(
    ("content", "filename", "content_type", "says"),
    [
        (png(), "report.pdf", "application/octet-stream", "named .pdf"),
        (pdf(), "picture.png", "application/octet-stream", "named .png"),
        (pdf(), "scan", "image/png", "claims to be image/png"),
        (png(), "image", "image/jpeg", "claims to be image/jpeg"),
        (b"just text", "notes.txt", "image/png", "claims to be image/png"),
        (b"just text", "notes.zip", None, "named .zip"),
        (zip_bomb(), "bomb.zip", "application/zip", "Archives"),
        (zip_bomb(), "innocent.txt", "text/plain", "Archives"),
        (decompression_bomb_png(), "huge.png", "image/png", "pixels"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "broken.png", "image/png", "damaged"),
        (b"\x00\x01\x02binary\xff\xfe", "blob.bin", None, "neither"),
        ("UTF-16 text".encode("utf-16"), "notes.txt", "text/plain", "neither"),
        (b"", "empty.txt", "text/plain", "empty"),
        (b"GIF89a" + b"\x00" * 10, "bad.gif", None, "damaged"),
    ],
)
async def test_refused_files_are_bad_input_and_nothing_is_stored(
    alice: SignedIn,
    app: Starlette,
    content: bytes,
    filename: str,
    content_type: str | None,
    says: str,
) -> None:
    error = error_of(await upload_file(alice, content, filename, content_type))
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "file"
    assert says in error["message"]
    assert await stored_files(app) == (0, 0, 0)


async def test_an_upload_needs_the_preflight_header_and_a_sign_in(
    alice: SignedIn, gql: Any
) -> None:
    response = await alice.gql.http.post(
        "/graphql",
        data={
            "operations": json.dumps(
                {"query": "mutation($f: Upload!) { uploadAttachment(file: $f) { id } }"}
            ),
            "map": json.dumps({"1": ["variables.f"]}),
        },
        files={"1": ("a.txt", b"hello")},
        headers={"Authorization": f"Bearer {alice.token}"},
    )
    assert response.status_code == 400
    assert "Cross-Site Request Forgery" in response.text
    anonymous = SignedIn(alice.gql, "", "", "", "")
    response = await upload_file(anonymous, b"hello", headers={"Authorization": ""})
    assert error_of(response)["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_file_value_in_json_is_bad_input(alice: SignedIn) -> None:
    result = await alice.execute(
        "mutation($f: Upload!) { uploadAttachment(file: $f) { id } }", {"f": "not a file"}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]


async def test_the_upload_size_limit_is_its_own_setting(alice: SignedIn, app: Starlette) -> None:
    over = b"x" * (MAX_UPLOAD + 1)
    error = error_of(await upload_file(alice, over, "big.txt", "text/plain"))
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "file")
    # A body far over it is cut off before it is read: 413.
    response = await upload_file(alice, over * 8, "bigger.txt", "text/plain")
    assert response.status_code == 413
    # JSON bodies keep their own 1 MiB limit.
    big_json = {"query": "{ me { id } }", "variables": {"x": "y" * 1_100_000}}
    response = await alice.gql.http.post("/graphql", json=big_json)
    assert response.status_code == 413
    assert await stored_files(app) == (0, 0, 0)


async def test_the_storage_quota_counts_every_upload(alice: SignedIn, bob: SignedIn) -> None:
    text = b"y" * 150_000
    for number in range(QUOTA // len(text)):
        await upload_attachment(alice, text, f"part{number}.txt")
    error = error_of(await upload_file(alice, text, "one-too-many.txt"))
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["limit"] == QUOTA
    await upload_attachment(bob, text, "bob.txt")  # quotas are per user


async def test_the_same_bytes_twice_are_two_attachments(alice: SignedIn) -> None:
    first = await upload_attachment(alice, b"same bytes", "a.txt")
    second = await upload_attachment(alice, b"same bytes", "b.txt")
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"] == hashlib.sha256(b"same bytes").hexdigest()


# Signed URLs and isolation ----------------------------------------------------------------------


async def test_a_tampered_or_expired_link_is_403_and_another_users_file_is_404(
    alice: SignedIn, bob: SignedIn, http: httpx.AsyncClient
) -> None:
    attachment = await upload_attachment(alice, b"private", "secret.txt")
    url = attachment["url"]
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"user", "expires", "signature"}
    assert (await download(http, url)).status_code == 200
    tampered_signature = url.replace(query["signature"][0], "A" * 43)
    assert (await download(http, tampered_signature)).status_code == 403
    later = str(int(query["expires"][0]) + 3600)
    assert (await download(http, url.replace(query["expires"][0], later))).status_code == 403
    as_bob = url.replace(query["user"][0], bob.user_id)
    assert (await download(http, as_bob)).status_code == 403
    urls = FileUrls(TEST_JWT_SECRET, timedelta(hours=1))
    expired = urls.sign(
        "http://testserver",
        ObjectId(attachment["id"]),
        ObjectId(alice.user_id),
        utc_now() - timedelta(hours=2),
    )
    assert (await download(http, expired)).status_code == 403
    # Signed correctly, but for a user who does not own the file: not found.
    bobs_link = urls.sign(
        "http://testserver", ObjectId(attachment["id"]), ObjectId(bob.user_id), utc_now()
    )
    assert (await download(http, bobs_link)).status_code == 404
    # A bearer token reads one's own files, and nobody else's.
    path = f"/files/{attachment['id']}"
    own = await http.get(path, headers={"Authorization": f"Bearer {alice.token}"})
    assert own.status_code == 200
    assert own.content == b"private"
    other = await http.get(path, headers={"Authorization": f"Bearer {bob.token}"})
    assert other.status_code == 404
    assert (await http.get(path)).status_code == 401
    assert (await http.get("/files/not-an-id?user=x&expires=1&signature=y")).status_code == 403


async def test_another_users_attachment_is_not_found_in_sends_and_edits(
    alice: SignedIn, bob: SignedIn
) -> None:
    attachment = await upload_attachment(alice, b"alice's", "a.txt")
    result = await bob.execute(
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { userMessage { id } } }",
        {"i": {"content": "look", "attachmentIds": [attachment["id"]]}},
    )
    assert result.error_codes == ["NOT_FOUND"]
    sent = await send_message(bob, "mine")
    result = await bob.execute(
        """mutation($m: ID!, $a: [ID!]) { editMessage(messageId: $m, content: "x",
            attachmentIds: $a) { userMessage { id } } }""",
        {"m": sent["userMessage"]["id"], "a": [attachment["id"]]},
    )
    assert result.error_codes == ["NOT_FOUND"]
    result = await bob.execute(
        "mutation($i: SendMessageInput!) { sendMessage(input: $i) { userMessage { id } } }",
        {"i": {"content": "look", "attachmentIds": ["not-an-id"]}},
    )
    assert result.error_codes == ["NOT_FOUND"]
    conversations = await bob.ok("{ conversations(first: 10) { edges { node { id } } } }")
    assert len(conversations["conversations"]["edges"]) == 1  # only the one that was sent


# Files in messages -----------------------------------------------------------------------------

SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    conversation { id }
    userMessage { id content attachments { id filename mediaType width height url } }
    assistantMessage { id } } }"""


async def finished(user: SignedIn, message_id: str) -> dict[str, Any]:
    return await final_message(user, message_id, "content attachments { id filename }")


async def test_the_offline_model_answers_about_the_files_it_is_sent(alice: SignedIn) -> None:
    picture = await upload_attachment(alice, png(40, 30), "cat.png")
    notes = await upload_attachment(
        alice, b"The quick brown fox jumps over the lazy dog", "fox.txt"
    )
    paper = await upload_attachment(alice, pdf(2), "paper.pdf")
    ids = [picture["id"], notes["id"], paper["id"]]
    sent = (await alice.ok(SEND, {"i": {"content": "", "attachmentIds": ids}}))["sendMessage"]
    assert [a["id"] for a in sent["userMessage"]["attachments"]] == ids
    assert sent["userMessage"]["content"] == ""
    reply = await finished(alice, sent["assistantMessage"]["id"])
    assert reply["status"] == "COMPLETE"
    assert "cat.png (image/png, " in reply["content"]
    assert "40x30 pixels" in reply["content"]
    assert "fox.txt" in reply["content"]
    assert "“The quick brown fox" in reply["content"]
    assert "paper.pdf (application/pdf" in reply["content"]
    assert "2 pages" in reply["content"]


async def test_limits_on_the_files_of_a_message(alice: SignedIn) -> None:
    files = [await upload_attachment(alice, f"file {n}".encode(), f"{n}.txt") for n in range(11)]
    result = await alice.execute(
        SEND, {"i": {"content": "x", "attachmentIds": [f["id"] for f in files]}}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "attachmentIds"
    twice = [files[0]["id"], files[0]["id"]]
    result = await alice.execute(SEND, {"i": {"content": "x", "attachmentIds": twice}})
    assert result.error_codes == ["BAD_USER_INPUT"]
    result = await alice.execute(SEND, {"i": {"content": " ", "attachmentIds": []}})
    assert result.error_codes == ["BAD_USER_INPUT"]  # no text and no files


async def test_a_file_sent_in_one_conversation_cannot_be_sent_in_another(
    alice: SignedIn,
) -> None:
    attachment = await upload_attachment(alice, b"bound", "bound.txt")
    first = await alice.ok(SEND, {"i": {"content": "a", "attachmentIds": [attachment["id"]]}})
    conversation = first["sendMessage"]["conversation"]["id"]
    await finished(alice, first["sendMessage"]["assistantMessage"]["id"])
    again = await alice.ok(
        SEND,
        {
            "i": {
                "content": "b",
                "conversationId": conversation,
                "attachmentIds": [attachment["id"]],
            }
        },
    )
    assert again["sendMessage"]["userMessage"]["attachments"][0]["id"] == attachment["id"]
    await finished(alice, again["sendMessage"]["assistantMessage"]["id"])
    elsewhere = await alice.execute(
        SEND, {"i": {"content": "c", "attachmentIds": [attachment["id"]]}}
    )
    assert elsewhere.error_codes == ["NOT_FOUND"]


async def test_an_edit_keeps_or_replaces_the_files(alice: SignedIn) -> None:
    first = await upload_attachment(alice, b"first", "first.txt")
    second = await upload_attachment(alice, b"second", "second.txt")
    sent = await alice.ok(SEND, {"i": {"content": "q", "attachmentIds": [first["id"]]}})
    message_id = sent["sendMessage"]["userMessage"]["id"]
    await finished(alice, sent["sendMessage"]["assistantMessage"]["id"])
    edit = """mutation($m: ID!, $c: String!, $a: [ID!]) {
        editMessage(messageId: $m, content: $c, attachmentIds: $a) {
            userMessage { attachments { filename } } assistantMessage { id } } }"""
    kept = (await alice.ok(edit, {"m": message_id, "c": "q2", "a": None}))["editMessage"]
    assert [a["filename"] for a in kept["userMessage"]["attachments"]] == ["first.txt"]
    await finished(alice, kept["assistantMessage"]["id"])
    replaced = (
        await alice.ok(edit, {"m": message_id, "c": "q3", "a": [second["id"], first["id"]]})
    )["editMessage"]
    assert [a["filename"] for a in replaced["userMessage"]["attachments"]] == [
        "second.txt",
        "first.txt",
    ]
    await finished(alice, replaced["assistantMessage"]["id"])
    removed = (await alice.ok(edit, {"m": message_id, "c": "q4", "a": []}))["editMessage"]
    assert removed["userMessage"]["attachments"] == []
    await finished(alice, removed["assistantMessage"]["id"])


async def test_exports_list_the_files(alice: SignedIn) -> None:
    attachment = await upload_attachment(alice, png(20, 10), "chart.png")
    sent = await alice.ok(SEND, {"i": {"content": "see", "attachmentIds": [attachment["id"]]}})
    conversation = sent["sendMessage"]["conversation"]["id"]
    await finished(alice, sent["sendMessage"]["assistantMessage"]["id"])
    export = "query($id: ID!, $f: ExportFormat!) { exportConversation(id: $id, format: $f) }"
    as_json = json.loads(
        (await alice.ok(export, {"id": conversation, "f": "JSON"}))["exportConversation"]
    )
    listed = as_json["messages"][0]["attachments"]
    assert listed == [
        {
            "id": attachment["id"],
            "filename": "chart.png",
            "mediaType": "image/png",
            "size": attachment["size"],
            "sha256": attachment["sha256"],
            "width": 20,
            "height": 10,
            "pageCount": None,
            "createdAt": listed[0]["createdAt"],
        }
    ]
    assert as_json["messages"][1]["attachments"] == []
    markdown = (await alice.ok(export, {"id": conversation, "f": "MARKDOWN"}))["exportConversation"]
    assert f"- chart.png (image/png, {attachment['size']} bytes, 20x10; sha256 " in markdown


# Deletes ---------------------------------------------------------------------------------------


async def sent_with_file(user: SignedIn, content: bytes, **fields: Any) -> tuple[str, str]:
    attachment = await upload_attachment(user, content, "file.txt")
    sent = await user.ok(
        SEND, {"i": {"content": "with a file", "attachmentIds": [attachment["id"]], **fields}}
    )
    await finished(user, sent["sendMessage"]["assistantMessage"]["id"])
    return sent["sendMessage"]["conversation"]["id"], attachment["id"]


async def test_deleting_a_conversation_deletes_its_files(
    alice: SignedIn, bob: SignedIn, app: Starlette
) -> None:
    big = b"z" * 190_000
    conversation, _ = await sent_with_file(alice, big)
    await sent_with_file(bob, b"bob keeps his")
    before = await stored_files(app)
    assert before[0] == 2
    assert before[1] == 2
    assert before[2] >= 2
    await alice.ok("mutation($id: ID!) { deleteConversation(id: $id) }", {"id": conversation})
    documents, files, chunks = await stored_files(app)
    assert (documents, files) == (1, 1)
    assert chunks == 1  # bob's file: one chunk


async def test_deleting_a_folder_deletes_the_files_of_its_conversations(
    alice: SignedIn, app: Starlette
) -> None:
    folder = await create_folder(alice, "Projects")
    child = await create_folder(alice, "Deep", folder)
    await sent_with_file(alice, b"in the folder", folderId=folder)
    await sent_with_file(alice, b"deeper", folderId=child)
    await sent_with_file(alice, b"outside")
    assert (await stored_files(app))[:2] == (3, 3)
    await alice.ok(
        "mutation($id: ID!) { deleteFolder(id: $id, deleteContents: true) }", {"id": folder}
    )
    assert await stored_files(app) == (1, 1, 1)


async def test_deleting_an_account_deletes_every_file(alice: SignedIn, app: Starlette) -> None:
    await sent_with_file(alice, b"sent")
    await upload_attachment(alice, png(), "unsent.png")
    assert (await stored_files(app))[:2] == (2, 2)
    await alice.ok(
        "mutation($p: String!) { deleteAccount(password: $p) }", {"p": "correct horse battery"}
    )
    assert await stored_files(app) == (0, 0, 0)


async def test_uploads_never_sent_are_swept_after_a_day(alice: SignedIn, app: Starlette) -> None:
    await sent_with_file(alice, b"sent stays")
    unsent = await upload_attachment(alice, b"never sent", "unsent.txt")
    fresh = await upload_attachment(alice, b"just uploaded", "fresh.txt")
    db = app.state.services.database.db
    await db["attachments"].update_one(
        {"_id": ObjectId(unsent["id"])}, {"$set": {"created_at": utc_now() - timedelta(days=2)}}
    )
    assert await app.state.services.attachments.sweep() == 1
    assert await stored_files(app) == (2, 2, 2)
    assert (await download(alice.gql.http, unsent["url"])).status_code == 404
    assert (await download(alice.gql.http, fresh["url"])).status_code == 200


async def test_a_large_upload_over_real_http_is_streamed_and_read_back(
    settings_factory: Any,
) -> None:
    """Through uvicorn and a TCP socket: a body over a megabyte (the multipart parser spools it
    to disk), then the signed link fetched over HTTP like a browser would."""
    settings = settings_factory(max_upload_bytes=4_000_000)
    content = ("line of text ✓\n" * 200_000).encode()  # 3.4 MB
    async with (
        live_server_of(settings) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        attachment = await upload_attachment(user, content, "big.log", "text/plain")
        assert attachment["size"] == len(content)
        assert attachment["url"].startswith(f"{server.http_url}/files/")
        async with httpx.AsyncClient() as browser:
            response = await browser.get(attachment["url"])
        assert response.status_code == 200
        assert response.content == content
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("operations", "files_map"),
    [
        ({"query": UPLOAD, "variables": {"file": None}}, ["variables.file"]),
        ({"query": UPLOAD, "variables": {"file": None}}, None),
        ({"query": UPLOAD, "variables": {"file": None}}, {"1": [5]}),
        ({"query": UPLOAD, "variables": {"file": None}}, {"1": "variables.file"}),
        ({"query": UPLOAD, "variables": {"file": None}}, {"1": ["variables.file.deeper"]}),
        ({"query": UPLOAD, "variables": None}, {"1": ["variables.file"]}),
        (None, {"1": ["variables.file"]}),
        ([{"query": UPLOAD}], {"1": ["0.variables.file"]}),
        ("a string", {"1": ["variables.file"]}),
        ({"query": UPLOAD, "variables": {"file": None}}, {"2": ["variables.file"]}),
    ],
)
async def test_a_malformed_multipart_request_is_a_400_with_a_code(
    alice: SignedIn, app: Starlette, operations: Any, files_map: Any
) -> None:
    response = await alice.gql.http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps(files_map)},
        files={"1": ("a.txt", b"hello", "text/plain")},
        headers={"Authorization": f"Bearer {alice.token}", "Apollo-Require-Preflight": "1"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert await stored_files(app) == (0, 0, 0)


async def test_a_multipart_body_without_a_boundary_is_a_400_with_a_code(alice: SignedIn) -> None:
    response = await alice.gql.http.post(
        "/graphql",
        content=b"--x\r\n",
        headers={
            "Authorization": f"Bearer {alice.token}",
            "Apollo-Require-Preflight": "1",
            "Content-Type": "multipart/form-data",
        },
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_a_file_part_without_a_filename_is_bad_input(alice: SignedIn) -> None:
    response = await alice.gql.http.post(
        "/graphql",
        data={
            "operations": json.dumps({"query": UPLOAD, "variables": {"file": None}}),
            "map": json.dumps({"1": ["variables.file"]}),
            "1": "just a form field",
        },
        files={"unused": ("u.txt", b"x")},
        headers={"Authorization": f"Bearer {alice.token}", "Apollo-Require-Preflight": "1"},
    )
    error = error_of(response)
    assert (error["extensions"]["code"], error["extensions"]["field"]) == ("BAD_USER_INPUT", "file")


async def test_head_and_conditional_downloads_send_no_body(alice: SignedIn) -> None:
    attachment = await upload_attachment(alice, png(12, 12), "icon.png")
    path = urlsplit(attachment["url"])
    url = f"{path.path}?{path.query}"
    head = await alice.gql.http.head(url)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(attachment["size"])
    etag = head.headers["etag"]
    assert etag == f'"{attachment["sha256"]}"'
    cached = await alice.gql.http.get(url, headers={"If-None-Match": f'W/"x", {etag}'})
    assert cached.status_code == 304
    assert cached.content == b""
    changed = await alice.gql.http.get(url, headers={"If-None-Match": '"other"'})
    assert changed.status_code == 200
    assert len(changed.content) == attachment["size"]


async def test_one_users_uploads_wait_behind_each_other_not_in_front_of_others(
    alice: SignedIn, bob: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each upload is checked in a worker thread, at most two at once, and one user's one at a
    time: a user with many slow files holds one turn, and the others still get the other."""
    from gql_chat.services import attachments

    checked = inspect_file

    def slow_check(source: Any, filename: str, claimed: str | None) -> Any:
        if filename.startswith("slow"):
            time.sleep(0.6)
        return checked(source, filename, claimed)

    monkeypatch.setattr(attachments, "inspect_file", slow_check)
    monkeypatch.setattr(attachments, "INSPECTION_WAIT", 1.5)
    finished: list[str] = []

    async def upload(user: SignedIn, name: str) -> dict[str, Any]:
        attachment = await upload_attachment(user, b"words", name, "text/plain")
        finished.append(name)
        return attachment

    slow = [asyncio.create_task(upload(alice, f"slow{n}.txt")) for n in range(3)]
    await asyncio.sleep(0.1)
    await upload(bob, "quick.txt")
    assert finished[0] == "quick.txt"  # before any of alice's
    assert [(await task)["filename"] for task in slow] == ["slow0.txt", "slow1.txt", "slow2.txt"]
    assert sorted(finished[1:]) == ["slow0.txt", "slow1.txt", "slow2.txt"]


async def test_an_upload_that_waits_too_long_for_its_turn_is_rate_limited(
    alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gql_chat.services import attachments

    checked = inspect_file

    def slow_check(source: Any, filename: str, claimed: str | None) -> Any:
        time.sleep(0.8)
        return checked(source, filename, claimed)

    monkeypatch.setattr(attachments, "inspect_file", slow_check)
    monkeypatch.setattr(attachments, "INSPECTION_WAIT", 0.3)
    first = asyncio.create_task(upload_file(alice, b"one", "one.txt", "text/plain"))
    await asyncio.sleep(0.1)
    error = error_of(await upload_file(alice, b"two", "two.txt", "text/plain"))
    assert error["extensions"]["code"] == "RATE_LIMITED"
    assert error["extensions"]["retryAfter"] > 0
    assert (await first).status_code == 200
