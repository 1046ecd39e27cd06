"""A load-client process for sign-in: `login` runs concurrent logins in a loop; `me` measures a
cheap authenticated query at a steady pace. Both run for `--seconds` and print latencies (ms)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import httpx

LOGIN = (
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { accessToken } }"
)
ME = "{ me { id email } }"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["login", "me"])
    parser.add_argument("--api", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--email", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + args.seconds

    async def login_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        body = {"query": LOGIN, "variables": {"e": args.email, "p": args.password}}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.post(f"{args.api}/graphql", json=body)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += "errors" in response.json()

    async def me_loop(client: httpx.AsyncClient) -> None:
        nonlocal errors
        headers = {"Authorization": f"Bearer {args.token}"}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            response = await client.post(f"{args.api}/graphql", json={"query": ME}, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += "errors" in response.json()
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(timeout=60) as client:
        if args.mode == "login":
            await asyncio.gather(*(login_loop(client) for _ in range(args.concurrency)))
        else:
            await me_loop(client)
    print(json.dumps({"latencies": latencies, "errors": errors, "seconds": args.seconds}))


if __name__ == "__main__":
    asyncio.run(main())
