"""The response budget: a tiny query cannot make the server build a huge response."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import LiveServer, make_settings, serve
from tests.support import GraphQLClient, SignedIn, sign_up, ws_client

BUDGET = 300_000
CONTENT = "x" * 20_000  # a reply (the offline model echoes) about as long


MESSAGE = "query($id: ID!) { message(id: $id) { status } }"


async def _conversation_with_messages(user: SignedIn, sends: int) -> str:
    """A conversation of `sends` user messages of CONTENT, each with its (short) reply."""
    conversation_id = None
    for _ in range(sends):
        fields: dict[str, Any] = {"content": CONTENT}
        if conversation_id:
            fields["conversationId"] = conversation_id
        data = await user.ok(
            "mutation($input: SendMessageInput!) { sendMessage(input: $input) {"
            " conversation { id } assistantMessage { id } } }",
            {"input": fields},
        )
        conversation_id = data["sendMessage"]["conversation"]["id"]
        reply = data["sendMessage"]["assistantMessage"]["id"]
        for _ in range(500):
            status = (await user.ok(MESSAGE, {"id": reply}))["message"]["status"]
            if status not in ("PENDING", "STREAMING"):
                break
            await asyncio.sleep(0.01)
    assert conversation_id is not None
    return str(conversation_id)


def _many_contents(conversation_id: str, outer: int, inner: int) -> str:
    contents = " ".join(f"c{j}: content" for j in range(inner))
    return (
        "{ "
        + " ".join(
            f'a{i}: conversation(id: "{conversation_id}") '
            f"{{ messages(first: 100) {{ edges {{ node {{ {contents} }} }} }} }}"
            for i in range(outer)
        )
        + " }"
    )


def _exports(conversation_id: str, count: int) -> str:
    return (
        "{ "
        + " ".join(
            f'e{i}: exportConversation(id: "{conversation_id}", format: JSON)' for i in range(count)
        )
        + " }"
    )


def _settings(**overrides: Any) -> Settings:
    return make_settings(max_response_bytes=BUDGET, offline_token_delay=0, **overrides)


async def test_aliased_content_over_the_budget_is_one_coded_error() -> None:
    async with serve(create_app(_settings())) as http:
        user = await sign_up(GraphQLClient(http))
        conversation_id = await _conversation_with_messages(user, 5)
        # 5 sends (10 messages, about 200 KB) fit; five aliases of each do not.
        fits = await user.execute(_many_contents(conversation_id, 1, 1))
        assert not fits.errors
        edges = fits.data["a0"]["messages"]["edges"]
        assert sum(edge["node"]["c0"] == CONTENT for edge in edges) == 5
        response = await http.post(
            "/graphql",
            json={"query": _many_contents(conversation_id, 5, 5)},
            headers={"Authorization": f"Bearer {user.token}"},
        )
        assert response.status_code == 200
        assert len(response.content) < 1000  # nothing of the text built so far
        body = response.json()
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["RESPONSE_TOO_LARGE"]
        assert body["errors"][0]["extensions"]["limit"] == BUDGET


async def test_aliased_exports_over_the_budget_stop_before_building_more() -> None:
    app = create_app(_settings())
    async with serve(app) as http:
        user = await sign_up(GraphQLClient(http))
        conversation_id = await _conversation_with_messages(user, 3)
        one = await user.execute(_exports(conversation_id, 1))
        assert not one.errors
        assert one.data["e0"].count(CONTENT) >= 3
        built: list[int] = []
        render = app.state.services.reports._render

        def counting(*args: Any) -> str:
            text: str = render(*args)
            built.append(len(text))
            return text

        app.state.services.reports._render = counting
        many = await user.execute(_exports(conversation_id, 30))
        assert many.data is None
        assert many.error_codes == ["RESPONSE_TOO_LARGE"]
        # about 120 KB each against 300 KB: two are built, then every other alias is refused
        # before it builds anything.
        assert len(built) <= 4, built


async def test_each_subscription_event_has_its_own_budget(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live_server.http_url) as http:
        user = await sign_up(GraphQLClient(http))
        conversation_id = await _conversation_with_messages(user, 1)
        messages = await user.ok(
            f'{{ conversation(id: "{conversation_id}") {{ messages {{ edges {{ node {{ id }} }} }} }} }}'
        )
        reply_id = messages["conversation"]["messages"]["edges"][-1]["node"]["id"]
    query = (
        "subscription($id: ID!) { messageStream(messageId: $id) { done "
        + " ".join(f"m{i}: message {{ content }}" for i in range(5))
        + " } }"
    )
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe(query, {"id": reply_id})
        message = await asyncio.wait_for(ws.receive(), timeout=10)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message["payload"]


@pytest.fixture
def settings() -> Settings:
    """What the shared `live_server` fixture runs with here (it also drops the database)."""
    return _settings()


def test_the_budget_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GQL_CHAT_MAX_RESPONSE_BYTES", "5000000")
    assert Settings().max_response_bytes == 5_000_000
    assert Settings.model_construct().max_response_bytes == 32 * 1_048_576


async def test_a_huge_response_does_not_stall_the_server(live_server: LiveServer) -> None:
    """The adversarial case scaled down: 30 aliased exports and 5x5 aliased contents. Before
    the budget both were built in full (300 MB / 250 MB at full scale, a 4.6 s stall)."""
    async with httpx.AsyncClient(base_url=live_server.http_url, timeout=30) as http:
        user = await sign_up(GraphQLClient(http))
        conversation_id = await _conversation_with_messages(user, 5)
        stalls: list[float] = []
        stop = asyncio.Event()

        async def poll() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                await http.get("/healthz")
                stalls.append(time.perf_counter() - started)
                await asyncio.sleep(0.01)

        poller = asyncio.create_task(poll())
        try:
            for query in (_exports(conversation_id, 30), _many_contents(conversation_id, 5, 5)):
                for _ in range(3):
                    result = await user.execute(query)
                    assert result.error_codes == ["RESPONSE_TOO_LARGE"]
        finally:
            stop.set()
            await poller
        assert max(stalls) < 0.5, max(stalls)
