"""Prompt files as OpenRouter takes them, and what they count against the token budget."""

from __future__ import annotations

from bson import ObjectId

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.llm.content_parts import message_body, plugins
from gql_chat.llm.tokens import file_tokens, image_tokens, trim_to_budget
from gql_chat.llm.types import ChatRequest, PromptFile, PromptMessage


def file(kind: AttachmentKind, **fields: object) -> PromptFile:
    values: dict[str, object] = {
        "file_id": ObjectId(),
        "kind": kind,
        "filename": "f",
        "media_type": "x/y",
        "size": 4000,
        **fields,
    }
    return PromptFile(**values)  # type: ignore[arg-type]


def test_a_message_without_files_stays_a_string() -> None:
    assert message_body(PromptMessage("user", "hi")) == {"role": "user", "content": "hi"}


def test_a_request_without_pdfs_asks_for_no_plugin() -> None:
    image = file(AttachmentKind.IMAGE)
    request = ChatRequest("m", [PromptMessage("user", "", (image,))], pdf_engine="pdf-text")
    assert plugins(request) == []
    with_pdf = ChatRequest("m", [PromptMessage("user", "", (file(AttachmentKind.PDF),))])
    assert plugins(with_pdf) == []  # no engine set: OpenRouter's default


def test_image_tokens_follow_the_high_detail_rule() -> None:
    assert image_tokens(512, 512) == 85 + 170  # one tile
    assert image_tokens(1024, 1024) == 85 + 170 * 4  # scaled to 768: 2x2 tiles
    assert image_tokens(4096, 2048) == 85 + 170 * 6  # 2048x1024, then 1536x768: 3x2
    assert image_tokens(100, 8000) == 85 + 170 * 4  # 25.6x2048, never enlarged: 1x4


def test_files_count_by_what_they_are() -> None:
    assert file_tokens(file(AttachmentKind.TEXT, size=4001)) == 1001
    assert file_tokens(file(AttachmentKind.PDF, page_count=3)) == 2400
    assert file_tokens(file(AttachmentKind.PDF, size=50_000)) == 500
    assert file_tokens(file(AttachmentKind.IMAGE)) == 255  # unknown size: one tile


def test_an_older_turn_with_big_files_is_dropped_first() -> None:
    heavy = PromptMessage("user", "old", (file(AttachmentKind.TEXT, size=40_000),))
    newest = PromptMessage("user", "new")
    assert trim_to_budget(None, [heavy, PromptMessage("assistant", "a"), newest], 1000) == [
        PromptMessage("assistant", "a"),
        newest,
    ]
