"""Model presets: validation, a single default per user (enforced by the database), deletion."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError
from starlette.applications import Starlette

from tests.support import SignedIn, create_conversation, create_preset

FIELDS = "id name model systemPrompt temperature topP maxTokens isDefault createdAt updatedAt"
CREATE = (
    f"mutation($input: CreateLlmConfigInput!) {{ createLlmConfig(input: $input) {{ {FIELDS} }} }}"
)
UPDATE = f"""mutation($id: ID!, $input: UpdateLlmConfigInput!) {{
    updateLlmConfig(id: $id, input: $input) {{ {FIELDS} }} }}"""
DEFAULTS = "{ me { defaultLlmConfig { id } } llmConfigs { id isDefault } }"


async def default_state(user: SignedIn) -> tuple[str | None, list[str]]:
    data = await user.ok(DEFAULTS)
    default = data["me"]["defaultLlmConfig"]
    flagged = [c["id"] for c in data["llmConfigs"] if c["isDefault"]]
    return (default["id"] if default else None), flagged


async def test_create_read_update_delete(alice: SignedIn) -> None:
    created = (
        await alice.ok(
            CREATE,
            {
                "input": {
                    "name": " Careful ",
                    "model": "anthropic/claude-3.5-sonnet",
                    "systemPrompt": "Be careful.",
                    "temperature": 0.2,
                    "topP": 0.9,
                    "maxTokens": 512,
                }
            },
        )
    )["createLlmConfig"]
    assert created["name"] == "Careful"
    assert (created["temperature"], created["topP"], created["maxTokens"]) == (0.2, 0.9, 512)
    assert created["isDefault"] is False

    updated = (
        await alice.ok(
            UPDATE, {"id": created["id"], "input": {"name": "Bold", "systemPrompt": None}}
        )
    )["updateLlmConfig"]
    assert updated["name"] == "Bold"
    assert updated["systemPrompt"] is None
    assert updated["temperature"] == 0.2  # omitted: unchanged

    fetched = await alice.ok(
        "query($id: ID!) { llmConfig(id: $id) { name } }", {"id": created["id"]}
    )
    assert fetched == {"llmConfig": {"name": "Bold"}}
    assert await alice.ok("mutation($id: ID!) { deleteLlmConfig(id: $id) }", {"id": created["id"]})
    assert (await alice.ok("{ llmConfigs { id } }")) == {"llmConfigs": []}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "n" * 101),
        ("model", " "),
        ("model", "m" * 201),
        ("systemPrompt", "s" * 32_001),
        ("temperature", -0.1),
        ("temperature", 2.01),
        ("topP", 0.0),
        ("topP", 1.5),
        ("maxTokens", 0),
        ("maxTokens", 1_000_001),
    ],
)
async def test_validation_names_the_field(alice: SignedIn, field: str, value: Any) -> None:
    base: dict[str, Any] = {"name": "ok", "model": "openai/gpt-4o-mini", field: value}
    result = await alice.execute(CREATE, {"input": base})
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}
    preset = await create_preset(alice)
    result = await alice.execute(UPDATE, {"id": preset, "input": {field: value}})
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": field}


async def test_boundaries_are_accepted(alice: SignedIn) -> None:
    for values in (
        {"temperature": 0.0, "topP": 1.0, "maxTokens": 1},
        {"temperature": 2.0, "topP": 0.01, "maxTokens": 1_000_000, "systemPrompt": "s" * 32_000},
    ):
        await create_preset(alice, **values)


async def test_one_default_agreed_by_me_and_the_flags(alice: SignedIn) -> None:
    first = await create_preset(alice, "first", isDefault=True)
    assert await default_state(alice) == (first, [first])
    second = await create_preset(alice, "second", isDefault=True)
    assert await default_state(alice) == (second, [second])

    profile = "mutation($id: ID) { updateProfile(input: {defaultLlmConfigId: $id}) { defaultLlmConfig { id } } }"
    assert (await alice.ok(profile, {"id": first}))["updateProfile"]["defaultLlmConfig"] == {
        "id": first
    }
    assert await default_state(alice) == (first, [first])
    await alice.ok(UPDATE, {"id": first, "input": {"isDefault": False}})
    assert await default_state(alice) == (None, [])
    await alice.ok(UPDATE, {"id": second, "input": {"isDefault": True}})
    assert (await alice.ok(profile, {"id": None}))["updateProfile"]["defaultLlmConfig"] is None
    assert await default_state(alice) == (None, [])
    unchanged = await alice.ok("mutation { updateProfile(input: {}) { defaultLlmConfig { id } } }")
    assert unchanged["updateProfile"]["defaultLlmConfig"] is None
    missing = await alice.execute(profile, {"id": str(ObjectId())})
    assert missing.error_codes == ["NOT_FOUND"]


async def test_concurrent_defaults_leave_exactly_one(alice: SignedIn) -> None:
    presets = [await create_preset(alice, f"p{i}") for i in range(8)]
    calls = [alice.execute(UPDATE, {"id": p, "input": {"isDefault": True}}) for p in presets]
    calls += [alice.execute(CREATE, {"input": {"name": "new", "model": "m", "isDefault": True}})]
    results = await asyncio.gather(*calls)
    assert all(not r.errors for r in results)
    default, flagged = await default_state(alice)
    assert default is not None
    assert flagged == [default]


async def test_the_database_refuses_a_second_default(alice: SignedIn, app: Starlette) -> None:
    await create_preset(alice, isDefault=True)
    collection = app.state.services.database.db["llm_configs"]
    with pytest.raises(DuplicateKeyError):
        await collection.insert_one({"owner_id": ObjectId(alice.user_id), "is_default": True})


async def test_deleting_a_used_preset_falls_back_to_the_default(alice: SignedIn) -> None:
    preset = await create_preset(alice)
    conversation = await create_conversation(alice, llmConfigId=preset)
    await alice.ok("mutation($id: ID!) { deleteLlmConfig(id: $id) }", {"id": preset})
    data = await alice.ok(
        "query($id: ID!) { conversation(id: $id) { llmConfig { id } } }", {"id": conversation}
    )
    assert data == {"conversation": {"llmConfig": None}}
