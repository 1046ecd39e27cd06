"""A prompt message as OpenRouter takes it: plain text, or, with files, a list of parts (the
message's text, then each file: images as `image_url` parts, PDFs as `file` parts, text files
inline as text under their names)."""

from __future__ import annotations

from typing import Any

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.llm.types import ChatRequest, PromptFile, PromptMessage

FILE_PARSER_PLUGIN = "file-parser"


def message_body(message: PromptMessage) -> dict[str, Any]:
    if not message.files:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.extend(file_part(file) for file in message.files)
    return {"role": message.role, "content": parts}


def file_part(file: PromptFile) -> dict[str, Any]:
    if file.kind is AttachmentKind.IMAGE:
        return {"type": "image_url", "image_url": {"url": file.content}}
    if file.kind is AttachmentKind.PDF:
        return {"type": "file", "file": {"filename": file.filename, "file_data": file.content}}
    return {"type": "text", "text": inline_text(file)}


def inline_text(file: PromptFile) -> str:
    return f"--- {file.filename} ---\n{file.content}\n--- end of {file.filename} ---"


def plugins(request: ChatRequest) -> list[dict[str, Any]]:
    """OpenRouter's PDF parser, with the configured engine, when the prompt has a PDF."""
    has_pdf = any(
        file.kind is AttachmentKind.PDF for message in request.messages for file in message.files
    )
    if not has_pdf or request.pdf_engine is None:
        return []
    return [{"id": FILE_PARSER_PLUGIN, "pdf": {"engine": request.pdf_engine}}]
