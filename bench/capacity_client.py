"""A load-client process that holds many authenticated idle subscriptions open.

Opens `--count` websockets, each with `userEvents`, prints "ready N" once they are all
acknowledged, and holds them until stdin closes; then prints how many were still open."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

SUBSCRIBE = {
    "id": "1",
    "type": "subscribe",
    "payload": {"query": "subscription { userEvents { kind } }"},
}


async def open_one(url: str, token: str) -> ClientConnection:
    ws = await connect(
        url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        compression=None,
        open_timeout=60,
        ping_interval=None,
    )
    await ws.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    ack = json.loads(await ws.recv())
    assert ack["type"] == "connection_ack", ack
    await ws.send(json.dumps(SUBSCRIBE))
    return ws


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    sockets: list[ClientConnection] = []
    failures = 0
    for start in range(0, args.count, args.batch):
        batch = min(args.batch, args.count - start)
        results = await asyncio.gather(
            *(open_one(args.url, args.token) for _ in range(batch)), return_exceptions=True
        )
        sockets += [r for r in results if isinstance(r, ClientConnection)]
        failures += sum(1 for r in results if not isinstance(r, ClientConnection))
    print(f"ready {len(sockets)} failed {failures}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    still_open = sum(1 for ws in sockets if ws.state.name == "OPEN")
    print(f"open {still_open}", flush=True)
    await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main())
