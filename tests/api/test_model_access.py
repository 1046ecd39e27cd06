"""Model access through the public API: each role's allow-list from the settings, an admin's
override per user, `models` showing only what the caller may use, and FORBIDDEN
(`field: model`) on every path that picks a model, with nothing written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gql_chat.app import create_app
from tests.conftest import openrouter_settings, serve
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, final_message, send_message, sign_up

PAID = "openai/gpt-4o-mini"  # the fake provider's two models
FREE = "meta/free"
MODELS = "query { models { id } }"
ACCESS = "query { me { modelAccess { patterns custom } } }"
SET_ACCESS = """mutation($u: ID!, $m: [String!]) {
    setUserModelAccess(userId: $u, models: $m) { id modelAccess { patterns custom } } }"""
SEND = """mutation($input: SendMessageInput!) {
    sendMessage(input: $input) { conversation { id } assistantMessage { id } } }"""
CREATE_PRESET = """mutation($input: CreateLlmConfigInput!) {
    createLlmConfig(input: $input) { id model } }"""
UPDATE_PRESET = """mutation($id: ID!, $input: UpdateLlmConfigInput!) {
    updateLlmConfig(id: $id, input: $input) { id model } }"""
REGENERATE = """mutation($id: ID!, $model: String) {
    regenerateMessage(messageId: $id, model: $model) { assistantMessage { id } } }"""
CONTINUE = "mutation($id: ID!) { continueGeneration(messageId: $id) { assistantMessage { id } } }"
EDIT = """mutation($id: ID!) {
    editMessage(messageId: $id, content: "edited") { assistantMessage { id } } }"""
COUNTS = """query { conversations(first: 50) { totalCount edges { node {
    messages(last: 50) { edges { node { id } } } } } } }"""


def refused_for_model(result: Any) -> None:
    assert result.errors, result.data
    extensions = result.errors[0]["extensions"]
    assert (extensions["code"], extensions.get("field")) == ("FORBIDDEN", "model")


async def written(user: SignedIn) -> tuple[int, int]:
    """How many conversations and messages the user has: a refusal must leave both alone."""
    found = (await user.ok(COUNTS))["conversations"]
    messages = sum(len(edge["node"]["messages"]["edges"]) for edge in found["edges"])
    return found["totalCount"], messages


async def admin_and_user(app: Any, gql: GraphQLClient) -> tuple[SignedIn, SignedIn]:
    admin, user = await sign_up(gql), await sign_up(gql)
    await app.state.services.accounts.create_admin(admin.email, "")
    return admin, user


async def test_each_role_sees_and_uses_only_its_models(fake_openrouter: FakeOpenRouter) -> None:
    settings = openrouter_settings(
        fake_openrouter, models_allowed_user="*:free, meta/*", default_model=FREE
    )
    app = create_app(settings)
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        assert [m["id"] for m in (await user.ok(MODELS))["models"]] == [FREE]
        assert [m["id"] for m in (await admin.ok(MODELS))["models"]] == [PAID, FREE]
        assert (await user.ok(ACCESS))["me"]["modelAccess"] == {
            "patterns": ["*:free", "meta/*"],
            "custom": False,
        }

        refused_for_model(await user.execute(SEND, {"input": {"content": "hi", "model": PAID}}))
        assert await written(user) == (0, 0)
        sent = await send_message(user, "hi")  # the default model, allowed
        assert (await final_message(user, sent["assistantMessage"]["id"]))["status"] == "COMPLETE"
        assert fake_openrouter.requests[0].body["model"] == FREE
        paid = await send_message(admin, "hi", model=PAID)
        assert (await final_message(admin, paid["assistantMessage"]["id"]))["status"] == "COMPLETE"


async def test_the_default_model_is_checked_too(fake_openrouter: FakeOpenRouter) -> None:
    app = create_app(openrouter_settings(fake_openrouter, models_allowed_user=FREE))
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        refused_for_model(await user.execute(SEND, {"input": {"content": "hi"}}))
        assert await written(user) == (0, 0)
        assert fake_openrouter.requests == []


async def test_presets_name_only_allowed_models_and_a_revoked_one_refuses_every_path(
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_openrouter.default = Reply(finish_reason="length")  # so the reply can be continued
    app = create_app(openrouter_settings(fake_openrouter, default_model=FREE))
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        preset = (
            await user.ok(
                CREATE_PRESET, {"input": {"name": "paid", "model": PAID, "isDefault": True}}
            )
        )["createLlmConfig"]
        sent = await send_message(user, "first")  # the user's default preset: PAID
        reply = await final_message(user, sent["assistantMessage"]["id"], "id model")
        assert reply["model"] == PAID
        conversation_id = sent["conversation"]["id"]

        await admin.ok(SET_ACCESS, {"u": user.user_id, "m": [FREE]})
        before = await written(user)
        # Renaming names no model: allowed, though the preset's model no longer is.
        await user.ok(UPDATE_PRESET, {"id": preset["id"], "input": {"name": "again"}})
        for result in [
            await user.execute(CREATE_PRESET, {"input": {"name": "new", "model": PAID}}),
            await user.execute(UPDATE_PRESET, {"id": preset["id"], "input": {"model": PAID}}),
            # The user's default preset, an explicit preset, the conversation's, the input.
            await user.execute(SEND, {"input": {"content": "default"}}),
            await user.execute(SEND, {"input": {"content": "p", "llmConfigId": preset["id"]}}),
            await user.execute(
                SEND, {"input": {"content": "here", "conversationId": conversation_id}}
            ),
            await user.execute(SEND, {"input": {"content": "input", "model": PAID}}),
            await user.execute(REGENERATE, {"id": reply["id"], "model": PAID}),
            await user.execute(REGENERATE, {"id": reply["id"]}),  # the conversation's preset
            await user.execute(CONTINUE, {"id": reply["id"]}),  # the reply's own model
            await user.execute(EDIT, {"id": sent["userMessage"]["id"]}),
        ]:
            refused_for_model(result)
        assert await written(user) == before
        assert len(reply_requests(fake_openrouter)) == 1

        # A preset on an allowed model works again, as does the model override.
        allowed = await user.ok(UPDATE_PRESET, {"id": preset["id"], "input": {"model": FREE}})
        assert allowed["updateLlmConfig"]["model"] == FREE
        again = await send_message(user, "default again")
        assert (await final_message(user, again["assistantMessage"]["id"], "model"))[
            "model"
        ] == FREE


def reply_requests(fake: FakeOpenRouter) -> list[Any]:
    """The requests for replies, not for automatic titles (those ask for 24 tokens)."""
    return [request for request in fake.requests if request.body.get("max_tokens") != 24]


async def test_no_title_is_asked_of_a_model_the_owner_may_not_use(
    fake_openrouter: FakeOpenRouter,
) -> None:
    settings = openrouter_settings(
        fake_openrouter, models_allowed_user=FREE, default_model=FREE, title_model=PAID
    )
    app = create_app(settings)
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        sent = await send_message(user, "Plan a trip to the mountains")
        await final_message(user, sent["assistantMessage"]["id"])
        used = [request.body["model"] for request in fake_openrouter.requests]
        assert used == [FREE]  # the reply only: no title request to PAID
        titled = await title_of(user, sent["conversation"]["id"])
        assert titled == "Plan a trip to the mountains"  # made here, from the question

        # The admin may use the title model: their conversation is titled by it.
        mine = await send_message(admin, "Plan a trip to the sea", model=FREE)
        await final_message(admin, mine["assistantMessage"]["id"])
        for _ in range(200):
            if PAID in [request.body["model"] for request in fake_openrouter.requests]:
                break
            await asyncio.sleep(0.02)
        assert [request.body["model"] for request in fake_openrouter.requests][1:] == [
            FREE,
            PAID,
        ]


async def title_of(user: SignedIn, conversation_id: str) -> str:
    query = "query($id: ID!) { conversation(id: $id) { title } }"
    title: str = (await user.ok(query, {"id": conversation_id}))["conversation"]["title"]
    return title


async def test_an_admin_sets_and_clears_a_users_models(fake_openrouter: FakeOpenRouter) -> None:
    app = create_app(openrouter_settings(fake_openrouter, models_allowed_admin="openai/*"))
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        assert [m["id"] for m in (await admin.ok(MODELS))["models"]] == [PAID]

        set_ = await admin.ok(SET_ACCESS, {"u": user.user_id, "m": ["openai/*", "openai/*"]})
        assert set_["setUserModelAccess"]["modelAccess"] == {
            "patterns": ["openai/*"],
            "custom": True,
        }
        assert [m["id"] for m in (await user.ok(MODELS))["models"]] == [PAID]
        refused_for_model(await user.execute(SEND, {"input": {"content": "x", "model": FREE}}))

        none = await admin.ok(SET_ACCESS, {"u": user.user_id, "m": []})
        assert none["setUserModelAccess"]["modelAccess"] == {"patterns": [], "custom": True}
        assert (await user.ok(MODELS))["models"] == []

        cleared = await admin.ok(SET_ACCESS, {"u": user.user_id, "m": None})
        assert cleared["setUserModelAccess"]["modelAccess"] == {"patterns": ["*"], "custom": False}
        assert len((await user.ok(MODELS))["models"]) == 2


@pytest.mark.parametrize(
    ("variables", "code", "field"),
    [
        ({"m": ["has space"]}, "BAD_USER_INPUT", "models"),
        ({"m": [""]}, "BAD_USER_INPUT", "models"),
        ({"m": ["a,b"]}, "BAD_USER_INPUT", "models"),
        ({"m": ["x" * 201]}, "BAD_USER_INPUT", "models"),
        ({"m": [f"m{i}" for i in range(101)]}, "BAD_USER_INPUT", "models"),
        ({"u": "0" * 24, "m": ["*"]}, "NOT_FOUND", None),
        ({"u": "not-an-id", "m": ["*"]}, "NOT_FOUND", None),
    ],
)
async def test_bad_model_access_is_refused_and_changes_nothing(
    fake_openrouter: FakeOpenRouter, variables: dict[str, Any], code: str, field: str | None
) -> None:
    app = create_app(openrouter_settings(fake_openrouter))
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        result = await admin.execute(SET_ACCESS, {"u": user.user_id, **variables})
        assert result.errors, result.data
        assert result.errors[0]["extensions"]["code"] == code
        assert result.errors[0]["extensions"].get("field") == field
        assert (await user.ok(ACCESS))["me"]["modelAccess"]["custom"] is False


async def test_only_admins_set_model_access(fake_openrouter: FakeOpenRouter) -> None:
    app = create_app(openrouter_settings(fake_openrouter))
    async with serve(app) as http:
        admin, user = await admin_and_user(app, GraphQLClient(http))
        result = await user.execute(SET_ACCESS, {"u": user.user_id, "m": ["*"]})
        assert result.errors
        assert result.errors[0]["extensions"]["code"] == "FORBIDDEN"
        assert (await user.ok(ACCESS))["me"]["modelAccess"]["custom"] is False
        assert (await admin.ok(ACCESS))["me"]["modelAccess"]["patterns"] == ["*"]
