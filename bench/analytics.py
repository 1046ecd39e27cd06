"""The admins' analytics on a large store: 100,000 messages (500 users, 5,000 conversations,
5 models, every status, usage and timings, spread over 60 days) written straight into a fresh
database with `insert_many`, then `adminUsage` per grouping over 30 days and `adminStats` (its
default 7 days) run a few times each through the service; prints the median of each.

    python -m bench.analytics [--mongodb-url URL] [--messages N] [--runs N]

Without a URL it runs on the embedded store; with one, on a throwaway database it drops after.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from bson import ObjectId
from pydantic import SecretStr

from gql_chat.config import Settings
from gql_chat.domain.analytics import UsageGrouping
from gql_chat.domain.clock import utc_now
from gql_chat.domain.users import Role, UserRecord
from gql_chat.platform import install as install_platform
from gql_chat.services.analytics import MAX_ROWS, AnalyticsService
from gql_chat.store.database import Database, open_database

USERS = 500
CONVERSATIONS = 5_000
MODELS = ["openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-sonnet", "meta/free", "x/y"]
STATUSES = ["COMPLETE"] * 90 + ["STOPPED"] * 4 + ["ERROR"] * 4 + ["INTERRUPTED"] * 2
ERRORS = ["UPSTREAM_ERROR", "UPSTREAM_TIMEOUT", "UPSTREAM_RATE_LIMITED"]
SPREAD = timedelta(days=60)
TICK = 0.005
BATCH = 5_000


def users(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "_id": ObjectId(),
            "email": f"bench{i}@example.com",
            "display_name": f"Bench {i}",
            "password_hash": None,
            "role": Role.ADMIN.value if i == 0 else Role.USER.value,
            "disabled": False,
            "created_at": now - SPREAD,
        }
        for i in range(USERS)
    ]


def messages(
    rng: random.Random, count: int, owners: list[ObjectId], now: datetime
) -> list[dict[str, Any]]:
    """Turns of a user message and its reply, at random times of the last 60 days."""
    conversations = [(ObjectId(), rng.choice(owners)) for _ in range(CONVERSATIONS)]
    docs: list[dict[str, Any]] = []
    for index in range(count):
        conversation_id, owner_id = rng.choice(conversations)
        at = now - timedelta(milliseconds=rng.randrange(int(SPREAD.total_seconds() * 1000)))
        doc: dict[str, Any] = {
            "_id": ObjectId(),
            "owner_id": owner_id,
            "conversation_id": conversation_id,
            "role": "USER",
            "content": "x" * rng.randrange(20, 400),
            "status": "COMPLETE",
            "model": None,
            "parent_id": None,
            "seq": 0,
            "seq_ends": [],
            "usage": None,
            "error": None,
            "created_at": at,
            "updated_at": at,
        }
        if index % 2:
            status = rng.choice(STATUSES)
            prompt, completion = rng.randrange(50, 8000), rng.randrange(10, 2000)
            doc.update(
                role="ASSISTANT",
                status=status,
                model=rng.choice(MODELS),
                usage={
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                    "cost": (prompt * 15 + completion * 60) / 1e8,
                },
                error=(
                    {"code": rng.choice(ERRORS), "message": "failed"} if status == "ERROR" else None
                ),
                timings=(
                    None
                    if status == "INTERRUPTED"
                    else {
                        "time_to_first_token_ms": round(rng.lognormvariate(6, 0.6), 1),
                        "total_ms": round(rng.lognormvariate(8.5, 0.8), 1),
                    }
                ),
            )
        docs.append(doc)
    return docs


async def seed(database: Database, count: int, now: datetime) -> tuple[UserRecord, float]:
    """Writes the data set; returns the admin and how long it took (seconds)."""
    started = time.perf_counter()
    await database.create_indexes()
    user_docs = users(now)
    await database.db["users"].insert_many(user_docs)
    rng = random.Random(26)
    docs = messages(rng, count, [u["_id"] for u in user_docs], now)
    conversation_ids = {d["conversation_id"]: d["owner_id"] for d in docs}
    await database.db["conversations"].insert_many(
        [
            {"_id": c, "owner_id": o, "title": "bench", "created_at": now, "updated_at": now}
            for c, o in conversation_ids.items()
        ]
    )
    for start in range(0, len(docs), BATCH):
        await database.db["messages"].insert_many(docs[start : start + BATCH])
    admin = await database.users.get(user_docs[0]["_id"])
    assert admin is not None
    return admin, time.perf_counter() - started


async def median_ms(run: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    """The median time of `runs` runs, and the longest the event loop went without its turn
    meanwhile (a 5 ms ticker's lateness): what every other request of the server would wait."""
    timings = []
    longest_pause = 0.0
    running = True

    async def ticker() -> None:
        nonlocal longest_pause
        while running:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            longest_pause = max(longest_pause, time.perf_counter() - started - TICK)

    ticking = asyncio.create_task(ticker())
    for _ in range(runs):
        started = time.perf_counter()
        await run()
        timings.append((time.perf_counter() - started) * 1000)
    running = False
    await ticking
    return round(statistics.median(timings), 1), round(longest_pause * 1000, 1)


async def bench(mongodb_url: str | None, count: int, runs: int) -> None:
    install_platform()
    settings = Settings.model_construct(
        mongodb_url=SecretStr(mongodb_url) if mongodb_url else None,
        mongodb_db=f"gql_chat_bench_{uuid.uuid4().hex[:8]}",
    )
    database = open_database(settings)
    store = "embedded" if mongodb_url is None else "MongoDB wire server"
    try:
        now = utc_now()
        admin, seconds = await seed(database, count, now)
        print(f"{store}: seeded {count} messages in {seconds:.1f} s; median of {runs} runs:")
        service = AnalyticsService(database)
        for group_by in UsageGrouping:
            usage = partial(service.usage, admin, now - timedelta(days=30), now, group_by, MAX_ROWS)
            ms, pause = await median_ms(usage, runs)
            print(
                f"  adminUsage(groupBy: {group_by.value}, 30 days, first: {MAX_ROWS}): {ms} ms "
                f"(longest loop pause {pause} ms)"
            )
        ms, pause = await median_ms(partial(service.stats, admin), runs)
        print(f"  adminStats (7 days): {ms} ms (longest loop pause {pause} ms)")
    finally:
        if mongodb_url is not None:
            await database.client.drop_database(settings.mongodb_db)
        await database.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mongodb-url", default=None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(bench(args.mongodb_url, args.messages, args.runs))


if __name__ == "__main__":
    main()
