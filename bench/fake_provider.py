"""The fake OpenRouter as its own process, with a control endpoint to change its pace.

`python -m bench.fake_provider PORT` serves `/api/v1/chat/completions` (SSE) like a real
provider: about 200 ms to the first token, then a token every 20 ms."""

from __future__ import annotations

import sys

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.openrouter import FakeOpenRouter, Reply

TOKENS = [f"word{i} " for i in range(50)]


def build() -> FakeOpenRouter:
    fake = FakeOpenRouter()
    fake.default = Reply(tokens=TOKENS, first_delay=0.2, token_delay=0.02)

    async def control(request: Request) -> Response:
        """POST {"first_delay": s, "token_delay": s, "tokens": n} to change the default reply."""
        body = await request.json()
        fake.default = Reply(
            tokens=[f"word{i} " for i in range(int(body.get("tokens", len(TOKENS))))],
            first_delay=float(body.get("first_delay", 0.2)),
            token_delay=float(body.get("token_delay", 0.02)),
        )
        fake.requests.clear()  # the benchmark never needs the history
        return JSONResponse({"ok": True})

    fake.app.router.routes.append(Route("/control", control, methods=["POST"]))
    return fake


def main() -> None:
    port = int(sys.argv[1])
    fake = build()
    uvicorn.run(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
