"""Model presets ("LLM configs"): a model with its sampling settings and system prompt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId


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
