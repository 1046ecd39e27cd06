"""Every reply ends, whatever the provider does: a seeded random stress of the generation path.

Each scenario scripts the fake OpenRouter (real HTTP, real SSE framing) with generated deltas
(1 character to 64 KB), gaps (none, in bursts, up to 100 ms) and an ending (done, an error event,
a dropped connection, a hang, a stop from the client, the reply's time or size limit), some have a
follower that drops and resumes. The invariants, checked through the public API:
- every reply reaches a terminal status within a bound;
- the stored text is exactly the text streamed, to a delta boundary (all of it when COMPLETE);
- a follower sees every `seq` once, in order, and a `done` carrying the stored message;
- afterwards no reply task runs and no concurrency slot is held.
Shutdown at random points ends within its grace plus the runner's margin, and leaves every
reply stored with a terminal status.

Set GQL_CHAT_STRESS_SEED to replay one seed; GQL_CHAT_STRESS_SCENARIOS to run more."""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.config import Settings
from gql_chat.services.generation import SHUTDOWN_MARGIN, STOP_TIMEOUT
from gql_chat.store.embedded import open_embedded_client
from tests.conftest import LiveServer, openrouter_settings, stored_documents
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import GraphQLClient, SignedIn, follow_reply, send_message, sign_up

SEED = int(os.environ.get("GQL_CHAT_STRESS_SEED", "20261202"))
SCENARIOS = int(os.environ.get("GQL_CHAT_STRESS_SCENARIOS", "36"))
MAX_REPLY_SECONDS = 2.0
CHUNK_TIMEOUT = 0.3
TERMINAL = {"COMPLETE", "STOPPED", "ERROR", "INTERRUPTED"}
MAX_REPLY_CHARS = 250_000
ENDINGS = ("done", "done", "done", "error_event", "drop", "hang", "stop", "too_long", "too_big")
MESSAGE = "query($id: ID!) { message(id: $id) { id content status error { code } } }"
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { id status content } }"


@dataclass
class Scenario:
    prompt: str
    tokens: list[str]
    reply: Reply
    ending: str
    stop_after: float | None
    follow: bool
    drop_follower_after: int | None


def delta_text(rng: random.Random, index: int) -> str:
    roll = rng.random()
    if roll < 0.3:
        size = 1
    elif roll < 0.75:
        size = rng.randint(2, 40)
    elif roll < 0.95:
        size = 2000
    else:
        size = rng.randint(2001, 65536)
    letter = chr(ord("a") + index % 26)
    return (letter * size)[:size]


def make_scenario(rng: random.Random, number: int) -> Scenario:
    shape = rng.random()
    count = (
        1
        if shape < 0.1
        else rng.randint(2, 12)
        if shape < 0.5
        else rng.randint(13, 200)
        if shape < 0.9
        else rng.randint(201, 1500)
    )
    ending = rng.choice(ENDINGS)
    if ending == "too_long":  # deltas just inside the gap timeout, past the reply's limit
        count = rng.randint(16, 40)
    tokens = [delta_text(rng, i) for i in range(count)]
    if ending == "too_big":
        tokens += ["z" * 65536] * (MAX_REPLY_CHARS // 65536 + 1)
    else:  # within the reply's size limit
        while sum(map(len, tokens)) > MAX_REPLY_CHARS:
            tokens.pop()
    count = len(tokens)
    bursty = rng.random() < 0.5
    gaps = [0.0 if bursty or rng.random() < 0.7 else rng.uniform(0, 0.1) for _ in tokens]
    budget = 1.2  # the longest a scenario streams for, unless it is meant to run too long
    if ending == "too_long":
        gaps = [CHUNK_TIMEOUT * 2 / 3] * count
    elif sum(gaps) > budget:
        gaps = [gap * budget / sum(gaps) for gap in gaps]
    reply = Reply(tokens=tokens, gaps=gaps, comments=rng.choice([0, 0, 1, 3]))
    cut = rng.randint(0, count - 1)
    if ending == "error_event":
        reply.error_after = cut
    elif ending == "drop":
        reply.drop_after = cut
    elif ending == "hang":
        reply.hang_after = cut
    return Scenario(
        prompt=f"stress scenario {number}",
        tokens=tokens,
        reply=reply,
        ending=ending,
        stop_after=rng.uniform(0, 0.6) if ending == "stop" else None,
        follow=rng.random() < 0.6,
        drop_follower_after=rng.randint(1, 5) if rng.random() < 0.4 else None,
    )


def assert_delta_prefix(content: str, tokens: list[str]) -> int:
    """The stored text is the first k deltas exactly; returns k."""
    position = 0
    for count, token in enumerate(tokens):
        if position == len(content):
            return count
        assert content.startswith(token, position), "stored text is not the streamed deltas"
        position += len(token)
    assert position == len(content), "stored text is longer than what was streamed"
    return len(tokens)


async def wait_terminal(user: SignedIn, message_id: str, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        message: dict[str, Any] = (await user.ok(MESSAGE, {"id": message_id}))["message"]
        if message["status"] in TERMINAL:
            return message
        assert time.monotonic() < deadline, f"reply still {message['status']} after {within} s"
        await asyncio.sleep(0.05)


async def follow_with_resume(
    ws_url: str, user: SignedIn, message_id: str, drop_after: int | None
) -> list[dict[str, Any]]:
    events = await follow_reply(ws_url, user.token, message_id, stop_after=drop_after)
    if events and events[-1]["done"]:
        return events
    after = events[-1]["seq"] if events else 0
    return events + await follow_reply(ws_url, user.token, message_id, after_seq=after)


async def run_scenario(
    server: LiveServer, user: SignedIn, fake: FakeOpenRouter, scenario: Scenario
) -> None:
    fake.by_prompt[scenario.prompt] = scenario.reply
    sent_at = time.monotonic()
    message_id = (await send_message(user, scenario.prompt))["assistantMessage"]["id"]
    stop_was_late = False
    follower = (
        asyncio.create_task(
            follow_with_resume(server.ws_url, user, message_id, scenario.drop_follower_after)
        )
        if scenario.follow
        else None
    )
    if scenario.stop_after is not None:
        await asyncio.sleep(scenario.stop_after)
        started = time.monotonic()
        stopped = (await user.ok(STOP, {"id": message_id}))["stopGeneration"]
        assert time.monotonic() - started < STOP_TIMEOUT
        # On a loaded machine the stop may land after the reply's own time limit ended it.
        stop_was_late = time.monotonic() - sent_at >= MAX_REPLY_SECONDS
        assert stopped["status"] in {"STOPPED", "COMPLETE", "ERROR"}, stopped

    bound = MAX_REPLY_SECONDS + STOP_TIMEOUT + 5
    final = await wait_terminal(user, message_id, within=bound)
    delivered = assert_delta_prefix(final["content"], scenario.tokens)
    if final["status"] == "COMPLETE":
        assert delivered == len(scenario.tokens)
    expected = {
        "done": {"COMPLETE"},
        "error_event": {"ERROR"},
        "drop": {"ERROR"},
        "hang": {"ERROR"},
        "stop": {"STOPPED", "COMPLETE"},
        "too_long": {"ERROR"},
        "too_big": {"ERROR"},
    }[scenario.ending]
    if stop_was_late and final["status"] == "ERROR":
        assert final["error"]["code"] == "UPSTREAM_TIMEOUT", final
    else:
        assert final["status"] in expected, (scenario.ending, final)

    replay = await follow_reply(server.ws_url, user.token, message_id)
    assert [e["seq"] for e in replay[:-1]] == list(range(1, delivered + 1))
    assert "".join(e["delta"] for e in replay) == final["content"]
    if follower is not None:
        events = await asyncio.wait_for(follower, timeout=bound)
        assert [e["seq"] for e in events[:-1]] == list(range(1, delivered + 1))
        assert events[-1]["done"] is True
        assert events[-1]["message"]["content"] == final["content"]
        assert events[-1]["status"] == final["status"]


def stress_settings(fake: FakeOpenRouter, **overrides: Any) -> Settings:
    return openrouter_settings(
        fake,
        upstream_chunk_timeout=CHUNK_TIMEOUT,
        upstream_first_byte_timeout=1.0,
        upstream_max_retries=1,
        max_reply_seconds=MAX_REPLY_SECONDS,
        max_reply_chars=MAX_REPLY_CHARS,
        stream_flush_bytes=4096,
        **overrides,
    )


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return stress_settings(fake_openrouter)


def generation_tasks() -> list[asyncio.Task[Any]]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("generation-") and not task.done()
    ]


async def test_every_generated_reply_ends_with_its_streamed_text_and_frees_its_slot(
    live_server: LiveServer, live_gql: GraphQLClient, fake_openrouter: FakeOpenRouter
) -> None:
    rng = random.Random(SEED)
    users = [await sign_up(live_gql) for _ in range(2)]
    scenarios = [make_scenario(rng, number) for number in range(SCENARIOS)]
    per_batch = 3  # each user's limit of replies at once
    for start in range(0, len(scenarios), per_batch * len(users)):
        batch = scenarios[start : start + per_batch * len(users)]
        await asyncio.gather(
            *(
                run_scenario(live_server, users[i // per_batch], fake_openrouter, scenario)
                for i, scenario in enumerate(batch)
            )
        )

    runner = live_server.app.state.services.runner
    for _ in range(100):  # titles and the last hooks may still be finishing
        if runner.running == 0 and not generation_tasks():
            break
        await asyncio.sleep(0.05)
    assert runner.running == 0
    assert not generation_tasks()
    for user in users:
        assert runner.active_count(_object_id(user.user_id)) == 0
        # Every slot is free: the user can start their whole allowance again.
        sent = await asyncio.gather(*(send_message(user, f"again {i}") for i in range(3)))
        for payload in sent:
            await wait_terminal(user, payload["assistantMessage"]["id"], within=5)


def _object_id(value: str) -> Any:
    from bson import ObjectId

    return ObjectId(value)


@pytest.mark.parametrize("seed", range(4))
async def test_shutdown_at_a_random_point_ends_in_time_and_leaves_every_reply_terminal(
    fake_openrouter: FakeOpenRouter, seed: int
) -> None:
    rng = random.Random(SEED + 1000 + seed)
    grace = rng.choice([0.0, 0.2, 0.6])
    settings = stress_settings(fake_openrouter, shutdown_grace=grace)
    embedded = open_embedded_client()
    app: Starlette = create_app(settings, embedded_client=embedded)
    server = LiveServer(app)
    await server.start()
    import httpx

    async with httpx.AsyncClient(base_url=server.http_url) as client:
        user = await sign_up(GraphQLClient(client))
        scenarios = [make_scenario(rng, 100 * seed + n) for n in range(3)]
        ids = []
        for scenario in scenarios:
            fake_openrouter.by_prompt[scenario.prompt] = scenario.reply
            ids.append((await send_message(user, scenario.prompt))["assistantMessage"]["id"])
        await asyncio.sleep(rng.uniform(0, 0.5))
    started = time.monotonic()
    await server.stop()
    elapsed = time.monotonic() - started
    assert elapsed < grace + SHUTDOWN_MARGIN + 2.0, elapsed
    assert not generation_tasks()
    documents = await stored_documents(settings, embedded, "messages", {"role": "ASSISTANT"})
    statuses = {str(document["_id"]): document["status"] for document in documents}
    assert set(ids) <= set(statuses)
    assert {statuses[i] for i in ids} <= TERMINAL, statuses


@pytest.mark.parametrize(
    ("count", "size"), [(100, 2000), (3000, 20), (10, 2100)], ids=["100x2000", "3000x20", "10x2100"]
)
async def test_back_to_back_deltas_complete_every_time(
    live_server: LiveServer,
    live_gql: GraphQLClient,
    fake_openrouter: FakeOpenRouter,
    count: int,
    size: int,
) -> None:
    """The attack run's reproduction: deltas with no pause left replies STREAMING for good (the
    progress saver lost its cancellation inside Python 3.11's `asyncio.wait_for`)."""
    user = await sign_up(live_gql)
    tokens = ["x" * size] * count
    for attempt in range(3):
        fake_openrouter.by_prompt[f"burst {attempt}"] = Reply(tokens=tokens)
        message_id = (await send_message(user, f"burst {attempt}"))["assistantMessage"]["id"]
        final = await wait_terminal(user, message_id, within=10)
        assert final["status"] == "COMPLETE"
        assert final["content"] == "".join(tokens)
