"""Analytics for admins through the public API: `adminUsage` per user, model and day, and
`adminStats`, every number checked; window edges ([from, to)), limits and validation; admins
only (in the service too); and both compared with a plain-Python model over random messages.

Messages are sent through the API where it can make them; old times, error codes and timings
are written straight into the store."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.domain.clock import iso_utc, utc_now
from gql_chat.errors import Forbidden
from tests.conftest import openrouter_settings, serve
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    CREATE_CONVERSATION,
    GraphQLClient,
    SignedIn,
    final_message,
    send_message,
    sign_up,
)

ROW = "key messages replies promptTokens completionTokens totalTokens cost activeUsers"
USAGE = f"""query($from: DateTime!, $to: DateTime!, $by: UsageGrouping!, $first: Int) {{
    adminUsage(from: $from, to: $to, groupBy: $by, first: $first) {{
        from to groupBy groupCount rows {{ {ROW} user {{ id email }} }} total {{ {ROW} }} }} }}"""
STATS = """query($from: DateTime, $to: DateTime) { adminStats(from: $from, to: $to) {
    from to users { total activeLastDay activeLast7Days activeLast30Days }
    conversations messages replies repliesByStatus { status count }
    errorRates { code count rate } medianTimeToFirstTokenMs medianDurationMs } }"""
STATUSES = ["PENDING", "STREAMING", "COMPLETE", "STOPPED", "ERROR", "INTERRUPTED"]
GPT, FREE = "openai/gpt-4o-mini", "meta/free"


def row(
    key: str | None,
    messages: int,
    replies: int,
    prompt: int,
    completion: int,
    cost: float,
    active: int,
) -> dict[str, Any]:
    return {
        "key": key,
        "messages": messages,
        "replies": replies,
        "promptTokens": prompt,
        "completionTokens": completion,
        "totalTokens": prompt + completion,
        "cost": pytest.approx(cost),
        "activeUsers": active,
    }


def by_status(**counts: int) -> list[dict[str, Any]]:
    return [{"status": s, "count": counts.get(s.lower(), 0)} for s in STATUSES]


@dataclass
class Seeder:
    """Messages written straight into the store, as the API could not make them."""

    app: Starlette

    async def add(self, *docs: dict[str, Any]) -> None:
        await self.app.state.services.database.db["messages"].insert_many(list(docs))


def message(
    owner: str,
    at: datetime,
    role: str = "ASSISTANT",
    *,
    status: str = "COMPLETE",
    model: str | None = None,
    usage: tuple[int, int, float | None] | None = None,
    error: str | None = None,
    timings: tuple[float | None, float | None] | None = None,
) -> dict[str, Any]:
    """A stored message as the app writes one (`usage`: prompt and completion tokens, cost;
    `timings`: time to first token and duration in ms)."""
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "owner_id": ObjectId(owner),
        "conversation_id": ObjectId(),
        "role": role,
        "content": "seeded",
        "status": status,
        "model": model,
        "parent_id": None,
        "seq": 0,
        "seq_ends": [],
        "usage": None,
        "error": {"code": error, "message": "failed"} if error else None,
        "created_at": at,
        "updated_at": at,
    }
    if usage is not None:
        prompt, completion, cost = usage
        doc["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": cost,
        }
    if timings is not None:
        doc["timings"] = {"time_to_first_token_ms": timings[0], "total_ms": timings[1]}
    return doc


@pytest.fixture
async def seeder(app: Starlette) -> Seeder:
    return Seeder(app)


async def usage(
    admin: SignedIn, start: datetime, end: datetime, group_by: str, first: int | None = None
) -> dict[str, Any]:
    variables = {"from": iso_utc(start), "to": iso_utc(end), "by": group_by, "first": first}
    result: dict[str, Any] = (await admin.ok(USAGE, variables))["adminUsage"]
    return result


async def stats(
    admin: SignedIn, start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    variables = {
        "from": iso_utc(start) if start else None,
        "to": iso_utc(end) if end else None,
    }
    result: dict[str, Any] = (await admin.ok(STATS, variables))["adminStats"]
    return result


# --- usage through the API, with the fake provider's usage and cost ---------------------------


@pytest.fixture
async def priced_app(fake_openrouter: FakeOpenRouter) -> AsyncIterator[tuple[Starlette, Any]]:
    fake_openrouter.by_prompt["alice 1"] = fake_openrouter.by_prompt["alice 2"] = Reply(
        usage={"prompt_tokens": 1000, "completion_tokens": 500, "cost": 0.004}
    )
    fake_openrouter.by_prompt["bob 1"] = Reply(
        usage={"prompt_tokens": 100, "completion_tokens": 50, "cost": 0.001}
    )
    app = create_app(openrouter_settings(fake_openrouter))
    async with serve(app) as http:
        yield app, http


async def finished(user: SignedIn, content: str, **fields: Any) -> dict[str, Any]:
    sent = await send_message(user, content, **fields)
    reply = await final_message(user, sent["assistantMessage"]["id"], "createdAt")
    assert reply["status"] == "COMPLETE"
    return sent


async def test_usage_per_user_model_and_day_sums_every_message_of_the_window(
    priced_app: tuple[Starlette, Any],
) -> None:
    app, http = priced_app
    gql = GraphQLClient(http)
    admin, alice, bob = await sign_up(gql), await sign_up(gql), await sign_up(gql)
    await app.state.services.accounts.create_admin(admin.email, "")
    start = utc_now() - timedelta(seconds=1)
    first = await finished(alice, "alice 1", model=GPT)
    conversation = first["conversation"]["id"]
    await finished(alice, "alice 2", model=GPT, conversationId=conversation)
    await finished(bob, "bob 1", model=FREE)
    end = utc_now() + timedelta(seconds=1)

    per_user = await usage(admin, start, end, "USER")
    assert per_user["from"] == iso_utc(start)
    assert per_user["to"] == iso_utc(end)
    assert per_user["groupBy"] == "USER"
    assert per_user["groupCount"] == 2
    assert [r["user"] for r in per_user["rows"]] == [
        {"id": alice.user_id, "email": alice.email},
        {"id": bob.user_id, "email": bob.email},
    ]
    assert [{k: v for k, v in r.items() if k != "user"} for r in per_user["rows"]] == [
        row(alice.user_id, 4, 2, 2000, 1000, 0.008, 1),
        row(bob.user_id, 2, 1, 100, 50, 0.001, 1),
    ]
    total = row(None, 6, 3, 2100, 1050, 0.009, 2)
    assert per_user["total"] == total

    per_model = await usage(admin, start, end, "MODEL")
    assert per_model["groupCount"] == 3
    assert [{k: v for k, v in r.items() if k != "user"} for r in per_model["rows"]] == [
        row(GPT, 2, 2, 2000, 1000, 0.008, 1),
        row(FREE, 1, 1, 100, 50, 0.001, 1),
        row(None, 3, 0, 0, 0, 0.0, 2),  # the users' own messages name no model
    ]
    assert all(r["user"] is None for r in per_model["rows"])
    assert per_model["total"] == total

    per_day = await usage(admin, start, end, "DAY")
    days = sorted({start.date().isoformat(), end.date().isoformat()})
    assert [r["key"] for r in per_day["rows"]] == days[: per_day["groupCount"]]
    if per_day["groupCount"] == 1:  # not sent across midnight (UTC)
        assert per_day["rows"] == [{**row(days[0], 6, 3, 2100, 1050, 0.009, 2), "user": None}]
    assert per_day["total"] == total


# --- window edges, empty windows, limits, validation ---------------------------------------------

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
T1 = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


async def test_the_window_includes_from_and_excludes_to(
    admin: SignedIn, alice: SignedIn, bob: SignedIn, seeder: Seeder
) -> None:
    await seeder.add(
        message(alice.user_id, T0 - MS, "USER"),  # before
        message(alice.user_id, T0, "USER"),  # exactly at from: counts
        message(
            alice.user_id,
            T0,
            model=GPT,
            usage=(10, 5, 0.25),
            timings=(40.0, 400.0),
        ),
        message(bob.user_id, T0.replace(hour=23, minute=59, second=59) + 999 * MS, "USER"),
        message(alice.user_id, T0.replace(day=11, hour=0), "USER"),
        message(bob.user_id, T1 - MS, model=GPT, usage=(1, 2, 0.5), timings=(60.0, 600.0)),
        message(bob.user_id, T1, status="ERROR", error="UPSTREAM_ERROR"),  # exactly at to
    )
    per_day = await usage(admin, T0, T1, "DAY")
    assert per_day["groupCount"] == 3
    assert [{k: v for k, v in r.items() if k != "user"} for r in per_day["rows"]] == [
        row("2026-01-10", 3, 1, 10, 5, 0.25, 2),
        row("2026-01-11", 1, 0, 0, 0, 0.0, 1),
        row("2026-01-12", 1, 1, 1, 2, 0.5, 1),
    ]
    assert per_day["total"] == row(None, 5, 2, 11, 7, 0.75, 2)

    window = await stats(admin, T0, T1)
    assert (window["from"], window["to"]) == (iso_utc(T0), iso_utc(T1))
    assert window["replies"] == 2
    assert window["repliesByStatus"] == by_status(complete=2)
    assert window["errorRates"] == []
    assert window["medianTimeToFirstTokenMs"] == 50.0  # the mean of the two middle values
    assert window["medianDurationMs"] == 500.0

    empty_from = datetime(2025, 1, 1, tzinfo=UTC)
    empty = await usage(admin, empty_from, empty_from + timedelta(days=1), "USER")
    assert empty["rows"] == []
    assert empty["groupCount"] == 0
    assert empty["total"] == row(None, 0, 0, 0, 0, 0.0, 0)
    nothing = await stats(admin, empty_from, empty_from + timedelta(days=1))
    assert nothing["replies"] == 0
    assert nothing["repliesByStatus"] == by_status()
    assert nothing["errorRates"] == []
    assert nothing["medianTimeToFirstTokenMs"] is None
    assert nothing["medianDurationMs"] is None


async def test_rows_are_ordered_and_bounded_by_first(
    admin: SignedIn, gql: GraphQLClient, seeder: Seeder
) -> None:
    users = [await sign_up(gql) for _ in range(3)]
    costs = [0.5, 2.0, 1.0]
    await seeder.add(
        *(
            message(u.user_id, T0 + i * MS, model=f"m/{i}", usage=(i, i, cost))
            for i, (u, cost) in enumerate(zip(users, costs, strict=True))
        )
    )
    by_cost = [users[1].user_id, users[2].user_id, users[0].user_id]
    every = await usage(admin, T0, T1, "USER")
    assert [r["key"] for r in every["rows"]] == by_cost
    top = await usage(admin, T0, T1, "USER", first=2)
    assert [r["key"] for r in top["rows"]] == by_cost[:2]
    assert top["groupCount"] == 3  # the rest are counted, and in the total
    assert top["total"] == row(None, 3, 3, 3, 3, 3.5, 3)
    none = await usage(admin, T0, T1, "MODEL", first=0)
    assert none["rows"] == []
    assert none["groupCount"] == 3
    models = await usage(admin, T0, T1, "MODEL", first=500)
    assert [r["key"] for r in models["rows"]] == ["m/1", "m/2", "m/0"]


async def test_windows_and_limits_are_checked(admin: SignedIn) -> None:
    def field_of(result: Any) -> tuple[str, str]:
        assert result.errors, result.data
        extensions = result.errors[0]["extensions"]
        return extensions["code"], extensions.get("field")

    async def usage_error(start: datetime, end: datetime, first: int | None = None) -> Any:
        variables = {"from": iso_utc(start), "to": iso_utc(end), "by": "DAY", "first": first}
        return field_of(await admin.execute(USAGE, variables))

    async def stats_error(start: datetime | None, end: datetime | None) -> Any:
        variables = {"from": start and iso_utc(start), "to": end and iso_utc(end)}
        return field_of(await admin.execute(STATS, variables))

    assert await usage_error(T0, T0) == ("BAD_USER_INPUT", "to")
    assert await usage_error(T1, T0) == ("BAD_USER_INPUT", "to")
    assert await usage_error(T0, T0 + timedelta(days=366, milliseconds=1)) == (
        "BAD_USER_INPUT",
        "from",
    )
    assert await usage_error(T0, T1, first=501) == ("BAD_USER_INPUT", "first")
    assert await usage_error(T0, T1, first=-1) == ("BAD_USER_INPUT", "first")
    year = await usage(admin, T0, T0 + timedelta(days=366), "DAY", first=500)
    assert year["rows"] == []
    assert year["groupCount"] == 0
    assert await stats_error(T1, T0) == ("BAD_USER_INPUT", "to")
    assert await stats_error(T0 - timedelta(days=400), T0) == ("BAD_USER_INPUT", "from")
    # With one end given, the window is the 7 days from or up to it.
    assert (await stats(admin, T0))["to"] == iso_utc(T0 + timedelta(days=7))
    assert (await stats(admin, None, T1))["from"] == iso_utc(T1 - timedelta(days=7))
    # Without an offset, a time is UTC.
    naive = await admin.ok(
        '{ adminStats(from: "2026-01-10T12:00:00", to: "2026-01-11T12:00:00") { from } }'
    )
    assert naive["adminStats"]["from"] == iso_utc(T0)


async def test_only_admins_see_analytics(
    app: Starlette, alice: SignedIn, gql: GraphQLClient
) -> None:
    variables = {"from": iso_utc(T0), "to": iso_utc(T1), "by": "USER"}
    assert (await alice.execute(USAGE, variables)).error_codes == ["FORBIDDEN"]
    assert (await alice.execute(STATS)).error_codes == ["FORBIDDEN"]
    assert (await gql.execute(USAGE, variables)).error_codes == ["UNAUTHENTICATED"]
    assert (await gql.execute(STATS)).error_codes == ["UNAUTHENTICATED"]
    # The rule is the service's, not only the API's.
    services = app.state.services
    record = await services.database.users.get(ObjectId(alice.user_id))
    with pytest.raises(Forbidden):
        await services.analytics.usage(record, T0, T1, "USER")
    with pytest.raises(Forbidden):
        await services.analytics.stats(record)


async def test_stats_count_users_activity_replies_errors_and_median_latencies(
    admin: SignedIn, gql: GraphQLClient, seeder: Seeder
) -> None:
    alice, bob, carol, dave = [await sign_up(gql) for _ in range(4)]
    for user in (alice, bob):
        await user.ok(CREATE_CONVERSATION, {"input": {"title": "x"}})
    now = utc_now()

    def ago(days: float) -> datetime:
        return now - timedelta(days=days)

    docs = [
        message(alice.user_id, ago(0.5), "USER"),
        message(alice.user_id, ago(0.5), timings=(100.0, 1000.0)),
        message(alice.user_id, ago(1 / 24), status="STREAMING"),
        message(alice.user_id, ago(2), status="STOPPED", timings=(200.0, 2000.0)),
        message(alice.user_id, ago(4), status="INTERRUPTED"),
        message(alice.user_id, ago(6), status="ERROR", error="UPSTREAM_TIMEOUT", timings=(50, 700)),
        message(bob.user_id, ago(3), timings=(300.0, 3000.0)),
        message(bob.user_id, ago(3), status="ERROR", error="UPSTREAM_TIMEOUT", timings=(None, 5e3)),
        message(bob.user_id, ago(5), status="ERROR"),  # no code stored
        message(carol.user_id, ago(20), "USER"),
        message(carol.user_id, ago(20), status="ERROR", error="UPSTREAM_ERROR"),
        message(dave.user_id, ago(45), "USER"),
    ]
    await seeder.add(*docs)
    week = await stats(admin)  # the last 7 days
    assert week["to"] <= iso_utc(utc_now())
    assert week["from"] == iso_utc(datetime.fromisoformat(week["to"]) - timedelta(days=7))
    assert week["users"] == {
        "total": 5,
        "activeLastDay": 1,
        "activeLast7Days": 2,
        "activeLast30Days": 3,
    }
    assert (week["conversations"], week["messages"]) == (2, len(docs))
    assert week["replies"] == 8
    assert week["repliesByStatus"] == by_status(
        streaming=1, complete=2, stopped=1, error=3, interrupted=1
    )
    assert week["errorRates"] == [
        {"code": "UPSTREAM_TIMEOUT", "count": 2, "rate": 2 / 8},
        {"code": "UNKNOWN", "count": 1, "rate": 1 / 8},
    ]
    assert week["medianTimeToFirstTokenMs"] == 150.0  # 50, 100 | 200, 300
    assert week["medianDurationMs"] == 2000.0  # 700, 1000, 2000, 3000, 5000

    month = await stats(admin, ago(30), now)
    assert month["users"] == week["users"]
    assert month["replies"] == 9
    assert month["errorRates"] == [
        {"code": "UPSTREAM_TIMEOUT", "count": 2, "rate": 2 / 9},
        {"code": "UNKNOWN", "count": 1, "rate": 1 / 9},
        {"code": "UPSTREAM_ERROR", "count": 1, "rate": 1 / 9},
    ]


# --- against a plain-Python model ----------------------------------------------------------------

MODELS = ["openai/gpt-4o-mini", "anthropic/claude", "meta/free", None]


def random_messages(rng: random.Random, owners: list[str], now: datetime) -> list[dict[str, Any]]:
    """A few hundred messages over the last 40 days (none within a minute of the activity
    periods' starts, which the service measures from its own, slightly later, now)."""
    docs: list[dict[str, Any]] = []
    while len(docs) < 300:
        at = now - timedelta(milliseconds=rng.randrange(40 * 86_400_000))
        if any(abs(at - (now - timedelta(days=d))) < timedelta(minutes=1) for d in (1, 7, 30)):
            continue
        owner = rng.choice(owners)
        if rng.random() < 0.4:
            docs.append(message(owner, at, "USER"))
            continue
        status = rng.choice(STATUSES)
        final = status not in ("PENDING", "STREAMING", "INTERRUPTED")
        docs.append(
            message(
                owner,
                at,
                status=status,
                model=rng.choice(MODELS),
                usage=(
                    (rng.randrange(5000), rng.randrange(2000), rng.choice([None, rng.random()]))
                    if final and rng.random() < 0.9
                    else None
                ),
                error=rng.choice(["UPSTREAM_ERROR", "UPSTREAM_TIMEOUT", None])
                if status == "ERROR"
                else None,
                timings=(
                    (
                        rng.choice([None, rng.randrange(1, 50_000) / 10]),
                        rng.randrange(1, 10**6) / 10,
                    )
                    if final
                    else None
                ),
            )
        )
    return docs


def expected_usage(
    docs: list[dict[str, Any]], start: datetime, end: datetime, group_by: str
) -> dict[str | None, dict[str, Any]]:
    def key(doc: dict[str, Any]) -> str | None:
        if group_by == "USER":
            return str(doc["owner_id"])
        if group_by == "MODEL":
            model: str | None = doc["model"]
            return model
        return str(doc["created_at"].date())

    sums: dict[str | None, list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0.0, set()])
    for doc in docs:
        if start <= doc["created_at"] < end:
            into = sums[key(doc)]
            into[0] += 1
            into[1] += doc["role"] == "ASSISTANT"
            used = doc["usage"] or {}
            into[2] += used.get("prompt_tokens", 0)
            into[3] += used.get("completion_tokens", 0)
            into[4] += used.get("cost") or 0.0
            into[5].add(doc["owner_id"])
    return {k: row(k, m, r, p, c, cost, len(o)) for k, (m, r, p, c, cost, o) in sums.items()}


def expected_stats(
    docs: list[dict[str, Any]], start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    replies = [d for d in docs if d["role"] == "ASSISTANT" and start <= d["created_at"] < end]
    errors: dict[str, int] = defaultdict(int)
    for doc in replies:
        if doc["status"] == "ERROR":
            errors[(doc["error"] or {}).get("code") or "UNKNOWN"] += 1

    def median_of(name: str) -> float | None:
        values = [(d.get("timings") or {}).get(name) for d in replies]
        present = [v for v in values if v is not None]
        return statistics.median(present) if present else None

    def active(days: int) -> int:
        since = now - timedelta(days=days)
        return len({d["owner_id"] for d in docs if d["created_at"] >= since})

    return {
        "activeLastDay": active(1),
        "activeLast7Days": active(7),
        "activeLast30Days": active(30),
        "replies": len(replies),
        "repliesByStatus": by_status(
            **{s.lower(): sum(d["status"] == s for d in replies) for s in STATUSES}
        ),
        "errorRates": [
            {"code": code, "count": n, "rate": pytest.approx(n / len(replies))}
            for code, n in sorted(errors.items(), key=lambda e: (-e[1], e[0]))
        ],
        "medianTimeToFirstTokenMs": median_of("time_to_first_token_ms"),
        "medianDurationMs": median_of("total_ms"),
    }


@pytest.mark.parametrize("seed", [7, 2026])
async def test_the_aggregations_agree_with_a_plain_python_model(
    admin: SignedIn, gql: GraphQLClient, seeder: Seeder, seed: int
) -> None:
    rng = random.Random(seed)
    owners = [(await sign_up(gql)).user_id for _ in range(6)]
    now = utc_now()
    docs = random_messages(rng, owners, now)
    await seeder.add(*docs)
    windows = [(now - timedelta(days=40), now), (now - timedelta(days=7), now)]
    for _ in range(3):
        a, b = sorted(rng.sample(docs, 2), key=lambda d: d["created_at"])
        windows.append((a["created_at"], b["created_at"] + MS))
    for start, end in windows:
        for group_by in ("USER", "MODEL", "DAY"):
            report = await usage(admin, start, end, group_by, first=500)
            expected = expected_usage(docs, start, end, group_by)
            rows = [{k: v for k, v in r.items() if k != "user"} for r in report["rows"]]
            assert {r["key"]: r for r in rows} == expected
            assert report["groupCount"] == len(expected)
            if group_by == "USER":
                assert all(r["user"]["id"] == r["key"] for r in report["rows"])
            if group_by == "DAY":
                assert [r["key"] for r in rows] == sorted(expected, key=str)
            else:
                costs = [r["cost"] for r in report["rows"]]
                assert costs == sorted(costs, reverse=True)
            in_window = [d for d in docs if start <= d["created_at"] < end]
            assert report["total"] == row(
                None,
                len(in_window),
                sum(d["role"] == "ASSISTANT" for d in in_window),
                sum((d["usage"] or {}).get("prompt_tokens", 0) for d in in_window),
                sum((d["usage"] or {}).get("completion_tokens", 0) for d in in_window),
                sum((d["usage"] or {}).get("cost") or 0.0 for d in in_window),
                len({d["owner_id"] for d in in_window}),
            )
        got = await stats(admin, start, end)
        expected_numbers = expected_stats(docs, start, end, now)
        numbers = {**got["users"], **got}
        assert {name: numbers[name] for name in expected_numbers} == expected_numbers
        assert got["messages"] == len(docs)
        assert got["users"]["total"] == len(owners) + 1
