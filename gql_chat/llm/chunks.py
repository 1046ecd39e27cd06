"""What one streamed chat-completion chunk says, read strictly: a chunk that is not the shape
it should be is a malformed stream (an upstream error), never a value that fails later, outside
the provider's error handling (a list where text belonged left a reply unfinished for good)."""

from __future__ import annotations

import logging
import math
from typing import Any

from gql_chat.llm.errors import MalformedStream
from gql_chat.llm.types import TokenUsage

logger = logging.getLogger(__name__)


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def first_choice(chunk: dict[str, Any]) -> dict[str, Any]:
    """The chunk's first choice; {} when it has none (a usage-only chunk)."""
    choices = chunk.get("choices")
    if choices is None or choices == []:
        return {}
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise MalformedStream()
    return choices[0]


def _delta(choice: dict[str, Any]) -> dict[str, Any]:
    delta = choice.get("delta")
    if delta is None:
        return {}
    if not isinstance(delta, dict):
        raise MalformedStream()
    return delta


def delta_text(choice: dict[str, Any]) -> str:
    """The text a choice's delta adds: a string, or a list of content parts whose text parts
    count (other parts, e.g. images, are skipped). Anything else is a malformed stream, never a
    value that fails later, outside the provider's error handling."""
    content = _delta(choice).get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise MalformedStream()
    texts = []
    for part in content:
        if not isinstance(part, dict):
            raise MalformedStream()
        if part.get("type") == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise MalformedStream()
            texts.append(text)
    return "".join(texts)


REASONING_DETAIL_TEXT = {"reasoning.text": "text", "reasoning.summary": "summary"}
"""The `reasoning_details` entries that carry readable text, and the key holding it (an
encrypted entry, `reasoning.encrypted`, shows nothing)."""


def delta_reasoning(choice: dict[str, Any]) -> str:
    """The reasoning text a choice's delta adds: OpenRouter's `reasoning` string, or else the
    readable entries of `reasoning_details` (it sends the same text in both). A value of the
    wrong shape is a malformed stream, like `delta_text`'s."""
    delta = _delta(choice)
    reasoning = delta.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise MalformedStream()
    if reasoning:
        return reasoning
    details = delta.get("reasoning_details")
    if details is None:
        return ""
    if not isinstance(details, list):
        raise MalformedStream()
    texts = []
    for detail in details:
        if not isinstance(detail, dict):
            raise MalformedStream()
        kind = detail.get("type")
        key = REASONING_DETAIL_TEXT.get(kind) if isinstance(kind, str) else None
        if key is None:  # encrypted, or a kind this version does not know: nothing to show
            continue
        text = detail.get(key)
        if text is not None and not isinstance(text, str):
            raise MalformedStream()
        texts.append(text or "")
    return "".join(texts)


MAX_REPORTED_TOKENS = 2**31 - 1
"""More tokens than any one reply can have: a count beyond it is not believed."""
MAX_REPORTED_COST = 1_000_000.0
"""More than any one reply can cost (in credits, i.e. US dollars): a cost beyond it is not
believed. Two replies at the float limit summed to infinity, which usage reports showed as free;
2**31 replies at this bound still sum to a finite amount."""


def token_count(value: Any) -> int | None:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_REPORTED_TOKENS):
        return None
    return int(value)


def parse_usage(raw: Any) -> TokenUsage | None:
    """The provider's usage report, or None when it is not believable (not a count, negative,
    huge, a cost that is not a finite amount): stored as given, such numbers broke every later
    read of the conversation's usage (GraphQL's Int is 32 bits) or the reply's final write."""
    usage = believable_usage(raw)
    if usage is None:
        logger.warning("ignored a usage report from the model provider that is not believable")
    return usage


def believable_usage(raw: Any) -> TokenUsage | None:
    if not isinstance(raw, dict):
        return None
    prompt = token_count(raw.get("prompt_tokens"))
    completion = token_count(raw.get("completion_tokens"))
    cost = raw.get("cost")
    if cost is not None:
        cost = float_or_none(cost)
        if cost is None or not 0 <= cost <= MAX_REPORTED_COST:
            return None
    if prompt is None or completion is None:
        return None
    return TokenUsage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
        reasoning_tokens=reasoning_tokens(raw.get("completion_tokens_details")),
    )


def reasoning_tokens(details: Any) -> int | None:
    """`completion_tokens_details.reasoning_tokens`; None when absent or not a believable count
    (the rest of the report still stands)."""
    if not isinstance(details, dict) or details.get("reasoning_tokens") is None:
        return None
    return token_count(details["reasoning_tokens"])


def float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
