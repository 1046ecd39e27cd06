"""Model presets ("LLM configs"): validation and the single-default rule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from gql_chat.domain.changes import UNSET, Maybe
from gql_chat.domain.ids import parse_object_id
from gql_chat.domain.presets import LlmConfigRecord, ReasoningEffort
from gql_chat.errors import BadUserInput, LimitReached, NotFound
from gql_chat.services.keyed_lock import KeyedLock
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.owners import keep_unless_owner_gone
from gql_chat.services.validation import check_all, check_prose, check_text
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEvent, UserEventBus, UserEventKind

PRESET_NOT_FOUND = "Preset not found."
MAX_SYSTEM_PROMPT = 32_000
MAX_TOKENS_LIMIT = 1_000_000
MAX_PRESETS = 100
"""Presets one user may have: `llmConfigs` lists them all, unpaged."""


@dataclass(frozen=True, slots=True)
class NewPreset:
    name: str
    model: str
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    is_default: bool = False
    reasoning_effort: ReasoningEffort | None = None


@dataclass(frozen=True, slots=True)
class PresetChanges:
    """What an update sets; None clears an optional field, and `is_default` False leaves the
    user without a default."""

    name: Maybe[str] = UNSET
    model: Maybe[str] = UNSET
    system_prompt: Maybe[str | None] = UNSET
    temperature: Maybe[float | None] = UNSET
    top_p: Maybe[float | None] = UNSET
    max_tokens: Maybe[int | None] = UNSET
    is_default: Maybe[bool] = UNSET
    reasoning_effort: Maybe[ReasoningEffort | None] = UNSET


def _checked_number(
    value: float | None, field: str, low: float, high: float, *, low_open: bool = False
) -> float | None:
    """None clears the field; a number must be in range."""
    if value is None:
        return None
    if math.isnan(value) or value > high or value < low or (low_open and value == low):
        bound = f"greater than {low}" if low_open else f"at least {low}"
        raise BadUserInput(field, f"{field} must be {bound} and at most {high}.")
    return value


def _checked_fields(values: NewPreset | PresetChanges) -> dict[str, Any]:
    """The given fields, checked, under their stored names; every invalid one is reported."""
    fields: dict[str, Any] = {}
    checks: list[Callable[[], object]] = []

    def check(stored_as: str, value: Callable[[], object]) -> None:
        checks.append(lambda: fields.__setitem__(stored_as, value()))

    name, model, prompt = values.name, values.model, values.system_prompt
    temperature, top_p, tokens = values.temperature, values.top_p, values.max_tokens
    if name is not UNSET:
        check("name", lambda: check_text(name, "name", 1, 100, "Name"))
    if model is not UNSET:
        check("model", lambda: check_text(model, "model", 1, 200, "Model"))
    if prompt is not UNSET:
        check("system_prompt", lambda: _checked_prompt(prompt))
    if temperature is not UNSET:
        check("temperature", lambda: _checked_number(temperature, "temperature", 0, 2))
    if top_p is not UNSET:
        check("top_p", lambda: _checked_number(top_p, "topP", 0, 1, low_open=True))
    if tokens is not UNSET:
        check("max_tokens", lambda: _checked_max_tokens(tokens))
    check_all(*checks)
    if values.reasoning_effort is not UNSET:
        effort = values.reasoning_effort
        fields["reasoning_effort"] = None if effort is None else effort.value
    return fields


def _checked_prompt(prompt: str | None) -> str | None:
    if prompt is not None and len(prompt) > MAX_SYSTEM_PROMPT:
        raise BadUserInput(
            "systemPrompt", f"systemPrompt must be at most {MAX_SYSTEM_PROMPT} characters."
        )
    if prompt is not None:
        check_prose(prompt, "systemPrompt", "systemPrompt")
    return prompt


def _checked_max_tokens(tokens: int | None) -> int | None:
    if tokens is not None and not 1 <= tokens <= MAX_TOKENS_LIMIT:
        raise BadUserInput("maxTokens", f"maxTokens must be 1 to {MAX_TOKENS_LIMIT}.")
    return tokens


class LlmConfigService:
    def __init__(
        self,
        database: Database,
        events: UserEventBus,
        model_access: ModelAccess,
        max_presets: int = MAX_PRESETS,
    ) -> None:
        self._db = database
        self._model_access = model_access
        self._events = events
        self._configs = database.llm_configs
        self._max_presets = max_presets
        self._creating = KeyedLock()
        # A user's default changes one at a time here (the store's retry settles races with
        # other instances); concurrent claims no longer unset each other's win in turn.
        self._default_changes = KeyedLock()

    async def get(self, owner_id: ObjectId, config_id: str | ObjectId | None) -> LlmConfigRecord:
        oid = parse_object_id(config_id)
        config = await self._configs.get(owner_id, oid) if oid else None
        if config is None:
            raise NotFound(PRESET_NOT_FOUND)
        return config

    async def find(self, owner_id: ObjectId, config_id: ObjectId) -> LlmConfigRecord | None:
        """The preset, or None when it is gone (a conversation may name a deleted one)."""
        return await self._configs.get(owner_id, config_id)

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

    async def _check_model(self, owner_id: ObjectId, fields: dict[str, Any]) -> None:
        """A preset may name only a model its owner may use (FORBIDDEN, `field: model`)."""
        if "model" in fields:
            owner = await self._db.users.get(owner_id)
            if owner is not None:
                self._model_access.require(owner, fields["model"])

    async def create(self, owner_id: ObjectId, preset: NewPreset) -> LlmConfigRecord:
        fields = _checked_fields(preset)
        await self._check_model(owner_id, fields)
        async with self._creating(owner_id):
            config = await self._configs.insert(owner_id, fields)
            # Counted after the insert, so creates on other instances cannot pass the limit
            # together (at the limit, racing ones may all be refused; none is kept over it).
            await keep_unless_owner_gone(
                self._db.users, owner_id, lambda: self._configs.delete(owner_id, config.id)
            )
            if await self._configs.count(owner_id) > self._max_presets:
                await self._configs.delete(owner_id, config.id)
                raise LimitReached(
                    f"You have {self._max_presets} presets, the most an account may have; "
                    "delete some first.",
                    self._max_presets,
                )
        if preset.is_default:
            async with self._default_changes(owner_id):
                await self._configs.make_default(owner_id, config.id)
            config = await self.get(owner_id, config.id)
        self._changed(owner_id, config.id)
        return config

    async def update(
        self, owner_id: ObjectId, config_id: str, changes: PresetChanges
    ) -> LlmConfigRecord:
        fields = _checked_fields(changes)
        config = await self.get(owner_id, config_id)
        await self._check_model(owner_id, fields)
        if fields:
            await self._configs.update(owner_id, config.id, fields)
        async with self._default_changes(owner_id):
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
            async with self._default_changes(owner_id):
                await self._configs.clear_default(owner_id)
            if previous is not None:
                self._changed(owner_id, previous.id)
            return
        config = await self.get(owner_id, config_id)
        async with self._default_changes(owner_id):
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
