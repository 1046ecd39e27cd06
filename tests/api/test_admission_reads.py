"""Starting a reply reads its user as few times as it can: admission (the budget, the rates and
model access) uses the user the request's sign-in check read. On a networked database every read
before the request leaves for the model is a round trip added to the first token."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from starlette.applications import Starlette

from gql_chat.config import Settings
from tests.api.test_round_trips import count_round_trips
from tests.conftest import openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import SEND, SignedIn, create_conversation

PAYLOAD = "conversation { id } userMessage { id } assistantMessage { id status }"
REGENERATE = f"mutation($id: ID!) {{ regenerateMessage(messageId: $id) {{ {PAYLOAD} }} }}"
CONTINUE = f"mutation($id: ID!) {{ continueGeneration(messageId: $id) {{ {PAYLOAD} }} }}"
EDIT = f"""mutation($id: ID!) {{ editMessage(messageId: $id, content: "Edited") {{ {PAYLOAD} }}
}}"""
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { status } }"


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    # Each reply is held before its first token, so no reply's end (its charge, its hooks)
    # reads anything while a mutation is counted.
    fake_openrouter.default = Reply(first_delay=10.0)
    return openrouter_settings(fake_openrouter, upstream_first_byte_timeout=30.0)


def user_reads(calls: Counter[str]) -> int:
    return sum(count for name, count in calls.items() if name.startswith("users."))


async def counted(
    app: Starlette,
    alice: SignedIn,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    query: str,
    variables: dict[str, Any],
) -> tuple[dict[str, Any], int]:
    """The mutation's payload, and how many times it read the user; its reply is then
    stopped (STOPPED: it can be continued, and it frees its reply slot)."""
    with monkeypatch.context() as patch:
        calls = count_round_trips(app, patch)
        payload: dict[str, Any] = (await alice.ok(query, variables))[field]
        reads = user_reads(calls)
    stopped = await alice.ok(STOP, {"id": payload["assistantMessage"]["id"]})
    assert stopped["stopGeneration"]["status"] == "STOPPED"
    return payload, reads


async def test_every_way_to_start_a_reply_reads_the_user_twice(
    app: Starlette, alice: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once by the sign-in check and once just before the request leaves for the model (the
    user may have been removed meanwhile); admission reads none of its own. Regenerating,
    editing and continuing read the user three times before."""
    conversation = await create_conversation(alice, title="Held replies")
    sent, send_reads = await counted(
        app,
        alice,
        monkeypatch,
        "sendMessage",
        SEND,
        {"input": {"content": "Hello", "conversationId": conversation}},
    )
    reply, question = sent["assistantMessage"]["id"], sent["userMessage"]["id"]
    _, continue_reads = await counted(
        app, alice, monkeypatch, "continueGeneration", CONTINUE, {"id": reply}
    )
    _, regenerate_reads = await counted(
        app, alice, monkeypatch, "regenerateMessage", REGENERATE, {"id": reply}
    )
    _, edit_reads = await counted(app, alice, monkeypatch, "editMessage", EDIT, {"id": question})

    assert (send_reads, continue_reads, regenerate_reads, edit_reads) == (2, 2, 2, 2)
