"""Approximate token counting for prompt budgets: about four characters per token (the usual
rule of thumb for English with BPE tokenizers) plus a small per-message overhead."""

from __future__ import annotations

from gql_chat.llm.types import PromptMessage

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def message_tokens(message: PromptMessage) -> int:
    return estimate_tokens(message.content) + MESSAGE_OVERHEAD_TOKENS


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
