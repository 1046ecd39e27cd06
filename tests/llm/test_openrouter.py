"""The OpenRouter client against the fake OpenRouter server (real HTTP and SSE)."""

from __future__ import annotations

import asyncio
import importlib.machinery
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gql_chat.errors import UpstreamError, UpstreamRateLimited, UpstreamTimeout
from gql_chat.llm.openrouter import OpenRouterProvider, build_http_client
from gql_chat.llm.types import ChatRequest, Completion, PromptMessage, ProviderEvent, TextDelta
from tests.conftest import free_port, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply

REQUEST = ChatRequest(
    model="openai/gpt-4o-mini",
    messages=[PromptMessage("system", "Be brief."), PromptMessage("user", "Hi")],
    temperature=0.3,
    max_tokens=50,
)


@pytest.fixture
async def provider(fake_openrouter: FakeOpenRouter) -> AsyncIterator[OpenRouterProvider]:
    settings = openrouter_settings(fake_openrouter, upstream_chunk_timeout=0.5)
    async with build_http_client(settings) as client:
        yield OpenRouterProvider(settings, client)


async def collect(
    provider: OpenRouterProvider, request: ChatRequest = REQUEST
) -> list[ProviderEvent]:
    return [event async for event in provider.stream(request)]


async def collect_into(provider: OpenRouterProvider, received: list[ProviderEvent]) -> None:
    """Like `collect`, keeping what arrived before a failure."""
    async for event in provider.stream(REQUEST):
        received.append(event)


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_streams_deltas_then_a_completion(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["A", "B", "C"], comments=3, token_delay=0.01))
    events = await collect(provider)
    assert [e for e in events if isinstance(e, TextDelta)] == [
        TextDelta("A"),
        TextDelta("B"),
        TextDelta("C"),
    ]
    completion = events[-1]
    assert isinstance(completion, Completion)
    assert completion.finish_reason == "stop"
    assert completion.generation_id == "gen-fake-1"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 4)
    assert completion.usage.cost == pytest.approx(0.00042)

    sent = fake_openrouter.requests[-1]
    assert sent.headers["authorization"] == "Bearer sk-or-test-key-never-echoed"
    assert sent.headers["http-referer"] == "https://github.com/gql-chat/gql_chat"
    assert sent.headers["x-title"] == "gql_chat"
    assert sent.body["stream"] is True
    assert sent.body["usage"] == {"include": True}
    assert sent.body["temperature"] == 0.3
    assert sent.body["max_tokens"] == 50
    assert "top_p" not in sent.body
    assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_reply_requests_carry_the_clients_timeouts_and_default_headers(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """Reply requests are built without `client.build_request`, so they must still carry what
    it would add: the client's timeouts (httpcore applies none otherwise) and its headers."""
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = b'data: {"choices": [{"delta": {"content": "ok"}}]}\n\ndata: [DONE]\n\n'
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    settings = openrouter_settings(fake_openrouter, upstream_connect_timeout=3.0)
    timeout = httpx.Timeout(connect=3.0, read=9.0, write=3.0, pool=3.0)
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), timeout=timeout) as client:
        events = await collect(OpenRouterProvider(settings, client))
    assert text_of(events) == "ok"
    (request,) = seen
    assert request.extensions["timeout"] == timeout.as_dict()
    assert request.url == f"{fake_openrouter.base_url}/chat/completions"
    assert request.headers["user-agent"] == client.headers["user-agent"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == "Bearer sk-or-test-key-never-echoed"


async def test_on_sent_fires_when_the_request_has_left_before_any_answer(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(first_delay=2))
    sent = asyncio.Event()
    received: list[ProviderEvent] = []

    async def consume() -> None:
        async for event in provider.stream(REQUEST, sent.set):
            received.append(event)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(sent.wait(), timeout=1.5)
    assert received == []  # the model has not answered yet: its first byte is 2 s away
    assert len(fake_openrouter.requests) == 1
    await task
    assert text_of(received) == "Hello, world!"


async def test_the_cpu_is_yielded_once_the_request_is_written_and_before_on_sent(
    provider: OpenRouterProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider on this machine, woken by the request, can start on it at once rather than
    after the bookkeeping that follows `on_sent`. A request without `on_sent` (a title, the
    model list) has no first token waiting on it, and yields nothing."""
    events: list[str] = []
    monkeypatch.setattr(os, "sched_yield", lambda: events.append("yield"), raising=False)
    assert text_of(await collect(provider)) == "Hello, world!"
    assert events == []
    received = [e async for e in provider.stream(REQUEST, lambda: events.append("sent"))]
    assert text_of(received) == "Hello, world!"
    assert events == ["yield", "sent"]


async def test_finished_replies_reuse_one_keep_alive_connection(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    for _ in range(3):
        assert text_of(await collect(provider)) == "Hello, world!"
    ports = {sent.client_port for sent in fake_openrouter.requests}
    assert len(fake_openrouter.requests) == 3
    assert len(ports) == 1


async def test_a_reply_searches_for_no_module(
    provider: OpenRouterProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpcore imports sniffio for every lock, event and shield it sets up: were it missing,
    each of those imports would search sys.path again, on every request."""
    assert text_of(await collect(provider)) == "Hello, world!"  # first use may import
    searched: list[str] = []
    find_spec = importlib.machinery.PathFinder.find_spec

    def recording(cls: type, name: str, *args: Any, **kwargs: Any) -> Any:
        searched.append(name)
        return find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", classmethod(recording))
    for _ in range(3):
        assert text_of(await collect(provider)) == "Hello, world!"
    assert searched == []


async def test_a_body_that_lingers_after_done_does_not_hold_the_reply(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(linger_after_done=30))
    started = time.monotonic()
    events = await collect(provider)
    assert isinstance(events[-1], Completion)
    assert text_of(events) == "Hello, world!"
    assert time.monotonic() - started < 10  # the drain gives up after DRAIN_TIMEOUT


@pytest.mark.parametrize("status", [408, 429, 502, 503])
async def test_retryable_statuses_are_retried_before_the_first_delta(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter, status: int
) -> None:
    fake_openrouter.enqueue(Reply(status=status), Reply(tokens=["ok"]))
    assert text_of(await collect(provider)) == "ok"
    assert len(fake_openrouter.requests) == 2


async def test_retry_after_is_honoured_and_capped(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(status=429, headers={"Retry-After": "0.15"}), Reply(tokens=["x"]))
    started = time.monotonic()
    await collect(provider)
    assert time.monotonic() - started >= 0.15
    fake_openrouter.enqueue(Reply(status=429, headers={"Retry-After": "3600"}), Reply(tokens=["x"]))
    started = time.monotonic()
    await collect(provider)
    assert time.monotonic() - started < 2  # capped at upstream_retry_after_cap (0.2 s)


async def test_a_500_is_not_retried_and_the_next_call_succeeds(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(status=500), Reply(tokens=["fine"]))
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.code == "UPSTREAM_ERROR"
    assert len(fake_openrouter.requests) == 1
    assert text_of(await collect(provider)) == "fine"


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (429, UpstreamRateLimited, "UPSTREAM_RATE_LIMITED"),
        (503, UpstreamError, "UPSTREAM_ERROR"),
        (408, UpstreamTimeout, "UPSTREAM_TIMEOUT"),
    ],
)
async def test_retries_stop_after_two(
    provider: OpenRouterProvider,
    fake_openrouter: FakeOpenRouter,
    status: int,
    error_type: type[UpstreamError],
    code: str,
) -> None:
    fake_openrouter.enqueue(*(Reply(status=status) for _ in range(5)))
    with pytest.raises(error_type) as caught:
        await collect(provider)
    assert caught.value.code == code
    assert len(fake_openrouter.requests) == 3


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "rejected the API key"),
        (403, "rejected the API key"),
        (402, "insufficient credits"),
        (400, "model is not available"),
    ],
)
async def test_client_errors_map_to_safe_messages(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter, status: int, message: str
) -> None:
    body = {
        "error": {
            "code": status,
            "message": "model is not available; key sk-or-test-key-never-echoed",
        }
    }
    if status != 400:
        body = {"error": {"code": status, "message": "bad key sk-or-test-key-never-echoed"}}
    fake_openrouter.enqueue(Reply(status=status, error_body=body))
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.code == "UPSTREAM_ERROR"
    assert message in caught.value.message
    if status != 400:
        assert "sk-or" not in caught.value.message
    assert len(fake_openrouter.requests) == 1


async def test_a_mid_stream_error_keeps_what_arrived(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["a", "b", "c", "d"], error_after=2))
    received: list[ProviderEvent] = []
    with pytest.raises(UpstreamError) as caught:
        await collect_into(provider, received)
    assert text_of(received) == "ab"
    assert caught.value.code == "UPSTREAM_ERROR"
    assert len(fake_openrouter.requests) == 1  # never retried once text arrived


async def test_a_hang_mid_stream_times_out(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["a", "b", "c"], hang_after=1))
    received: list[ProviderEvent] = []
    with pytest.raises(UpstreamTimeout):
        await collect_into(provider, received)
    assert text_of(received) == "a"


async def test_a_slow_first_byte_times_out_after_retries(fake_openrouter: FakeOpenRouter) -> None:
    settings = openrouter_settings(fake_openrouter, upstream_first_byte_timeout=0.2)
    fake_openrouter.enqueue(*(Reply(first_delay=1.0) for _ in range(3)))
    async with build_http_client(settings) as client:
        with pytest.raises(UpstreamTimeout):
            await collect(OpenRouterProvider(settings, client))
    assert len(fake_openrouter.requests) == 3


async def test_comments_do_not_extend_the_first_byte_timeout(
    fake_openrouter: FakeOpenRouter,
) -> None:
    """OpenRouter keeps a waiting connection busy with comments; a model that never starts
    must still time out."""
    settings = openrouter_settings(
        fake_openrouter, upstream_first_byte_timeout=0.3, upstream_max_retries=0
    )
    fake_openrouter.enqueue(Reply(comments=10, comment_delay=0.1))
    async with build_http_client(settings) as client:
        with pytest.raises(UpstreamTimeout):
            await collect(OpenRouterProvider(settings, client))


async def test_a_body_that_is_not_an_event_stream_is_an_upstream_error(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(headers={"Content-Type": "text/html; charset=utf-8"}))
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.message == "The model provider sent a malformed stream."


async def test_malformed_data_is_an_upstream_error(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["a", "b"], malformed_after=1))
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.code == "UPSTREAM_ERROR"


async def test_unreachable_provider_is_retried_then_fails(fake_openrouter: FakeOpenRouter) -> None:
    settings = openrouter_settings(
        fake_openrouter, openrouter_base_url=f"http://127.0.0.1:{free_port()}/api/v1"
    )
    async with build_http_client(settings) as client:
        provider = OpenRouterProvider(settings, client)
        with pytest.raises(UpstreamError) as caught:
            await collect(provider)
        assert "reach" in caught.value.message
        with pytest.raises(UpstreamError):
            await provider.list_models()


async def test_cancelling_closes_the_upstream_connection(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["a"] * 50, token_delay=0.05))

    async def consume() -> None:
        async for _ in provider.stream(REQUEST):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(fake_openrouter.disconnected.wait(), timeout=5)


async def test_models_are_mapped_and_cached(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    models = await provider.list_models()
    assert models[0].id == "openai/gpt-4o-mini"
    assert models[0].prompt_price == pytest.approx(1.5e-7)
    assert models[0].completion_price == pytest.approx(6e-7)
    assert models[0].context_length == 128000
    assert models[1].prompt_price is None
    assert models[1].context_length is None
    await provider.list_models()
    assert fake_openrouter.model_requests == 1


async def test_model_list_failures(fake_openrouter: FakeOpenRouter) -> None:
    settings = openrouter_settings(fake_openrouter, models_cache_ttl=0)
    async with build_http_client(settings) as client:
        provider = OpenRouterProvider(settings, client)
        fake_openrouter.models = [{"no-id": True}]
        with pytest.raises(UpstreamError):
            await provider.list_models()
        fake_openrouter.models = [{"id": "x/y"}]
        assert [m.id for m in await provider.list_models()] == ["x/y"]
        assert [m.id for m in await provider.list_models()] == ["x/y"]
    assert fake_openrouter.model_requests == 3


async def test_text_content_parts_and_a_null_error_field_are_ordinary_chunks(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(
        Reply(tokens=["A", "B"], content_parts=True, chunk_extra={"error": None})
    )
    events = await collect(provider)
    assert text_of(events) == "AB"
    assert isinstance(events[-1], Completion)


async def test_a_delta_that_is_not_text_is_a_malformed_stream(
    provider: OpenRouterProvider, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(tokens=["A", "B"], chunk_extra={"choices": [{"delta": "x"}]}))
    with pytest.raises(UpstreamError) as caught:
        await collect(provider)
    assert caught.value.message == "The model provider sent a malformed stream."
