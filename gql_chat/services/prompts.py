"""Which model answers a send, and what it is sent: the preset chain, the system prompt and the
conversation's turns, trimmed oldest first to the token budget."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRole
from gql_chat.domain.presets import LlmConfigRecord, ReasoningEffort
from gql_chat.llm.offline import OFFLINE_MODEL_ID
from gql_chat.llm.tokens import trim_to_budget
from gql_chat.llm.types import ChatProvider, ChatRequest, ModelInfo, PromptFile, PromptMessage
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.validation import check_text

logger = logging.getLogger(__name__)

PROMPT_ROLES = {MessageRole.USER: "user", MessageRole.ASSISTANT: "assistant"}
MODEL_LOOKUP_TIMEOUT = 5.0
"""How long a send with files waits for the model list (cached) to learn what the model takes."""
PromptTurn = tuple[MessageRole, str, tuple[PromptFile, ...]]


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    model: str
    preset: LlmConfigRecord | None
    reasoning_effort: ReasoningEffort | None = None


class PromptService:
    def __init__(
        self, settings: Settings, presets: LlmConfigService, provider: ChatProvider
    ) -> None:
        self._settings = settings
        self._presets = presets
        self._provider = provider

    async def list_models(self) -> list[ModelInfo]:
        return await self._provider.list_models()

    async def model_info(self, model_id: str) -> ModelInfo | None:
        """What the provider says of `model_id`; None when it is not listed or the list cannot
        be had now (a send is not refused for a list it cannot read)."""
        try:
            async with asyncio.timeout(MODEL_LOOKUP_TIMEOUT):
                models = await self._provider.list_models()
        except Exception:
            logger.warning("could not read the model list to check what a model takes")
            return None
        return next((model for model in models if model.id == model_id), None)

    async def resolve_model(
        self,
        owner_id: ObjectId,
        conversation: ConversationRecord | None,
        llm_config_id: str | None,
        model_override: str | None,
        effort_override: ReasoningEffort | None = None,
    ) -> ResolvedModel:
        """Input preset, then the conversation's, then the user's default, then the setting;
        the reasoning effort given with the send, else the preset's."""
        preset: LlmConfigRecord | None = None
        if llm_config_id is not None:
            preset = await self._presets.get(owner_id, llm_config_id)
        elif conversation is not None and conversation.llm_config_id is not None:
            preset = await self._presets.find(owner_id, conversation.llm_config_id)
        if preset is None and llm_config_id is None:
            preset = await self._presets.default_for(owner_id)
        if model_override is not None:
            model_override = check_text(model_override, "model", 1, 200, "model")
        model = model_override or (preset.model if preset else None)
        if self._settings.uses_offline_model:
            model = OFFLINE_MODEL_ID
        return ResolvedModel(
            model=model or self._settings.default_model,
            preset=preset,
            reasoning_effort=effort_override or (preset.reasoning_effort if preset else None),
        )

    def build_request(self, turns: list[PromptTurn], resolved: ResolvedModel) -> ChatRequest:
        """The preset's system prompt plus the conversation's turns (their answers only: a
        reply's reasoning is never sent back) with their files, trimmed oldest first."""
        history = [
            PromptMessage(role=PROMPT_ROLES[role], content=content, files=files)
            for role, content, files in turns
            if role in PROMPT_ROLES and (content or files)
        ]
        preset = resolved.preset
        system = (
            PromptMessage(role="system", content=preset.system_prompt)
            if preset and preset.system_prompt
            else None
        )
        return ChatRequest(
            model=resolved.model,
            messages=trim_to_budget(system, history, self._settings.prompt_token_budget),
            temperature=preset.temperature if preset else None,
            top_p=preset.top_p if preset else None,
            max_tokens=preset.max_tokens if preset else None,
            reasoning_effort=resolved.reasoning_effort.value if resolved.reasoning_effort else None,
        )
