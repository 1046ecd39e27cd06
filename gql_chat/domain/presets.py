"""Model presets ("LLM configs"): a model with its sampling settings, reasoning effort and
system prompt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bson import ObjectId


class ReasoningEffort(StrEnum):
    """How hard a reasoning model thinks, as OpenRouter's `reasoning.effort` names it (each
    value is what it is sent as). NONE asks for no reasoning."""

    NONE = "none"
    MINIMAL = "minimal"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    XHIGH = "xhigh"


@dataclass(frozen=True, slots=True)
class LlmConfigRecord:
    id: ObjectId
    owner_id: ObjectId
    name: str
    model: str
    system_prompt: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    is_default: bool
    created_at: datetime
    updated_at: datetime
    reasoning_effort: ReasoningEffort | None = None
    """None: the model's own default."""
