"""A reply of many small deltas, replayed to several subscribers, must not hold the event loop:
other requests keep being served while the replay runs (from the live buffer and from the
store), and generating it costs what it streams (each progress save appends what is new)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bson import ObjectId

from gql_chat.config import Settings
from tests.conftest import LiveServer, live_server_of, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, follow_reply, send_message, sign_up

DELTAS = 20_000
HOLD = 3.0  # the pause before the last delta: the reply is live while the first replay runs
MAX_STALL = 1.0
"""Seconds /healthz may wait. Before the fix it waited 2.5-3.4 s; with the replay yielding, a
2-core machine busy with other test runs has shown 0.55 s."""
MESSAGE = "query($id: ID!) { message(id: $id) { status content } }"


# The subscribers here read 20,000 frames in this test's own event loop, shared with the
# server: on a loaded machine a keepalive pong, either way, can wait longer than the 20 s
# ping timeout (websockets' on the client, uvicorn's on the server) behind those frames, and
# the socket is closed. What is measured is the server's: every delta once, and /healthz
# answered meanwhile; so neither side pings here.


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server_of(settings, pings=False) as server:
        yield server


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(
        fake_openrouter, upstream_chunk_timeout=HOLD + 2, max_reply_chars=10 * DELTAS
    )


@pytest.fixture
async def user(live_server: LiveServer) -> AsyncIterator[SignedIn]:
    """Requests may wait behind the replay's 20,000 frames on a loaded machine: 30 s, not
    httpx's 5 s (a send on SecantusDB beside the other CI pass once took longer)."""
    async with httpx.AsyncClient(base_url=live_server.http_url, timeout=30) as client:
        yield await sign_up(GraphQLClient(client))


class HealthPoller:
    """GETs /healthz every 10 ms and keeps the slowest answer."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.worst = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            while not self._stop.is_set():
                began = time.perf_counter()
                response = await client.get("/healthz", timeout=30)
                assert response.status_code == 200
                self.worst = max(self.worst, time.perf_counter() - began)
                await asyncio.sleep(0.01)

    async def __aenter__(self) -> HealthPoller:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *_: Any) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


def check_replay(events: list[dict[str, Any]], tokens: list[str]) -> None:
    deltas = [e for e in events if not e["done"]]
    assert [e["seq"] for e in deltas] == list(range(1, len(tokens) + 1))
    assert "".join(e["delta"] for e in deltas) == "".join(tokens)
    assert events[-1]["done"]
    assert events[-1]["message"]["content"] == "".join(tokens)


async def test_replaying_many_deltas_to_two_subscribers_keeps_serving_others(
    live_server: LiveServer, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    tokens = [f"{i % 10}" for i in range(DELTAS)]
    gaps = [0.0] * DELTAS
    gaps[-1] = HOLD
    fake_openrouter.default = Reply(tokens=tokens, gaps=gaps)
    message_id = (await send_message(user, "a long answer"))["assistantMessage"]["id"]
    runner = live_server.app.state.services.runner
    registry = runner._registry
    for _ in range(1000):  # until every delta but the last has arrived (live, unfinished)
        live = registry.get(ObjectId(message_id))
        if live is not None and len(live.deltas) >= DELTAS - 1:
            break
        await asyncio.sleep(0.01)
    async with HealthPoller(live_server.http_url) as poller:
        replays = await asyncio.gather(
            follow_reply(live_server.ws_url, user.token, message_id, keepalive=False),
            follow_reply(live_server.ws_url, user.token, message_id, keepalive=False),
        )
    for events in replays:
        check_replay(events, tokens)
    assert poller.worst < MAX_STALL, f"/healthz waited {poller.worst:.2f} s (live replay)"

    async with HealthPoller(live_server.http_url) as poller:  # finished: from the store
        replays = await asyncio.gather(
            follow_reply(live_server.ws_url, user.token, message_id, keepalive=False),
            follow_reply(live_server.ws_url, user.token, message_id, DELTAS // 2, keepalive=False),
        )
    check_replay(replays[0], tokens)
    assert [e["seq"] for e in replays[1][:-1]] == list(range(DELTAS // 2 + 1, DELTAS + 1))
    assert poller.worst < MAX_STALL, f"/healthz waited {poller.worst:.2f} s (stored replay)"
