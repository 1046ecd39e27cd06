"""Approximate token counting for prompt budgets: about four characters per token (the usual
rule of thumb for English with BPE tokenizers) plus a small per-message overhead.

Files count by what they are, without reading them: a text file as its bytes over four; an
image as OpenAI's high-detail rule (scaled into 2048x2048, then its short side to 768, 170
tokens per 512-pixel tile plus 85); a PDF as `PDF_PAGE_TOKENS` per page, or its bytes over
`PDF_BYTES_PER_TOKEN` when the page count is unknown. Providers count differently (and
OpenRouter's parser sends a PDF's text), so these only keep a prompt near the budget."""

from __future__ import annotations

import math

from gql_chat.domain.attachments import AttachmentKind
from gql_chat.llm.types import PromptFile, PromptMessage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
IMAGE_TILE = 512
PDF_PAGE_TOKENS = 800
PDF_BYTES_PER_TOKEN = 100


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def message_tokens(message: PromptMessage) -> int:
    return (
        estimate_tokens(message.content)
        + sum(file_tokens(file) for file in message.files)
        + MESSAGE_OVERHEAD_TOKENS
    )


def file_tokens(file: PromptFile) -> int:
    if file.kind is AttachmentKind.IMAGE:
        return image_tokens(file.width or IMAGE_TILE, file.height or IMAGE_TILE)
    if file.kind is AttachmentKind.PDF:
        if file.page_count:
            return file.page_count * PDF_PAGE_TOKENS
        return max(file.size // PDF_BYTES_PER_TOKEN, 1)
    return (file.size + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def image_tokens(width: int, height: int) -> int:
    fit = min(1.0, 2048 / max(width, height))
    scaled_width, scaled_height = width * fit, height * fit
    short = min(1.0, 768 / max(min(scaled_width, scaled_height), 1))
    tiles = math.ceil(scaled_width * short / IMAGE_TILE) * math.ceil(
        scaled_height * short / IMAGE_TILE
    )
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def trim_to_budget(
    system: PromptMessage | None, history: list[PromptMessage], budget: int
) -> list[PromptMessage]:
    """Drop the oldest history first; the system prompt and the newest message always stay."""
    remaining = budget - (message_tokens(system) if system else 0)
    kept: list[PromptMessage] = []
    for message in reversed(history):
        cost = message_tokens(message)
        if kept and cost > remaining:
            break
        kept.append(message)
        remaining -= cost
    kept.reverse()
    return ([system] if system else []) + kept
