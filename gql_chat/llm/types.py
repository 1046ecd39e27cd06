"""What every provider speaks: a prompt in, answer and reasoning deltas and one completion
record out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

from bson import ObjectId

from gql_chat.domain.attachments import AttachmentKind


@dataclass(frozen=True, slots=True)
class PromptFile:
    """A file a user message carries: what it is, and (loaded just before the request goes)
    `content`: an image's or a PDF's `data:` URL, a text file's text."""

    file_id: ObjectId
    kind: AttachmentKind
    filename: str
    media_type: str
    size: int
    width: int | None = None
    height: int | None = None
    page_count: int | None = None
    content: str = ""


@dataclass(frozen=True, slots=True)
class PromptMessage:
    role: str  # "system" | "user" | "assistant"
    content: str
    files: tuple[PromptFile, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: list[PromptMessage]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    reasoning_effort: str | None = None
    """OpenRouter's `reasoning.effort` ("none" ... "xhigh"); None: the model's default."""
    pdf_engine: str | None = None
    """OpenRouter's `file-parser` engine for the PDFs of the prompt."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Answer text (never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """Reasoning text the model shows before or while it answers (never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int
    cost: float | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """The last event of a successful stream."""

    finish_reason: str | None
    usage: TokenUsage | None = None
    generation_id: str | None = None


ProviderEvent = TextDelta | ReasoningDelta | Completion


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    name: str
    context_length: int | None = None
    prompt_price: float | None = None
    completion_price: float | None = None
    input_modalities: tuple[str, ...] = ("text",)
    supports_reasoning: bool = False


RequestSent = Callable[[], None]
"""Called once a stream's request has left for the model (again on a retry)."""


class ChatProvider(Protocol):
    """Streams a reply; failures are raised as `UpstreamError` and its subclasses."""

    def stream(
        self, request: ChatRequest, on_sent: RequestSent | None = None
    ) -> AsyncIterator[ProviderEvent]: ...

    async def list_models(self) -> list[ModelInfo]: ...
