"""What a send asks the model: which model (the preset chain, the offline override) and which
turns, trimmed oldest first so the prompt fits the budget while the system prompt and the
question being asked always go."""

from __future__ import annotations

from typing import Any, cast

import pytest
from bson import ObjectId
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from gql_chat.config import Settings
from gql_chat.domain.clock import utc_now
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRole
from gql_chat.domain.presets import LlmConfigRecord
from gql_chat.errors import BadUserInput, NotFound
from gql_chat.llm.offline import OFFLINE_MODEL_ID
from gql_chat.llm.tokens import message_tokens, trim_to_budget
from gql_chat.llm.types import ChatProvider, PromptMessage
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.prompts import PromptService, PromptTurn, ResolvedModel

OWNER = ObjectId()
SETTING_MODEL = "setting/model"


def preset(model: str, **fields: Any) -> LlmConfigRecord:
    now = utc_now()
    values: dict[str, Any] = {
        "id": ObjectId(),
        "owner_id": OWNER,
        "name": model,
        "model": model,
        "system_prompt": None,
        "temperature": None,
        "top_p": None,
        "max_tokens": None,
        "is_default": False,
        "created_at": now,
        "updated_at": now,
    }
    values.update(fields)
    return LlmConfigRecord(**values)


def conversation(llm_config_id: ObjectId | None = None) -> ConversationRecord:
    now = utc_now()
    return ConversationRecord(
        id=ObjectId(),
        owner_id=OWNER,
        title="t",
        title_source="default",
        folder_id=None,
        llm_config_id=llm_config_id,
        pinned=False,
        archived=False,
        created_at=now,
        updated_at=now,
        last_message_at=None,
        active_leaf_id=None,
    )


class FakePresets:
    """The three reads `resolve_model` makes, over a dict, recording which it made."""

    def __init__(self, *presets: LlmConfigRecord, default: LlmConfigRecord | None = None) -> None:
        self.presets = {p.id: p for p in (*presets, *([default] if default else []))}
        self.default = default
        self.calls: list[str] = []

    async def get(self, owner_id: ObjectId, config_id: str | ObjectId | None) -> LlmConfigRecord:
        self.calls.append("get")
        found = self.presets.get(ObjectId(config_id)) if config_id else None
        if found is None or found.owner_id != owner_id:
            raise NotFound("Preset not found.")
        return found

    async def find(self, owner_id: ObjectId, config_id: ObjectId) -> LlmConfigRecord | None:
        self.calls.append("find")
        found = self.presets.get(config_id)
        return found if found is not None and found.owner_id == owner_id else None

    async def default_for(self, owner_id: ObjectId) -> LlmConfigRecord | None:
        self.calls.append("default_for")
        return self.default


def settings(*, online: bool = True, budget: int = 16_000) -> Settings:
    return Settings.model_construct(
        openrouter_api_key=SecretStr("sk-test") if online else None,
        default_model=SETTING_MODEL,
        prompt_token_budget=budget,
    )


def service(presets: FakePresets | None = None, **setting: Any) -> PromptService:
    return PromptService(
        settings(**setting),
        cast(LlmConfigService, presets or FakePresets()),
        cast(ChatProvider, object()),  # build_request and resolve_model never call it
    )


# Model resolution ---------------------------------------------------------------------------


async def test_the_input_preset_comes_first() -> None:
    chosen, on_conversation, default = preset("input"), preset("conv"), preset("default")
    presets = FakePresets(chosen, on_conversation, default=default)
    resolved = await service(presets).resolve_model(
        OWNER, conversation(on_conversation.id), str(chosen.id), None
    )
    assert resolved == ResolvedModel(model="input", preset=chosen)
    assert presets.calls == ["get"]


async def test_an_input_preset_that_is_not_found_is_an_error_not_a_fallback() -> None:
    presets = FakePresets(default=preset("default"))
    with pytest.raises(NotFound):
        await service(presets).resolve_model(OWNER, conversation(), str(ObjectId()), None)
    other_users = preset("theirs", owner_id=ObjectId())
    with pytest.raises(NotFound):
        await service(FakePresets(other_users)).resolve_model(
            OWNER, conversation(), str(other_users.id), None
        )


async def test_then_the_conversations_preset() -> None:
    on_conversation, default = preset("conv"), preset("default")
    presets = FakePresets(on_conversation, default=default)
    resolved = await service(presets).resolve_model(
        OWNER, conversation(on_conversation.id), None, None
    )
    assert resolved == ResolvedModel(model="conv", preset=on_conversation)
    assert presets.calls == ["find"]


async def test_a_conversation_naming_a_deleted_preset_falls_back_to_the_users_default() -> None:
    default = preset("default")
    presets = FakePresets(default=default)
    resolved = await service(presets).resolve_model(OWNER, conversation(ObjectId()), None, None)
    assert resolved == ResolvedModel(model="default", preset=default)
    assert presets.calls == ["find", "default_for"]


async def test_then_the_users_default_then_the_setting() -> None:
    default = preset("default")
    resolved = await service(FakePresets(default=default)).resolve_model(
        OWNER, conversation(), None, None
    )
    assert resolved == ResolvedModel(model="default", preset=default)
    resolved = await service(FakePresets()).resolve_model(OWNER, conversation(), None, None)
    assert resolved == ResolvedModel(model=SETTING_MODEL, preset=None)


async def test_a_model_override_replaces_the_model_but_keeps_the_presets_settings() -> None:
    chosen = preset("input", system_prompt="be brief", temperature=0.3)
    resolved = await service(FakePresets(chosen)).resolve_model(
        OWNER, conversation(), str(chosen.id), "  other/model  "
    )
    assert resolved == ResolvedModel(model="other/model", preset=chosen)


@pytest.mark.parametrize("override", ["", "   ", "x" * 201, "a\x00b"])
async def test_a_bad_model_override_is_bad_input(override: str) -> None:
    with pytest.raises(BadUserInput) as caught:
        await service().resolve_model(OWNER, conversation(), None, override)
    assert caught.value.field == "model"


@pytest.mark.parametrize("override", [None, "other/model"])
async def test_the_offline_model_overrides_everything(override: str | None) -> None:
    chosen = preset("input", system_prompt="be brief")
    resolved = await service(FakePresets(chosen), online=False).resolve_model(
        OWNER, conversation(), str(chosen.id), override
    )
    assert resolved == ResolvedModel(model=OFFLINE_MODEL_ID, preset=chosen)
    resolved = await service(online=False).resolve_model(OWNER, conversation(), None, override)
    assert resolved.model == OFFLINE_MODEL_ID


# The request ---------------------------------------------------------------------------------


def test_the_request_carries_the_preset_and_the_turns_in_order() -> None:
    chosen = preset("m", system_prompt="sys", temperature=0.5, top_p=0.9, max_tokens=99)
    turns: list[PromptTurn] = [
        (MessageRole.USER, "q1", ()),
        (MessageRole.ASSISTANT, "a1", ()),
        (MessageRole.SYSTEM, "not sent", ()),
        (MessageRole.ASSISTANT, "", ()),  # a reply that produced nothing
        (MessageRole.USER, "q2", ()),
    ]
    request = service().build_request(turns, ResolvedModel("m", chosen))
    assert request.model == "m"
    assert request.messages == [
        PromptMessage("system", "sys"),
        PromptMessage("user", "q1"),
        PromptMessage("assistant", "a1"),
        PromptMessage("user", "q2"),
    ]
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, 99)


def test_without_a_preset_nothing_but_the_turns_is_sent() -> None:
    request = service().build_request([(MessageRole.USER, "q", ())], ResolvedModel("m", None))
    assert request.messages == [PromptMessage("user", "q")]
    assert (request.temperature, request.top_p, request.max_tokens) == (None, None, None)
    empty_prompt = preset("m", system_prompt="")
    request = service().build_request(
        [(MessageRole.USER, "q", ())], ResolvedModel("m", empty_prompt)
    )
    assert request.messages == [PromptMessage("user", "q")]


def test_a_long_conversation_is_trimmed_to_the_setting_budget() -> None:
    """1,000 turns of 400 characters (~104 tokens each) against a 1,000-token budget."""
    turns: list[PromptTurn] = [
        (MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT, f"{i:04d}" + "x" * 396, ())
        for i in range(1001)
    ]
    chosen = preset("m", system_prompt="s" * 40)
    request = service(budget=1000).build_request(turns, ResolvedModel("m", chosen))
    assert request.messages[0] == PromptMessage("system", "s" * 40)
    assert request.messages[-1] == PromptMessage("user", turns[-1][1])
    assert sum(message_tokens(m) for m in request.messages) <= 1000
    assert len(request.messages) == 1 + 9  # (1000 - 14) // 104 turns fit
    assert [m.content for m in request.messages[1:]] == [text for _, text, _ in turns[-9:]]


# trim_to_budget, property-based --------------------------------------------------------------

messages = st.builds(
    PromptMessage, role=st.sampled_from(["user", "assistant"]), content=st.text(max_size=200)
)


SEEDED = hypothesis_settings(derandomize=True, deadline=None)
"""Hypothesis, deterministic: the same examples every run; no deadline on a busy machine."""


@SEEDED
@given(
    system=st.none()
    | st.builds(PromptMessage, role=st.just("system"), content=st.text(max_size=300)),
    history=st.lists(messages, max_size=30),
    budget=st.integers(min_value=0, max_value=1500),
)
def test_trimming_drops_the_oldest_first_and_keeps_what_must_go(
    system: PromptMessage | None, history: list[PromptMessage], budget: int
) -> None:
    trimmed = trim_to_budget(system, history, budget)
    kept = trimmed[1:] if system else trimmed
    if system:
        assert trimmed[0] is system
    # A suffix of the history: the newest turns, in their order.
    assert kept == history[len(history) - len(kept) :]
    if history:
        assert kept[-1] is history[-1]  # the question being asked always goes
    total = sum(message_tokens(m) for m in trimmed)
    if len(kept) > 1:
        assert total <= budget
    if len(kept) < len(history):
        # Not trimmed more than needed: the next older turn would not have fitted.
        older = history[len(history) - len(kept) - 1]
        assert total + message_tokens(older) > budget or not kept


def test_trimming_tokens_are_about_four_characters_plus_overhead() -> None:
    """The budget arithmetic the property relies on, pinned: 0 chars = 4, 1..4 = 5, 5 = 6."""
    assert [message_tokens(PromptMessage("user", "x" * n)) for n in (0, 1, 4, 5, 8, 9)] == [
        4,
        5,
        5,
        6,
        6,
        7,
    ]
