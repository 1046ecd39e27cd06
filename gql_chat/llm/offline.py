"""The offline model: a real provider that needs no network, so a fresh server can chat at once.

It answers deterministically from the prompt, word by word, at a realistic pace; with a reasoning
effort set (other than "none") it first reasons aloud, briefly and as deterministically, so that
clients can be built against reasoning offline. It stops at the preset's `maxTokens` (counted
as the prompt's tokens are estimated) with finish reason "length", and a continued reply goes
on where it ends, so `continueGeneration` can be tried offline too. It takes files too, and
says what it was sent: each file's name, type and size, an image's dimensions, a PDF's pages, a
text file's first words."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.llm.tokens import estimate_tokens, file_tokens
from gql_chat.llm.types import (
    ChatRequest,
    Completion,
    ModelInfo,
    PromptFile,
    ProviderEvent,
    ReasoningDelta,
    RequestSent,
    TextDelta,
    TokenUsage,
)

OFFLINE_MODEL_ID = "offline/echo"
OFFLINE_MODEL = ModelInfo(
    id=OFFLINE_MODEL_ID,
    name="Offline echo (no API key configured)",
    context_length=16_000,
    prompt_price=0.0,
    completion_price=0.0,
    supports_reasoning=True,
    input_modalities=("text", "image", "file"),
)
QUOTE_WORDS = 60
FILE_QUOTE_WORDS = 12
FILE_QUOTE_CHARS = 1000


def offline_answer(request: ChatRequest) -> str:
    last = next((m for m in reversed(request.messages) if m.role == "user"), None)
    words = last.content.split() if last else []
    quoted = " ".join(words[:QUOTE_WORDS]) + (" …" if len(words) > QUOTE_WORDS else "")
    turns = sum(1 for m in request.messages if m.role == "user")
    files = "".join(f" {describe_file(file)}" for file in last.files) if last else ""
    return (
        f"You said: “{quoted}”. This is {OFFLINE_MODEL_ID}, the built-in offline model "
        f"(turn {turns} of this conversation, {len(words)} words in your message).{files} "
        "Set OPENROUTER_API_KEY to talk to a real model."
    )


def describe_file(file: PromptFile) -> str:
    """One sentence about a file, from what the prompt carries."""
    said = f"You attached {file.filename} ({file.media_type}, {file.size} bytes"
    if file.kind is AttachmentKind.IMAGE:
        said += f", {file.width}x{file.height} pixels"
    elif file.kind is AttachmentKind.PDF and file.page_count:
        said += f", {file.page_count} pages"
    elif file.kind is AttachmentKind.TEXT:
        words = file.content[:FILE_QUOTE_CHARS].split()  # the start only: files are large
        first = " ".join(words[:FILE_QUOTE_WORDS]) + (" …" if len(words) > FILE_QUOTE_WORDS else "")
        said += f", starting “{first}”"
    return said + ")."


def offline_reasoning(request: ChatRequest) -> str:
    """What the offline model "thinks" before answering; empty without a reasoning effort."""
    if request.reasoning_effort in (None, "none"):
        return ""
    last_user = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
    return (
        f"Reasoning effort {request.reasoning_effort}. The last message has "
        f"{len(last_user.split())} words; I will quote it back."
    )


def _answer_start(request: ChatRequest) -> str:
    """The text of a reply being continued: the prompt's last message, when it is the
    model's."""
    last = request.messages[-1] if request.messages else None
    return last.content if last is not None and last.role == "assistant" else ""


class OfflineProvider:
    def __init__(self, token_delay: float) -> None:
        self._token_delay = token_delay

    async def stream(
        self, request: ChatRequest, on_sent: RequestSent | None = None
    ) -> AsyncIterator[ProviderEvent]:
        if on_sent is not None:
            on_sent()  # nothing to send: the answer starts now
        answer_start = _answer_start(request)
        reasoning = "" if answer_start else offline_reasoning(request)
        for piece in re.findall(r"\S+\s*", reasoning):
            if self._token_delay:
                await asyncio.sleep(self._token_delay)
            yield ReasoningDelta(piece)
        answer = offline_answer(request)
        # A continued reply goes on where its text ends (the answer is deterministic).
        rest = answer[len(answer_start) :] if answer.startswith(answer_start) else ""
        written = ""
        finish_reason = "stop"
        for piece in re.findall(r"\S+\s*", rest):
            if request.max_tokens and estimate_tokens(written + piece) > request.max_tokens:
                finish_reason = "length"
                break
            if self._token_delay:
                await asyncio.sleep(self._token_delay)
            written += piece
            yield TextDelta(piece)
        prompt = sum(
            estimate_tokens(m.content) + sum(file_tokens(file) for file in m.files)
            for m in request.messages
        )
        reasoning_tokens = estimate_tokens(reasoning)
        yield Completion(
            finish_reason=finish_reason,
            usage=TokenUsage(
                prompt_tokens=prompt,
                completion_tokens=estimate_tokens(written) + reasoning_tokens,
                cost=0.0,
                reasoning_tokens=reasoning_tokens if reasoning else None,
            ),
            generation_id=None,
        )

    async def list_models(self) -> list[ModelInfo]:
        return [OFFLINE_MODEL]
