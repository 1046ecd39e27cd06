"""A fake OpenRouter on 127.0.0.1: real HTTP, real SSE framing, scriptable replies.

Each request to `/api/v1/chat/completions` takes the next scripted `Reply` (or the default one):
tokens with delays, `: OPENROUTER PROCESSING` comments, HTTP errors with `Retry-After`, a
mid-stream error event, a hang, malformed data, a dropped connection, and a final usage chunk
with a cost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.local_server import LocalServer

DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "id": "openai/gpt-4o-mini",
        "name": "OpenAI: GPT-4o-mini",
        "context_length": 128000,
        "pricing": {"prompt": "0.00000015", "completion": "0.0000006"},
        "architecture": {"input_modalities": ["text", "image", "file"]},
        "supported_parameters": ["temperature", "reasoning", "max_tokens"],
    },
    {"id": "meta/free", "name": "Free model", "context_length": None, "pricing": {}},
]


@dataclass
class Reply:
    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error_body: dict[str, Any] | None = None
    first_delay: float = 0.0
    token_delay: float = 0.0
    comments: int = 0
    comment_delay: float = 0.0  # pause before each comment
    error_after: int | None = None  # a mid-stream error event after this many tokens
    chunk_extra: dict[str, Any] = field(default_factory=dict)  # merged into every token chunk
    content_parts: bool = False  # tokens as [{"type": "text", "text": ...}], as some proxies send
    hang_after: int | None = None  # go silent (connection open) after this many tokens
    malformed_after: int | None = None  # a non-JSON data line after this many tokens
    drop_after: int | None = None  # cut the connection mid-body after this many tokens
    gaps: list[float] | None = None  # the pause before each token (overrides token_delay)
    linger_after_done: float = 0.0  # keep the body open this long after [DONE]
    usage: dict[str, Any] | None = field(
        default_factory=lambda: {"prompt_tokens": 12, "completion_tokens": 4, "cost": 0.00042}
    )
    generation_id: str = "gen-fake-1"
    finish_reason: str = "stop"
    reasoning_at: frozenset[int] = frozenset()  # these tokens are sent as reasoning
    reasoning_details_only: bool = False  # reasoning only in `reasoning_details`
    hidden_reasoning: bool = False  # reasoning tokens as encrypted details only (no text)


class ConnectionDropped(Exception):
    """Raised in a streaming body: uvicorn then closes the connection without ending it."""


@dataclass
class RecordedRequest:
    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int | None = None


class FakeOpenRouter(LocalServer):
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.by_prompt: dict[str, Reply] = {}  # the reply to a request whose last message is this
        self.default = Reply()
        self.requests: list[RecordedRequest] = []
        self.model_requests = 0
        self.models: list[dict[str, Any]] = list(DEFAULT_MODELS)
        self.disconnected = asyncio.Event()
        self.disconnects = 0
        super().__init__(
            Starlette(
                routes=[
                    Route("/api/v1/chat/completions", self._completions, methods=["POST"]),
                    Route("/api/v1/models", self._models, methods=["GET"]),
                ]
            )
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def enqueue(self, *replies: Reply) -> None:
        self.script.extend(replies)

    async def _models(self, request: Request) -> Response:
        self.model_requests += 1
        return JSONResponse({"data": self.models})

    async def _completions(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(
            RecordedRequest(
                body=body,
                headers=dict(request.headers),
                client_port=request.client.port if request.client else None,
            )
        )
        last = body["messages"][-1]["content"] if body.get("messages") else None
        reply = self.by_prompt.get(last) if isinstance(last, str) else None
        if reply is None:
            reply = self.script.pop(0) if self.script else self.default
        if reply.first_delay:
            await asyncio.sleep(reply.first_delay)
        if reply.status != 200:
            return JSONResponse(
                reply.error_body
                or {"error": {"code": reply.status, "message": "scripted failure"}},
                status_code=reply.status,
                headers=reply.headers,
            )
        headers = {"X-Generation-Id": reply.generation_id, **reply.headers}
        return StreamingResponse(
            self._events(reply, body.get("model", "")),
            media_type="text/event-stream",
            headers=headers,
        )

    async def _events(self, reply: Reply, model: str) -> AsyncIterator[str]:
        try:
            for _ in range(reply.comments):
                await asyncio.sleep(reply.comment_delay)
                yield ": OPENROUTER PROCESSING\n\n"
            for index, token in enumerate(reply.tokens):
                if reply.error_after == index:
                    yield _data(
                        {
                            "id": reply.generation_id,
                            "error": {"code": 502, "message": "Provider disconnected"},
                            "choices": [{"index": 0, "delta": {}, "finish_reason": "error"}],
                        }
                    )
                    return
                if reply.hang_after == index:
                    await asyncio.sleep(3600)
                if reply.malformed_after == index:
                    yield "data: {not json\n\n"
                    return
                if reply.drop_after == index:
                    raise ConnectionDropped
                gap = reply.gaps[index] if reply.gaps is not None else reply.token_delay
                if index and gap:
                    await asyncio.sleep(gap)
                content: Any = [{"type": "text", "text": token}] if reply.content_parts else token
                delta: dict[str, Any] = {"content": content}
                if index in reply.reasoning_at:  # as OpenRouter sends it: the text twice
                    delta = {"reasoning_details": [{"type": "reasoning.text", "text": token}]}
                    if not reply.reasoning_details_only:
                        delta["reasoning"] = token
                    if reply.hidden_reasoning:
                        delta = {
                            "reasoning_details": [{"type": "reasoning.encrypted", "data": "x"}]
                        }
                chunk = _chunk(reply.generation_id, model, delta, None)
                yield _data({**chunk, **reply.chunk_extra})
            yield _data(_chunk(reply.generation_id, model, {}, reply.finish_reason))
            if reply.usage is not None:
                final = _chunk(reply.generation_id, model, {}, None)
                final["choices"] = []
                final["usage"] = {
                    **reply.usage,
                    "total_tokens": reply.usage["prompt_tokens"] + reply.usage["completion_tokens"],
                }
                yield _data(final)
            yield "data: [DONE]\n\n"
            if reply.linger_after_done:
                await asyncio.sleep(reply.linger_after_done)
        except asyncio.CancelledError:
            self.disconnects += 1
            self.disconnected.set()
            raise


def _chunk(gen_id: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": gen_id,
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload)}\n\n"
