"""The connection pool fixes: concurrent replies over idle keep-alive connections take one
connection each, with no request handed a connection another request is about to use; and a
request on an idle connection is written without giving the event loop a turn first."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpcore
import pytest
from httpcore._async.connection_pool import AsyncPoolRequest
from httpcore._synchronization import AsyncEvent, AsyncLock

from gql_chat.llm.openrouter import OpenRouterProvider, build_http_client
from gql_chat.llm.types import ChatRequest, PromptMessage, TextDelta
from gql_chat.platform import httpcore_pool
from gql_chat.platform.versions import UnsupportedVersion
from tests.conftest import openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply

REQUEST = ChatRequest(model="openai/gpt-4o-mini", messages=[PromptMessage("user", "Hi")])
CONCURRENT = 12


async def test_concurrent_replies_over_idle_connections_never_collide(
    fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    collisions = 0
    clear = AsyncPoolRequest.clear_connection

    def counting_clear(self: Any) -> None:  # httpcore's retry after ConnectionNotAvailable
        nonlocal collisions
        collisions += 1
        clear(self)

    monkeypatch.setattr(AsyncPoolRequest, "clear_connection", counting_clear)
    fake_openrouter.default = Reply(first_delay=0.05)
    settings = openrouter_settings(fake_openrouter)

    async def reply(provider: OpenRouterProvider) -> str:
        return "".join([e.text async for e in provider.stream(REQUEST) if isinstance(e, TextDelta)])

    async with build_http_client(settings) as client:
        provider = OpenRouterProvider(settings, client)
        for _ in range(3):  # the first round opens the connections, the next ones reuse them
            texts = await asyncio.gather(*(reply(provider) for _ in range(CONCURRENT)))
            assert texts == ["Hello, world!"] * CONCURRENT

    ports = {sent.client_port for sent in fake_openrouter.requests}
    assert len(fake_openrouter.requests) == 3 * CONCURRENT
    assert len(ports) == CONCURRENT  # reused, one reply per connection at a time
    assert collisions == 0


def test_an_unchecked_httpcore_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(httpcore, "__version__", "1.0.10")
    with pytest.raises(UnsupportedVersion) as raised:
        httpcore_pool.install()
    message = str(raised.value)
    assert "gql_chat.platform.httpcore_pool" in message
    assert "httpcore 1.0.9" in message
    assert "found httpcore 1.0.10" in message


@dataclass(eq=False)
class StubConnection:
    state: str  # "idle", "active", "closed", "expired"
    same_origin: bool = True

    def is_closed(self) -> bool:
        return self.state == "closed"

    def has_expired(self) -> bool:
        return self.state == "expired"

    def is_idle(self) -> bool:
        return self.state in ("idle", "expired")

    def is_available(self) -> bool:
        return self.state == "idle"

    def can_handle_request(self, origin: object) -> bool:
        return self.same_origin


@dataclass
class StubPool:
    _connections: list[StubConnection]
    _requests: list[AsyncPoolRequest]
    _max_connections: int
    _max_keepalive_connections: int

    def create_connection(self, origin: object) -> StubConnection:
        return StubConnection("new")


def connection_of(request: AsyncPoolRequest) -> Any:
    return request.connection


def queued(count: int) -> list[AsyncPoolRequest]:
    """Requests as the pool holds them (httpcore builds their events in the running loop)."""
    return [AsyncPoolRequest(httpcore.Request("POST", "http://127.0.0.1/x")) for _ in range(count)]


async def test_the_pass_cleans_up_then_gives_each_idle_connection_to_one_request() -> None:
    closed, expired = StubConnection("closed"), StubConnection("expired")
    idle = [StubConnection("idle") for _ in range(3)]
    requests = queued(2)
    pool = StubPool([closed, expired, *idle], requests, 10, 2)
    closing = httpcore_pool._assign_requests_to_connections(pool)
    # one idle connection over the keep-alive limit of two is closed, with the expired one
    assert closing == [expired, idle[0]]
    assert closed not in pool._connections
    assert [connection_of(r) for r in requests] == [idle[1], idle[2]]


async def test_at_the_connection_limit_a_spare_idle_connection_makes_room() -> None:
    active, idle = StubConnection("active"), StubConnection("idle")
    requests = queued(3)
    pool = StubPool([active, idle], requests, 2, 5)
    closing = httpcore_pool._assign_requests_to_connections(pool)
    assert connection_of(requests[0]) is idle  # reused
    assert connection_of(requests[1]) is None  # nothing spare: it waits
    assert closing == []
    idle.state = "active"  # the first request started on it
    pool._connections = [active]  # then it closed: room for one new connection, not two
    httpcore_pool._assign_requests_to_connections(pool)
    assert connection_of(requests[1]).state == "new"
    assert connection_of(requests[2]) is None


async def test_an_idle_connection_to_another_origin_is_closed_to_make_room() -> None:
    elsewhere = StubConnection("idle", same_origin=False)
    requests = queued(1)
    pool = StubPool([elsewhere], requests, 1, 5)
    assert httpcore_pool._assign_requests_to_connections(pool) == [elsewhere]
    assert connection_of(requests[0]).state == "new"


async def test_a_request_on_an_idle_connection_leaves_without_yielding_to_the_loop(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """Under load every turn given to the loop waits for all other ready work, so the request
    must be written in the same turn as it starts."""
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    settings = openrouter_settings(fake_openrouter)
    async with build_http_client(settings) as client:
        provider = OpenRouterProvider(settings, client)
        [_ async for _ in provider.stream(REQUEST)]  # opens the keep-alive connection
        counter = asyncio.create_task(count_turns())
        await asyncio.sleep(0)
        sent_after: list[int] = []
        started = turns
        stream = provider.stream(REQUEST, lambda: sent_after.append(turns - started))
        texts = [e.text async for e in stream if isinstance(e, TextDelta)]
        counter.cancel()
    assert "".join(texts) == "Hello, world!"
    assert sent_after == [0]
    assert len({sent.client_port for sent in fake_openrouter.requests}) == 1  # it was reused


async def test_contended_locks_and_unset_events_still_wait() -> None:
    httpcore_pool.install()
    lock, event = AsyncLock(), AsyncEvent()
    order: list[str] = []

    async def second_holder() -> None:
        async with lock:
            order.append("second")

    async with lock:
        waiter = asyncio.create_task(second_holder())
        await asyncio.sleep(0.01)
        order.append("first")
    await waiter
    assert order == ["first", "second"]
    with pytest.raises(httpcore.PoolTimeout):
        await event.wait(timeout=0.01)
    event.set()
    await event.wait(timeout=0.01)
