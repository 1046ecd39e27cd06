"""What a misbehaving model provider can cost us: every read of its answers is bounded (an
event stream's lines and events, an error body, the model list, a title's text), and the
event stream decoder works in time linear in what it is fed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gql_chat.config import Settings
from gql_chat.errors import UpstreamError
from gql_chat.llm import openrouter
from gql_chat.llm.errors import MalformedStream
from gql_chat.llm.openrouter import OpenRouterProvider
from gql_chat.llm.sse import MAX_EVENT_BYTES, EventTooLarge, SSEDecoder
from gql_chat.llm.types import ChatRequest, Completion, PromptMessage, ProviderEvent, TextDelta
from gql_chat.services import titles
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.titles import TitleService
from tests.conftest import make_settings

REQUEST = ChatRequest(model="m/x", messages=[PromptMessage("user", "Hi")])
MB = 1_048_576


# The decoder


def test_an_unfinished_line_fed_in_small_chunks_costs_linear_time() -> None:
    """Re-joining the pending line to every chunk was quadratic: 0.91 s for one long line."""
    decoder = SSEDecoder(max_bytes=8 * MB)
    chunk = b"x" * 512
    started = time.perf_counter()
    decoder.feed(b"data: ")
    for _ in range(4 * MB // len(chunk)):
        assert decoder.feed(chunk) == []
    assert decoder.feed(b"\n\n") == [b"x" * (4 * MB)]
    assert time.perf_counter() - started < 0.5


def test_a_line_over_the_limit_fails() -> None:
    decoder = SSEDecoder()
    decoder.feed(b"data: ")
    for _ in range(MAX_EVENT_BYTES // 4096 - 1):
        decoder.feed(b"x" * 4096)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"x" * 4096)


def test_a_line_over_the_limit_fails_when_its_chunk_ends_another_line() -> None:
    decoder = SSEDecoder(max_bytes=1000)
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: a\n" + b"x" * 1001)


def test_an_event_of_many_lines_over_the_limit_fails() -> None:
    decoder = SSEDecoder(max_bytes=1000)
    for _ in range(19):
        decoder.feed(b"data: " + b"x" * 50 + b"\n")
    with pytest.raises(EventTooLarge):
        decoder.feed(b"data: " + b"x" * 50 + b"\n")


def test_events_under_the_limit_pass() -> None:
    decoder = SSEDecoder(max_bytes=1000)
    for _ in range(100):
        assert decoder.feed(b"data: " + b"x" * 500 + b"\n\n") == [b"x" * 500]


# The provider, against a scripted transport


class EndlessBody:
    """A response body of `chunk`s without end, counting what was read of it."""

    def __init__(self, prefix: bytes = b"", chunk: bytes = b"x" * 65536) -> None:
        self.prefix = prefix
        self.chunk = chunk
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read += len(self.prefix)
        yield self.prefix
        while self.read < 1024 * MB:  # a failing test stops here, not never
            self.read += len(self.chunk)
            yield self.chunk


def scripted_provider(
    response: Any,
) -> tuple[OpenRouterProvider, httpx.AsyncClient]:
    settings = make_settings(
        openrouter_api_key="sk-or-test",
        openrouter_base_url="http://upstream/api/v1",
        upstream_max_retries=0,
        models_cache_ttl=0,
    )
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response()))
    return OpenRouterProvider(settings, client), client


async def test_a_stream_with_an_endless_line_fails_with_an_upstream_error() -> None:
    body = EndlessBody(prefix=b"data: ")
    provider, client = scripted_provider(
        lambda: httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)
    )
    async with client:
        with pytest.raises(MalformedStream):
            async for _ in provider.stream(REQUEST):
                pass
    assert body.read <= MAX_EVENT_BYTES + 2 * 65536


async def test_an_endless_error_body_is_read_only_so_far() -> None:
    body = EndlessBody(prefix=b'{"error": {"message": "')
    provider, client = scripted_provider(lambda: httpx.Response(500, content=body))
    async with client:
        with pytest.raises(UpstreamError):
            async for _ in provider.stream(REQUEST):
                pass
    assert body.read <= openrouter.MAX_ERROR_BODY_BYTES + 2 * 65536


async def test_an_error_body_within_the_limit_is_still_read() -> None:
    provider, client = scripted_provider(
        lambda: httpx.Response(400, json={"error": {"code": 400, "message": "bad model"}})
    )
    async with client:
        with pytest.raises(UpstreamError) as failed:
            async for _ in provider.stream(REQUEST):
                pass
    assert failed.value.code == "BAD_USER_INPUT" or failed.value.message


async def test_an_endless_model_list_is_refused_after_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(openrouter, "MAX_MODEL_LIST_BYTES", MB)
    body = EndlessBody(prefix=b'{"data": [')
    provider, client = scripted_provider(lambda: httpx.Response(200, content=body))
    async with client:
        with pytest.raises(UpstreamError, match="too large"):
            await provider.list_models()
    assert body.read <= MB + 2 * 65536


async def test_a_model_list_within_the_limit_is_read() -> None:
    provider, client = scripted_provider(
        lambda: httpx.Response(200, json={"data": [{"id": "a/b", "name": "B"}]})
    )
    async with client:
        assert [model.id for model in await provider.list_models()] == ["a/b"]


# The title hook


class RamblingProvider:
    """A title model that never stops talking."""

    def __init__(self) -> None:
        self.sent = 0
        self.closed = False

    async def stream(
        self, request: ChatRequest, on_sent: Any = None
    ) -> AsyncIterator[ProviderEvent]:
        try:
            while self.sent < 10 * MB:
                self.sent += 100
                yield TextDelta("word " * 20)
            yield Completion(finish_reason="stop", usage=None, generation_id=None)
        finally:
            self.closed = True

    async def list_models(self) -> list[Any]:
        return []


async def test_a_rambling_title_model_is_cut_short() -> None:
    settings: Settings = make_settings(openrouter_api_key="sk-or-test")
    provider = RamblingProvider()
    service = TitleService(settings, None, provider, None, ModelAccess(settings))  # type: ignore[arg-type]
    title = await service._generate("question", "answer")
    assert len(title) <= titles.MAX_TITLE_CHARS
    assert provider.sent <= titles.MAX_COLLECTED_CHARS + 100
    assert provider.closed
