"""What a model is sent of a message's files, checked in the request body the fake OpenRouter
receives: images as `image_url` parts (base64 data URLs of the stored bytes), PDFs as `file`
parts with the `file-parser` plugin and its configured engine, text files inline under their
names; and the refusal of images for a model that does not take them, before anything is
stored."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.applications import Starlette

from gql_chat.config import Settings
from gql_chat.services.titles import TITLE_PROMPT
from tests.conftest import openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter
from tests.files_support import pdf, png
from tests.support import SignedIn, final_message, upload_attachment

SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) {
    conversation { id } userMessage { id } assistantMessage { id } } }"""
STATUS = "query($id: ID!) { message(id: $id) { status } }"
TEXT_ONLY_MODEL = "meta/free"  # the fake lists it without image input


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter, pdf_engine="mistral-ocr")


async def send(user: SignedIn, **fields: Any) -> dict[str, Any]:
    sent: dict[str, Any] = (await user.ok(SEND, {"i": fields}))["sendMessage"]
    await final_message(user, sent["assistantMessage"]["id"])
    return sent


def chat_requests(fake: FakeOpenRouter) -> list[dict[str, Any]]:
    """The replies' requests (not the title's)."""
    return [
        request.body
        for request in fake.requests
        if request.body["messages"][0].get("content") != TITLE_PROMPT
    ]


def last_chat_request(fake: FakeOpenRouter) -> dict[str, Any]:
    return chat_requests(fake)[-1]


def data_url_bytes(url: str, media_type: str) -> bytes:
    prefix = f"data:{media_type};base64,"
    assert url.startswith(prefix)
    return base64.b64decode(url[len(prefix) :])


async def test_files_go_as_image_file_and_text_parts(
    alice: SignedIn, fake_openrouter: FakeOpenRouter, http: Any
) -> None:
    picture = await upload_attachment(alice, png(30, 20), "chart.png")
    paper_bytes = pdf(4)
    paper = await upload_attachment(alice, paper_bytes, "paper.pdf")
    notes = await upload_attachment(alice, "Résumé notes\nline two".encode(), "notes.md")
    await send(
        alice,
        content="What do these show?",
        attachmentIds=[picture["id"], paper["id"], notes["id"]],
    )
    body = last_chat_request(fake_openrouter)
    parts = body["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["text", "image_url", "file", "text"]
    assert parts[0]["text"] == "What do these show?"
    stored_picture = (await http.get(picture["url"].split("testserver", 1)[1])).content
    assert data_url_bytes(parts[1]["image_url"]["url"], "image/png") == stored_picture
    assert parts[2]["file"]["filename"] == "paper.pdf"
    assert data_url_bytes(parts[2]["file"]["file_data"], "application/pdf") == paper_bytes
    assert parts[3]["text"] == "--- notes.md ---\nRésumé notes\nline two\n--- end of notes.md ---"
    assert body["plugins"] == [{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}]


async def test_without_a_pdf_no_plugin_is_asked_for(
    alice: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    picture = await upload_attachment(alice, png(), "a.png")
    await send(alice, content="", attachmentIds=[picture["id"]])
    body = last_chat_request(fake_openrouter)
    assert "plugins" not in body
    assert [part["type"] for part in body["messages"][-1]["content"]] == ["image_url"]


async def test_an_image_for_a_model_without_image_input_is_refused_before_anything_is_stored(
    alice: SignedIn, fake_openrouter: FakeOpenRouter, app: Starlette
) -> None:
    picture = await upload_attachment(alice, png(), "a.png")
    result = await alice.execute(
        SEND, {"i": {"content": "look", "model": TEXT_ONLY_MODEL, "attachmentIds": [picture["id"]]}}
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "attachmentIds"
    assert TEXT_ONLY_MODEL in result.errors[0]["message"]
    assert chat_requests(fake_openrouter) == []
    conversations = await alice.ok("{ conversations(first: 5) { edges { node { id } } } }")
    assert conversations["conversations"]["edges"] == []
    # Still an unsent upload: a model that takes images gets it.
    text = await upload_attachment(alice, b"plain words", "words.txt")
    await send(alice, content="and now?", attachmentIds=[picture["id"], text["id"]])
    assert len(chat_requests(fake_openrouter)) == 1


async def test_a_text_only_model_gets_the_conversation_without_its_earlier_images(
    alice: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    picture = await upload_attachment(alice, png(), "earlier.png")
    notes = await upload_attachment(alice, b"kept words", "kept.txt")
    first = await send(alice, content="first", attachmentIds=[picture["id"], notes["id"]])
    conversation = first["conversation"]["id"]
    await send(alice, content="second", conversationId=conversation, model=TEXT_ONLY_MODEL)
    messages = last_chat_request(fake_openrouter)["messages"]
    assert messages[0]["content"] == [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "--- kept.txt ---\nkept words\n--- end of kept.txt ---"},
    ]
    assert messages[-1] == {"role": "user", "content": "second"}
    # With a model that takes images, the earlier image goes again.
    await send(alice, content="third", conversationId=conversation)
    first_turn = last_chat_request(fake_openrouter)["messages"][0]["content"]
    assert [part["type"] for part in first_turn] == ["text", "image_url", "text"]


async def test_a_text_file_is_cut_to_its_share_of_the_token_budget(
    alice: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """The default budget (16,000 tokens) lets a text file bring 64,000 characters."""
    words = ("word " * 40_000).encode()  # 200,000 characters
    log = await upload_attachment(alice, words, "huge.log")
    await send(alice, content="summarise", attachmentIds=[log["id"]])
    text = last_chat_request(fake_openrouter)["messages"][-1]["content"][1]["text"]
    assert text.startswith("--- huge.log ---\nword word")
    assert f"[… cut here: the first 64000 characters of {len(words)} bytes]" in text
    assert len(text) < 64_200


async def test_images_and_pdfs_of_a_prompt_are_bounded_newest_first(
    alice: SignedIn, fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gql_chat.services import attachments

    older = await upload_attachment(alice, png(60, 60, color="blue"), "older.png")
    newer = await upload_attachment(alice, png(50, 50), "newer.png")
    # Room for either image alone, not for both.
    monkeypatch.setattr(
        attachments, "MAX_PROMPT_FILE_BYTES", max(older["size"], newer["size"]) + 10
    )
    first = await send(alice, content="one", attachmentIds=[older["id"]])
    conversation = first["conversation"]["id"]
    await send(alice, content="two", conversationId=conversation, attachmentIds=[newer["id"]])
    messages = last_chat_request(fake_openrouter)["messages"]
    assert messages[0]["content"][1]["type"] == "text"  # the older image is only named
    assert "older.png" in messages[0]["content"][1]["text"]
    assert "not sent" in messages[0]["content"][1]["text"]
    assert messages[-1]["content"][1]["type"] == "image_url"
    both = [older["id"], newer["id"]]
    too_much = await upload_attachment(alice, png(70, 70), "third.png")
    result = await alice.execute(
        SEND,
        {
            "i": {
                "content": "x",
                "conversationId": conversation,
                "attachmentIds": [too_much["id"], *both[1:]],
            }
        },
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == "attachmentIds"


async def test_regenerating_with_a_model_that_cannot_see_the_question_is_refused(
    alice: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    picture = await upload_attachment(alice, png(), "only-a-picture.png")
    sent = await send(alice, content="", attachmentIds=[picture["id"]])
    requests_before = len(chat_requests(fake_openrouter))
    result = await alice.execute(
        """mutation($id: ID!, $model: String) { regenerateMessage(messageId: $id, model: $model) {
            assistantMessage { id } } }""",
        {"id": sent["assistantMessage"]["id"], "model": TEXT_ONLY_MODEL},
    )
    assert result.error_codes == ["BAD_USER_INPUT"]
    assert len(chat_requests(fake_openrouter)) == requests_before
    siblings = await alice.ok(
        "query($id: ID!) { message(id: $id) { siblingIds } }",
        {"id": sent["assistantMessage"]["id"]},
    )
    assert siblings["message"]["siblingIds"] == [sent["assistantMessage"]["id"]]
