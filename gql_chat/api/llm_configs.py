"""Model presets: `llmConfigs`, `llmConfig`, and their mutations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.services.llm_configs import PresetChanges, validate_preset_fields


@strawberry.type(name="LlmConfig")
class LlmConfigType:
    id: strawberry.ID
    name: str
    model: str = strawberry.field(description="OpenRouter model id, e.g. openai/gpt-4o-mini.")
    system_prompt: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    is_default: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, config: LlmConfigRecord) -> LlmConfigType:
        return cls(
            id=strawberry.ID(str(config.id)),
            name=config.name,
            model=config.model,
            system_prompt=config.system_prompt,
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_tokens,
            is_default=config.is_default,
            created_at=config.created_at,
            updated_at=config.updated_at,
        )


@strawberry.input
class CreateLlmConfigInput:
    name: str
    model: str
    system_prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    is_default: bool | None = None


@strawberry.input
class UpdateLlmConfigInput:
    name: str | None = None
    model: str | None = None
    system_prompt: strawberry.Maybe[str | None]
    temperature: strawberry.Maybe[float | None]
    top_p: strawberry.Maybe[float | None]
    max_tokens: strawberry.Maybe[int | None]
    is_default: bool | None = None


def _create_changes(data: CreateLlmConfigInput) -> PresetChanges:
    raw = {
        "name": data.name,
        "model": data.model,
        "systemPrompt": data.system_prompt,
        "temperature": data.temperature,
        "topP": data.top_p,
        "maxTokens": data.max_tokens,
    }
    return PresetChanges(fields=validate_preset_fields(raw), is_default=data.is_default)


def _update_changes(data: UpdateLlmConfigInput) -> PresetChanges:
    """Only what the client sent; an explicit null clears an optional field."""
    raw: dict[str, Any] = {}
    if data.name is not None:
        raw["name"] = data.name
    if data.model is not None:
        raw["model"] = data.model
    for key, maybe in (
        ("systemPrompt", data.system_prompt),
        ("temperature", data.temperature),
        ("topP", data.top_p),
        ("maxTokens", data.max_tokens),
    ):
        if maybe is not None:
            raw[key] = maybe.value
    return PresetChanges(fields=validate_preset_fields(raw), is_default=data.is_default)


@strawberry.type
class LlmConfigQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def llm_configs(self, info: strawberry.Info) -> list[LlmConfigType]:
        configs = await info.context.services.presets.list_all(await info.context.owner_id())
        return [LlmConfigType.from_record(c) for c in configs]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def llm_config(self, info: strawberry.Info, id: strawberry.ID) -> LlmConfigType | None:
        config = await info.context.services.presets.get(await info.context.owner_id(), id)
        return LlmConfigType.from_record(config)


@strawberry.type
class LlmConfigMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_llm_config(
        self, info: strawberry.Info, input: CreateLlmConfigInput
    ) -> LlmConfigType:
        config = await info.context.services.presets.create(
            await info.context.owner_id(), _create_changes(input)
        )
        return LlmConfigType.from_record(config)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_llm_config(
        self, info: strawberry.Info, id: strawberry.ID, input: UpdateLlmConfigInput
    ) -> LlmConfigType:
        config = await info.context.services.presets.update(
            await info.context.owner_id(), id, _update_changes(input)
        )
        return LlmConfigType.from_record(config)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_llm_config(self, info: strawberry.Info, id: strawberry.ID) -> bool:
        await info.context.services.presets.delete(await info.context.owner_id(), id)
        return True
