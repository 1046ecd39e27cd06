"""A load-client process for reply streams.

`direct`: read replies straight from the fake provider over SSE (the baseline).
`gql`: sendMessage over HTTP, then follow the reply over a graphql-transport-ws websocket, as a
frontend does (`--follow-api`: on another instance than the one the send went to; `--pair-api`:
and on a second one at once). Prints one JSON object: time to first token and inter-token gaps
(ms), and whether every seq arrived exactly once.

Each worker (one per reply slot) runs `--rounds` replies back to back. With `--stagger S` the
workers start evenly spread over S seconds, so that replies start and end at different moments
as they do for real users; without it every worker sends at the same instant (a burst). The
first `--warmup` rounds of each worker are not reported."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

SEND = """mutation($c: ID!) { sendMessage(input: {content: "benchmark", conversationId: $c}) {
    assistantMessage { id } } }"""
STREAM = """subscription($id: ID!) { messageStream(messageId: $id) { seq delta done } }"""


def _gaps(arrivals: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in itertools.pairwise(arrivals)]


async def direct_reply(client: httpx.AsyncClient, provider: str) -> dict[str, Any]:
    started = time.perf_counter()
    arrivals: list[float] = []
    body = {
        "model": "bench",
        "messages": [{"role": "user", "content": "benchmark"}],
        "stream": True,
    }
    async with aconnect_sse(client, "POST", f"{provider}/chat/completions", json=body) as source:
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            chunk = json.loads(event.data)
            choices = chunk.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                arrivals.append(time.perf_counter())
    return {"ttft": (arrivals[0] - started) * 1000, "gaps": _gaps(arrivals), "complete": True}


async def gql_reply(
    client: httpx.AsyncClient,
    api: str,
    follow_api: str,
    pair_api: str,
    token: str,
    conversation: str,
    expected: int,
) -> dict[str, Any]:
    """Send on `api`, follow on `follow_api` (and at once on `pair_api`, if given: the same
    reply's first token on two instances, compared reply by reply)."""
    started = time.perf_counter()
    response = await client.post(
        f"{api}/graphql",
        json={"query": SEND, "variables": {"c": conversation}},
        headers={"Authorization": f"Bearer {token}"},
    )
    message_id = response.json()["data"]["sendMessage"]["assistantMessage"]["id"]
    followers = [follow(follow_api, token, message_id, expected)]
    if pair_api:
        followers.append(follow(pair_api, token, message_id, expected))
    outcomes = await asyncio.gather(*followers)
    result: dict[str, Any] = {}
    for (arrivals, _), suffix in zip(outcomes, ("", "_pair"), strict=False):
        result[f"ttft{suffix}"] = (arrivals[0] - started) * 1000 if arrivals else float("nan")
        result[f"gaps{suffix}"] = _gaps(arrivals)
    result["complete"] = all(complete for _, complete in outcomes)
    return result


async def follow(api: str, token: str, message_id: str, expected: int) -> tuple[list[float], bool]:
    """Follow one reply over a websocket: the arrival times of its deltas, and whether every
    seq arrived once, in order."""
    arrivals: list[float] = []
    seqs: list[int] = []
    ws_url = api.replace("http://", "ws://") + "/graphql"
    async with connect(
        ws_url,
        subprotocols=[Subprotocol("graphql-transport-ws")],
        compression=None,
        open_timeout=120,
    ) as ws:
        await ws.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
        )
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": STREAM, "variables": {"id": message_id}},
                }
            )
        )
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] != "next":
                break
            event = frame["payload"]["data"]["messageStream"]
            if event["done"]:
                break
            arrivals.append(time.perf_counter())
            seqs.append(event["seq"])
    return arrivals, seqs == list(range(1, expected + 1))


async def worker(
    index: int,
    workers: int,
    reply: Callable[[], Awaitable[dict[str, Any]]],
    rounds: int,
    warmup: int,
    stagger: float,
) -> list[dict[str, Any]]:
    await asyncio.sleep(stagger * index / workers)
    results = []
    for round_ in range(rounds):
        result = await reply()
        if round_ >= warmup:
            results.append(result)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["direct", "gql"])
    parser.add_argument("--provider", default="")
    parser.add_argument("--api", default="")
    parser.add_argument("--follow-api", default="", help="follow replies here (default: --api)")
    parser.add_argument("--pair-api", default="", help="and follow each reply here at once")
    parser.add_argument("--work", help="JSON list of [token, conversation] pairs, one per reply")
    parser.add_argument("--replies", type=int, default=1)
    parser.add_argument("--expected", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--stagger", type=float, default=0.0)
    args = parser.parse_args()
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=2000)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        if args.mode == "direct":
            replies = [partial(direct_reply, client, args.provider)] * args.replies
        else:
            work = json.loads(Path(args.work).read_text())  # noqa: ASYNC240
            follow_api = args.follow_api or args.api
            replies = [
                partial(gql_reply, client, args.api, follow_api, args.pair_api, t, c, args.expected)
                for t, c in work
            ]
        outcomes = await asyncio.gather(
            *(
                worker(i, len(replies), reply, args.rounds, args.warmup, args.stagger)
                for i, reply in enumerate(replies)
            ),
            return_exceptions=True,
        )
    results: list[dict[str, Any] | BaseException] = []
    for outcome in outcomes:
        results.extend([outcome] if isinstance(outcome, BaseException) else outcome)
    good = [r for r in results if isinstance(r, dict)]
    print(
        json.dumps(
            {
                "ttft": [r["ttft"] for r in good],
                "gaps": [g for r in good for g in r["gaps"]],
                **(
                    {
                        "ttft_pair": [r["ttft_pair"] for r in good],
                        "gaps_pair": [g for r in good for g in r["gaps_pair"]],
                    }
                    if args.pair_api
                    else {}
                ),
                "complete": sum(1 for r in good if r["complete"]),
                "failed": len(results) - len(good),
                "errors": sorted({repr(r)[:200] for r in results if not isinstance(r, dict)})[:5],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
