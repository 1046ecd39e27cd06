"""Model presets ("LLM configs"): validation and the single-default rule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.errors import BadUserInput, NotFound
from gql_chat.services.validation import check_prose, check_text
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

PRESET_NOT_FOUND = "Preset not found."
MAX_SYSTEM_PROMPT = 32_000
MAX_TOKENS_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class PresetChanges:
    """Fields to set; a field left out of `fields` is unchanged."""

    fields: dict[str, Any]
    is_default: bool | None = None


def _check_number(
    value: float, field: str, low: float, high: float, low_open: bool = False
) -> float:
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"greater than {low}" if low_open else f"at least {low}"
        raise BadUserInput(field, f"{field} must be {bound} and at most {high}.")
    return value


def validate_preset_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Check the given preset fields (GraphQL names) and return them as stored fields."""
    fields: dict[str, Any] = {}
    if "name" in raw:
        fields["name"] = check_text(raw["name"] or "", "name", 1, 100, "Name")
    if "model" in raw:
        fields["model"] = check_text(raw["model"] or "", "model", 1, 200, "Model")
    if "systemPrompt" in raw:
        prompt = raw["systemPrompt"]
        if prompt is not None and len(prompt) > MAX_SYSTEM_PROMPT:
            raise BadUserInput(
                "systemPrompt", f"systemPrompt must be at most {MAX_SYSTEM_PROMPT} characters."
            )
        if prompt is not None:
            check_prose(prompt, "systemPrompt", "systemPrompt")
        fields["system_prompt"] = prompt
    if "temperature" in raw:
        value = raw["temperature"]
        fields["temperature"] = None if value is None else _check_number(value, "temperature", 0, 2)
    if "topP" in raw:
        value = raw["topP"]
        fields["top_p"] = None if value is None else _check_number(value, "topP", 0, 1, True)
    if "maxTokens" in raw:
        value = raw["maxTokens"]
        if value is not None and not 1 <= value <= MAX_TOKENS_LIMIT:
            raise BadUserInput("maxTokens", f"maxTokens must be 1 to {MAX_TOKENS_LIMIT}.")
        fields["max_tokens"] = value
    return fields


class LlmConfigService:
    def __init__(self, database: Database, events: UserEventBus) -> None:
        self._db = database
        self._events = events
        self._configs = database.llm_configs

    async def get(self, owner_id: ObjectId, config_id: str | ObjectId | None) -> LlmConfigRecord:
        oid = parse_object_id(config_id)
        config = await self._configs.get(owner_id, oid) if oid else None
        if config is None:
            raise NotFound(PRESET_NOT_FOUND)
        return config

    async def list_all(self, owner_id: ObjectId) -> list[LlmConfigRecord]:
        return await self._configs.list_all(owner_id)

    async def default_for(self, owner_id: ObjectId) -> LlmConfigRecord | None:
        defaults = await self.defaults_for([owner_id])
        return defaults[0] if defaults else None

    async def get_many(self, owner_id: ObjectId, ids: list[ObjectId]) -> list[LlmConfigRecord]:
        """The owner's presets among `ids`, in one read (a page's presets, batched)."""
        return await self._configs.get_many(owner_id, ids)

    async def defaults_for(self, owner_ids: list[ObjectId]) -> list[LlmConfigRecord]:
        """The default preset of each owner that has one, in one read."""
        return await self._configs.get_defaults(owner_ids)

    async def create(self, owner_id: ObjectId, changes: PresetChanges) -> LlmConfigRecord:
        config = await self._configs.insert(owner_id, changes.fields)
        if changes.is_default:
            await self._configs.make_default(owner_id, config.id)
            config = await self.get(owner_id, config.id)
        self._changed(owner_id, config.id)
        return config

    async def update(
        self, owner_id: ObjectId, config_id: str, changes: PresetChanges
    ) -> LlmConfigRecord:
        config = await self.get(owner_id, config_id)
        if changes.fields:
            await self._configs.update(owner_id, config.id, changes.fields)
        if changes.is_default is True:
            await self._configs.make_default(owner_id, config.id)
        elif changes.is_default is False:
            await self._configs.clear_default(owner_id, config.id)
        self._changed(owner_id, config.id)
        return await self.get(owner_id, config.id)

    async def set_default(self, owner_id: ObjectId, config_id: str | None) -> None:
        """`None` leaves the user without a default preset."""
        if config_id is None:
            previous = await self.default_for(owner_id)
            await self._configs.clear_default(owner_id)
            if previous is not None:
                self._changed(owner_id, previous.id)
            return
        config = await self.get(owner_id, config_id)
        await self._configs.make_default(owner_id, config.id)
        self._changed(owner_id, config.id)

    async def delete(self, owner_id: ObjectId, config_id: str) -> None:
        """Conversations on this preset fall back to the user's default (first, so a retry
        after a failure never leaves a conversation pointing at a deleted preset)."""
        config = await self.get(owner_id, config_id)
        await self._db.conversations.clear_preset(owner_id, config.id)
        await self._configs.delete(owner_id, config.id)
        self._changed(owner_id, config.id)

    def _changed(self, owner_id: ObjectId, config_id: ObjectId) -> None:
        self._events.publish(
            owner_id, UserEvent(UserEventKind.LLM_CONFIG_CHANGED, llm_config_id=config_id)
        )
