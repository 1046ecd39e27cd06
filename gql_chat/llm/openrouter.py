"""OpenRouter client: streaming chat completions over SSE, retries before the first delta,
timeouts, error mapping, and a cached model list. Works with any OpenAI-compatible server.
(About 350 lines: one provider client, whose retry and timeout rules depend on each other.)"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, cast

import httpx
import orjson

from gql_chat.config import Settings
from gql_chat.errors import UpstreamError, UpstreamTimeout
from gql_chat.llm.chunks import (
    delta_reasoning,
    delta_text,
    first_choice,
    float_or_none,
    parse_usage,
    text_or_none,
)
from gql_chat.llm.content_parts import message_body, plugins
from gql_chat.llm.errors import (
    RETRYABLE_STATUSES,
    MalformedStream,
    error_for_event,
    error_for_status,
)
from gql_chat.llm.sse import EventTooLarge, SSEDecoder
from gql_chat.llm.types import (
    ChatRequest,
    Completion,
    ModelInfo,
    ProviderEvent,
    ReasoningDelta,
    RequestSent,
    TextDelta,
    TokenUsage,
)
from gql_chat.platform import require_installed
from gql_chat.platform.httpcore_network import use_asyncio_streams
from gql_chat.platform.lean_asyncio import MovingDeadline

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"
DRAIN_TIMEOUT = 1.0
"""How long a finished reply may take to end its body before its connection is dropped."""
MAX_ERROR_BODY_BYTES = 65_536
"""An error answer is read this far (its JSON `error` is a few hundred bytes); the rest is
never read into memory."""
MAX_MODEL_LIST_BYTES = 16 * 1_048_576
"""The model list is read this far (OpenRouter's is about 1 MB); a longer one is refused."""


async def read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of a streamed response's body, and whether there was more."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


class _RetryableFailure(Exception):
    """A failure before the first delta that another attempt may cure."""

    def __init__(self, error: UpstreamError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


def build_http_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled keep-alive client per app; precise first-byte and gap timeouts are applied
    per stream, so httpx's read timeout is only a backstop. Its pools run on asyncio streams
    with httpcore's pool fixed (`gql_chat.platform`, installed at start-up)."""
    require_installed("build_http_client")
    backstop = max(settings.upstream_first_byte_timeout, settings.upstream_chunk_timeout) + 5
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(
            connect=settings.upstream_connect_timeout,
            read=backstop,
            write=settings.upstream_connect_timeout,
            pool=settings.upstream_connect_timeout,
        ),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
    )
    use_asyncio_streams(client)
    return client


def yield_cpu() -> None:
    """Lets another process that is ready to run take this CPU now (`sched_yield`: one system
    call, which returns at once when none is waiting; nothing where the OS lacks it)."""
    if hasattr(os, "sched_yield"):
        os.sched_yield()


def _announcing_sent(on_sent: RequestSent) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace hook (its documented `trace` extension) that reports when the request
    body has been written, well before the response's first byte.

    It first yields the CPU. A provider on the same machine (a local model server) is woken by
    the request, and Linux tends to wake it on the writer's CPU: it would otherwise wait there
    for the bookkeeping this process does next (storing the messages, about 1 ms), with that
    time added to the first token. A remote provider leaves nothing waiting here, so the call
    returns at once."""

    async def trace(event: str, info: dict[str, Any]) -> None:
        if event.endswith("send_request_body.complete"):
            yield_cpu()
            on_sent()

    return trace


async def _drain(events: AsyncIterator[Any]) -> None:
    """Read what follows `[DONE]` (the end of the body) so that the keep-alive connection goes
    back to the pool: closing an unfinished response closes its connection, and every reply
    would then start with a new TCP connection."""
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT):
            async for _ in events:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass  # the connection is closed instead of reused; the reply is complete either way


def _parse_retry_after(value: str | None) -> float | None:
    seconds = float_or_none(value)
    return seconds if seconds is not None and seconds >= 0 else None


class OpenRouterProvider:
    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        assert settings.openrouter_api_key is not None
        self._settings = settings
        self._client = client
        self._base_url = settings.openrouter_base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {settings.openrouter_api_key.get_secret_value()}",
            "HTTP-Referer": settings.app_url,
            "X-Title": settings.app_name,
        }
        # What every reply request shares, built once: the URL parsed, the client's default
        # headers merged, the client's timeouts (what `client.build_request` would add).
        self._completions_url = httpx.URL(f"{self._base_url}/chat/completions")
        self._completions_headers = client.headers.copy()
        self._completions_headers.update(
            {
                **self._headers,
                "Accept": EVENT_STREAM,
                "Cache-Control": "no-store",
                "Content-Type": "application/json",
            }
        )
        self._timeouts = client.timeout.as_dict()
        self._models: list[ModelInfo] = []
        self._models_expire_at = 0.0
        self._models_lock = asyncio.Lock()

    async def stream(
        self, request: ChatRequest, on_sent: RequestSent | None = None
    ) -> AsyncIterator[ProviderEvent]:
        """Retries only while nothing has been yielded, so a reply is never duplicated."""
        attempt = 0
        while True:
            try:
                async for event in self._stream_once(request, on_sent):
                    yield event
                return
            except _RetryableFailure as failure:
                if attempt >= self._settings.upstream_max_retries:
                    raise failure.error from None
                attempt += 1
                delay = self._retry_delay(attempt, failure.retry_after)
                logger.info(
                    "retrying model provider",
                    extra={
                        "attempt": attempt,
                        "delay": round(delay, 3),
                        "code": failure.error.code,
                    },
                )
                await asyncio.sleep(delay)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        cap = self._settings.upstream_retry_after_cap
        if retry_after is not None:
            return min(retry_after, cap)
        backoff = self._settings.upstream_retry_backoff * 2 ** (attempt - 1)
        return float(min(backoff * (1 + random.random() / 2), cap))  # noqa: S311 (jitter)

    async def _stream_once(
        self, request: ChatRequest, on_sent: RequestSent | None
    ) -> AsyncIterator[ProviderEvent]:
        extensions: dict[str, Any] = {"timeout": self._timeouts}
        if on_sent is not None:
            extensions["trace"] = _announcing_sent(on_sent)
        http_request = httpx.Request(
            "POST",
            self._completions_url,
            headers=self._completions_headers,
            content=orjson.dumps(self._body(request)),
            extensions=extensions,
        )
        response = await self._send(http_request)
        try:
            await self._check_status(response)
            async for event in self._events(response):
                yield event
        finally:
            await response.aclose()

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(self._settings.upstream_first_byte_timeout):
                return await self._client.send(request, stream=True)
        except TimeoutError as exc:
            raise _RetryableFailure(UpstreamTimeout()) from exc
        except httpx.TimeoutException as exc:
            raise _RetryableFailure(UpstreamTimeout()) from exc
        except httpx.TransportError as exc:
            raise _RetryableFailure(UpstreamError("Could not reach the model provider.")) from exc

    async def _check_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            async with asyncio.timeout(self._settings.upstream_chunk_timeout):
                raw, cut = await read_at_most(response, MAX_ERROR_BODY_BYTES)
            body: Any = json.loads(raw) if raw and not cut else None
        except (TimeoutError, ValueError, httpx.HTTPError):
            body = None
        error = error_for_status(response.status_code, body)
        logger.warning("model provider answered HTTP %s", response.status_code)
        if response.status_code in RETRYABLE_STATUSES:
            raise _RetryableFailure(error, _parse_retry_after(response.headers.get("retry-after")))
        raise error

    async def _events(self, response: httpx.Response) -> AsyncIterator[ProviderEvent]:
        """The reply's events. The first-byte timeout, then the gap timeout, runs from one
        event to the next: comments (`: OPENROUTER PROCESSING`) do not extend it."""
        if response.headers.get("content-type", "").partition(";")[0].strip() != EVENT_STREAM:
            raise MalformedStream()
        generation_id = response.headers.get("x-generation-id")
        finish_reason: str | None = None
        usage: TokenUsage | None = None
        decoder = SSEDecoder()
        body = cast(AsyncGenerator[bytes, None], response.aiter_bytes())  # it is one
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.upstream_first_byte_timeout
        gap = MovingDeadline()  # one moving timer for the whole stream, not one per chunk
        delivered = done = False
        try:
            while not done:
                try:
                    with gap.at(deadline):
                        events = decoder.feed(await anext(body))
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    error: UpstreamError = UpstreamTimeout()
                    raise (error if delivered else _RetryableFailure(error)) from exc
                except httpx.TransportError as exc:
                    error = UpstreamError("The model provider connection broke.")
                    raise (error if delivered else _RetryableFailure(error)) from exc
                except httpx.DecodingError as exc:  # a body its content encoding cannot decode
                    raise MalformedStream() from exc
                except EventTooLarge as exc:
                    raise MalformedStream() from exc
                if events:
                    deadline = loop.time() + self._settings.upstream_chunk_timeout
                for data in events:
                    if data.strip() == b"[DONE]":
                        await _drain(body)
                        done = True
                        break
                    chunk = self._parse_chunk(data)
                    if chunk.get("error") is not None:  # some proxies send "error": null
                        raise error_for_event(chunk["error"])
                    generation_id = generation_id or text_or_none(chunk.get("id"))
                    choice = first_choice(chunk)
                    finish_reason = text_or_none(choice.get("finish_reason")) or finish_reason
                    reasoning = delta_reasoning(choice)
                    if reasoning:
                        delivered = True
                        yield ReasoningDelta(reasoning)
                    content = delta_text(choice)
                    if content:
                        delivered = True
                        yield TextDelta(content)
                    if chunk.get("usage"):
                        usage = parse_usage(chunk["usage"])
        finally:
            gap.close()
            await body.aclose()
        yield Completion(finish_reason=finish_reason, usage=usage, generation_id=generation_id)

    @staticmethod
    def _parse_chunk(data: bytes) -> dict[str, Any]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise MalformedStream() from exc
        if not isinstance(chunk, dict):
            raise MalformedStream()
        return chunk

    @staticmethod
    def _body(request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [message_body(m) for m in request.messages],
            "stream": True,
            "usage": {"include": True},
        }
        for key, value in (
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("max_tokens", request.max_tokens),
        ):
            if value is not None:
                body[key] = value
        if request.reasoning_effort is not None:
            body["reasoning"] = {"effort": request.reasoning_effort}
        if request_plugins := plugins(request):
            body["plugins"] = request_plugins
        return body

    async def list_models(self) -> list[ModelInfo]:
        async with self._models_lock:
            if time.monotonic() < self._models_expire_at:
                return self._models
            try:
                async with self._client.stream(
                    "GET", f"{self._base_url}/models", headers=self._headers
                ) as response:
                    if response.status_code >= 400:
                        raise error_for_status(response.status_code, None)
                    raw, cut = await read_at_most(response, MAX_MODEL_LIST_BYTES)
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout() from exc
            except httpx.TransportError as exc:
                raise UpstreamError("Could not reach the model provider.") from exc
            if cut:
                raise UpstreamError("The model provider sent a model list that is too large.")
            try:
                entries = orjson.loads(raw).get("data") or []
                models = [self._parse_model(entry) for entry in entries]
            except (ValueError, AttributeError, TypeError, KeyError) as exc:
                raise UpstreamError("The model provider sent a malformed model list.") from exc
            self._models = models
            self._models_expire_at = time.monotonic() + self._settings.models_cache_ttl
            return models

    @staticmethod
    def _parse_model(entry: dict[str, Any]) -> ModelInfo:
        pricing = entry.get("pricing") or {}
        context = entry.get("context_length")
        architecture = entry.get("architecture") or {}
        modalities = architecture.get("input_modalities")
        if not isinstance(modalities, list) or not modalities:
            modalities = ["text"]
        parameters = entry.get("supported_parameters")
        if not isinstance(parameters, list):
            parameters = []
        return ModelInfo(
            id=str(entry["id"]),
            name=str(entry.get("name") or entry["id"]),
            context_length=int(context) if isinstance(context, int | float) else None,
            prompt_price=float_or_none(pricing.get("prompt")),
            completion_price=float_or_none(pricing.get("completion")),
            input_modalities=tuple(str(m) for m in modalities),
            supports_reasoning="reasoning" in parameters,
        )
