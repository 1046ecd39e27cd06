"""Model presets: `llmConfigs`, `llmConfig`, and their mutations."""

from __future__ import annotations

from datetime import datetime

import strawberry

from gql_chat.api.context import Info
from gql_chat.api.inputs import given, unless_null
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.domain.presets import ReasoningEffort as ReasoningEffortValue
from gql_chat.services.llm_configs import NewPreset, PresetChanges

ReasoningEffort = strawberry.enum(
    ReasoningEffortValue,
    name="ReasoningEffort",
    description=(
        "How hard a reasoning model thinks, sent as OpenRouter's `reasoning.effort`; NONE asks "
        "for no reasoning. Models that do not reason ignore it."
    ),
)


@strawberry.type(name="LlmConfig")
class LlmConfigType:
    id: strawberry.ID
    name: str
    model: str = strawberry.field(description="OpenRouter model id, e.g. openai/gpt-4o-mini.")
    system_prompt: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    reasoning_effort: ReasoningEffort | None = strawberry.field(  # type: ignore[valid-type]
        description="Null: the model's own default."
    )
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
            reasoning_effort=config.reasoning_effort,
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
    reasoning_effort: ReasoningEffort | None = None  # type: ignore[valid-type]
    is_default: bool | None = None


@strawberry.input
class UpdateLlmConfigInput:
    name: str | None = None
    model: str | None = None
    system_prompt: strawberry.Maybe[str | None]
    temperature: strawberry.Maybe[float | None]
    top_p: strawberry.Maybe[float | None]
    max_tokens: strawberry.Maybe[int | None]
    reasoning_effort: strawberry.Maybe[ReasoningEffort | None]  # type: ignore[valid-type]
    is_default: bool | None = None


def _new_preset(data: CreateLlmConfigInput) -> NewPreset:
    return NewPreset(
        name=data.name,
        model=data.model,
        system_prompt=data.system_prompt,
        temperature=data.temperature,
        top_p=data.top_p,
        max_tokens=data.max_tokens,
        reasoning_effort=data.reasoning_effort,
        is_default=bool(data.is_default),
    )


def _changes(data: UpdateLlmConfigInput) -> PresetChanges:
    """Only what the client sent; an explicit null clears an optional field."""
    return PresetChanges(
        name=unless_null(data.name),
        model=unless_null(data.model),
        system_prompt=given(data.system_prompt),
        temperature=given(data.temperature),
        top_p=given(data.top_p),
        max_tokens=given(data.max_tokens),
        reasoning_effort=given(data.reasoning_effort),
        is_default=unless_null(data.is_default),
    )


@strawberry.type
class LlmConfigQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def llm_configs(self, info: Info) -> list[LlmConfigType]:
        configs = await info.context.services.presets.list_all(await info.context.owner_id())
        return [LlmConfigType.from_record(c) for c in configs]

    @strawberry.field(permission_classes=[IsAuthenticated])
    async def llm_config(self, info: Info, id: strawberry.ID) -> LlmConfigType | None:
        config = await info.context.services.presets.get(await info.context.owner_id(), id)
        return LlmConfigType.from_record(config)


@strawberry.type
class LlmConfigMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def create_llm_config(self, info: Info, input: CreateLlmConfigInput) -> LlmConfigType:
        config = await info.context.services.presets.create(
            await info.context.owner_id(), _new_preset(input)
        )
        return LlmConfigType.from_record(config)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def update_llm_config(
        self, info: Info, id: strawberry.ID, input: UpdateLlmConfigInput
    ) -> LlmConfigType:
        config = await info.context.services.presets.update(
            await info.context.owner_id(), id, _changes(input)
        )
        return LlmConfigType.from_record(config)

    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def delete_llm_config(self, info: Info, id: strawberry.ID) -> bool:
        await info.context.services.presets.delete(await info.context.owner_id(), id)
        return True
