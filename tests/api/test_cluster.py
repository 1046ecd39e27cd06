"""Several instances sharing one store and one Redis behave as one service, for what is built so
far: user events reach every instance; a stop, or deleting an account, reaches the instance that
generates the reply; a dead instance's replies end once their lease runs out; and through a Redis
outage each instance serves alone, then they hear each other again.

Two real uvicorn servers in this process share the store (the embedded one, or the MongoDB of
GQL_CHAT_TEST_MONGODB_URL) and a Redis server started for each test. Skipped without
`redis-server` (CI installs it)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId
from redis.asyncio import Redis

from gql_chat.app import create_app
from gql_chat.config import Settings
from gql_chat.store.embedded import open_embedded_client
from tests.conftest import LiveServer, _drop_database, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    DEFAULT_PASSWORD,
    GraphQLClient,
    RedisServer,
    SignedIn,
    TransportWsClient,
    as_user,
    close_code,
    final_message,
    send_message,
    sign_up,
    signed_in_socket,
)

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="needs redis-server (CI has it)"
)

USER_EVENTS = "subscription { userEvents { kind conversationId } }"
STREAM = "subscription($id: ID!) { messageStream(messageId: $id) { seq done status } }"
TEXT_STREAM = """subscription($id: ID!) { messageStream(messageId: $id) {
    seq delta reasoningDelta done status message { content reasoning } } }"""
REASONING_STREAM = """subscription($id: ID!) { messageStream(messageId: $id) {
    seq delta reasoningDelta done message { reasoning } } }"""
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { id status } }"
CREATE = 'mutation { createConversation(input: {title: "t"}) { id } }'
SLOW = Reply(tokens=["slow "] * 400, token_delay=0.05)


@dataclass
class Pair:
    a: LiveServer
    b: LiveServer
    a_gql: GraphQLClient
    b_gql: GraphQLClient
    redis: RedisServer
    settings: Settings


@pytest.fixture
async def pair(fake_openrouter: FakeOpenRouter) -> AsyncIterator[Pair]:
    redis = RedisServer()
    await redis.start()
    settings = openrouter_settings(fake_openrouter, redis_url=redis.url, reply_lease=1.0)
    shared = open_embedded_client() if settings.mongodb_url is None else None
    a = LiveServer(create_app(settings, embedded_client=shared), settings)
    b = LiveServer(create_app(settings, embedded_client=shared), settings)
    await a.start()
    await b.start()
    try:
        async with (
            httpx.AsyncClient(base_url=a.http_url) as a_http,
            httpx.AsyncClient(base_url=b.http_url) as b_http,
        ):
            yield Pair(a, b, GraphQLClient(a_http), GraphQLClient(b_http), redis, settings)
    finally:
        await a.stop()
        await b.stop()
        await redis.stop()
        await _drop_database(settings)


async def next_event(ws: TransportWsClient, within: float = 3.0) -> dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), timeout=within)
    assert message["type"] == "next", message
    return dict(message["payload"]["data"])


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time allowed")


async def test_user_events_reach_the_users_subscribers_on_every_instance(pair: Pair) -> None:
    alice = await sign_up(pair.a_gql)
    bob = await sign_up(pair.a_gql)
    async with (
        signed_in_socket(pair.b.ws_url, alice.token) as alice_on_b,
        signed_in_socket(pair.b.ws_url, bob.token) as bob_on_b,
    ):
        await alice_on_b.subscribe(USER_EVENTS)
        await bob_on_b.subscribe(USER_EVENTS)
        await asyncio.sleep(0.2)  # the subscriptions are open on B
        created = (await alice.ok(CREATE))["createConversation"]["id"]
        event = (await next_event(alice_on_b))["userEvents"]
        assert event == {"kind": "CONVERSATION_CREATED", "conversationId": created}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(bob_on_b.receive(), timeout=0.5)


async def test_a_stop_sent_to_another_instance_stops_the_reply_where_it_runs(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    runner_a = pair.a.app.state.services.runner
    await until(lambda: runner_a.running == 1)
    started = asyncio.get_running_loop().time()
    stopped = await as_user(alice, pair.b_gql).ok(STOP, {"id": reply})
    assert stopped["stopGeneration"]["status"] == "STOPPED"
    assert asyncio.get_running_loop().time() - started < 2.0
    await until(lambda: runner_a.running == 0, within=2.0)
    await asyncio.wait_for(fake_openrouter.disconnected.wait(), timeout=2.0)


async def test_deleting_an_account_on_one_instance_stops_its_replies_on_another(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    await send_message(alice, "hello")
    runner_a = pair.a.app.state.services.runner
    await until(lambda: runner_a.running == 1)
    deleted = await as_user(alice, pair.b_gql).ok(
        "mutation($p: String!) { deleteAccount(password: $p) }", {"p": DEFAULT_PASSWORD}
    )
    assert deleted == {"deleteAccount": True}
    await until(lambda: runner_a.running == 0, within=3.0)


async def test_the_replies_of_a_dead_instance_end_when_their_lease_runs_out(
    pair: Pair, fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dies as `kill -9` would leave it: its reply's last writes never land and its leases
    are no longer renewed. B's sweep ends the reply; B's follower gets `done`."""
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    services_a = pair.a.app.state.services
    await until(lambda: services_a.runner.running == 1)
    async with signed_in_socket(pair.b.ws_url, alice.token) as follower:
        await follower.subscribe(STREAM, {"id": reply})
        assert services_a.leases is not None
        await services_a.leases.close()

        async def lost(*_: Any) -> bool:
            return False

        monkeypatch.setattr(services_a.database.messages, "finish", lost)
        monkeypatch.setattr(services_a.database.messages, "save_progress", lost)
        await services_a.runner.stop_owner(ObjectId(alice.user_id))
        while True:
            event = (await next_event(follower, within=5.0))["messageStream"]
            if event["done"]:
                break
    assert event["status"] == "INTERRUPTED"


async def test_a_dead_instances_unsaved_deltas_are_kept_as_its_followers_saw_them(
    pair: Pair, fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streams deltas through Redis (reasoning, then answer), then dies before saving them:
    B's sweep reads them back from the reply's stream, so the INTERRUPTED reply's reasoning and
    answer are what its follower saw."""
    fake_openrouter.default = Reply(
        tokens=[f"t{i} " for i in range(400)], token_delay=0.05, reasoning_at=frozenset(range(6))
    )
    alice = await sign_up(pair.a_gql)
    services_a = pair.a.app.state.services

    async def lost(*_: Any) -> bool:
        return False

    monkeypatch.setattr(services_a.database.messages, "save_progress", lost)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    shown: list[dict[str, Any]] = []
    async with signed_in_socket(pair.b.ws_url, alice.token) as follower:
        await follower.subscribe(TEXT_STREAM, {"id": reply})
        while len(shown) < 10:
            shown.append((await next_event(follower, within=5.0))["messageStream"])
        assert services_a.leases is not None
        await services_a.leases.close()
        monkeypatch.setattr(services_a.database.messages, "finish", lost)
        await services_a.runner.stop_owner(ObjectId(alice.user_id))
        while not (event := (await next_event(follower, within=5.0))["messageStream"])["done"]:
            shown.append(event)
    assert event["status"] == "INTERRUPTED"
    assert event["message"]["content"] == "".join(e["delta"] for e in shown)
    assert event["message"]["reasoning"] == "".join(e["reasoningDelta"] for e in shown)
    assert event["message"]["reasoning"] == "".join(f"t{i} " for i in range(6))
    assert len(shown) >= 10


async def test_through_a_redis_outage_each_instance_serves_alone_then_they_hear_each_other(
    pair: Pair,
) -> None:
    alice = await sign_up(pair.a_gql)
    async with (
        signed_in_socket(pair.a.ws_url, alice.token) as on_a,
        signed_in_socket(pair.b.ws_url, alice.token) as on_b,
    ):
        await on_a.subscribe(USER_EVENTS)
        await on_b.subscribe(USER_EVENTS)
        await asyncio.sleep(0.2)
        await pair.redis.stop()
        ready = (await pair.a_gql.http.get("/readyz")).json()
        assert ready == {"status": "ready", "redis": "degraded"}
        created = (await alice.ok(CREATE))["createConversation"]["id"]
        assert (await next_event(on_a))["userEvents"]["conversationId"] == created
        await pair.redis.start()
        # Once both instances are connected again, a new event reaches B. (What was published
        # during the outage may arrive too: events are hints, and clients re-read.)
        for _ in range(50):
            created = (await alice.ok(CREATE))["createConversation"]["id"]
            try:
                while True:
                    event = (await next_event(on_b, within=0.3))["userEvents"]
                    if event["conversationId"] == created:
                        break
                break
            except TimeoutError:
                continue
        else:
            raise AssertionError("B never heard A again")
        ready = (await pair.a_gql.http.get("/readyz")).json()
        assert ready == {"status": "ready", "redis": "ok"}


async def test_disabling_a_user_on_one_instance_closes_their_sockets_on_the_other(
    pair: Pair,
) -> None:
    admin = await sign_up(pair.a_gql)
    await pair.a.app.state.services.accounts.create_admin(admin.email, "")
    alice = await sign_up(pair.a_gql)
    async with signed_in_socket(pair.b.ws_url, alice.token) as alice_on_b:
        await alice_on_b.subscribe(USER_EVENTS)
        await asyncio.sleep(0.2)  # the subscription is open on B

        await admin.ok(
            "mutation($id: ID!) { setUserDisabled(userId: $id, disabled: true) { id } }",
            {"id": alice.user_id},
        )

        assert await close_code(alice_on_b) == 4403


SEND = "mutation($c: String!) { sendMessage(input: {content: $c}) { assistantMessage { id } } }"


async def test_the_limit_of_replies_in_flight_counts_every_instance(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """Three replies at once per user (the default): two on A and one on B fill it; a fourth
    is refused on either; once one ends, a send goes through again."""
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    alice_on_b = as_user(alice, pair.b_gql)
    first = (await send_message(alice, "one"))["assistantMessage"]["id"]
    await send_message(alice, "two")
    await send_message(alice_on_b, "three")

    for instance in (alice, alice_on_b):
        refused = await instance.execute(SEND, {"c": "four"})
        assert refused.error_codes == ["RATE_LIMITED"]

    await alice.ok(STOP, {"id": first})
    for _ in range(50):  # the slot's release reaches Redis just after the stop answers
        if (await alice_on_b.execute(SEND, {"c": "four"})).data is not None:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the freed slot never counted")


async def test_the_slots_of_a_dead_instance_free_themselves_after_the_lease(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """Slots held in Redis by an instance that died (written here as it would have left them)
    count until their lease runs out, and not after."""
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    redis = Redis.from_url(pair.redis.url)
    try:
        seconds, microseconds = await redis.time()
        until = seconds + microseconds / 1e6 + 2.0  # as a claim writes them (lease 2 s here)
        key = f"gql_chat:{pair.settings.mongodb_db}:slots:{alice.user_id}"
        await redis.zadd(key, {f"dead-{i}": until for i in range(3)})
        assert (await alice.execute(SEND, {"c": "busy"})).error_codes == ["RATE_LIMITED"]
        await asyncio.sleep(2.5)
        await alice.ok(SEND, {"c": "free again"})
        members = [str(member) for member in await redis.zrange(key, 0, -1)]
        assert len(members) == 1
        assert "dead-" not in members[0]
    finally:
        await redis.aclose()


async def test_through_a_redis_outage_each_instance_still_limits_replies_in_flight(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    await pair.redis.stop()
    for n in range(3):
        await send_message(alice, f"reply {n}")
    assert (await alice.execute(SEND, {"c": "four"})).error_codes == ["RATE_LIMITED"]


async def arrivals(ws: TransportWsClient, reply: str) -> tuple[dict[int, float], dict[str, Any]]:
    """When each seq of the reply arrived on this socket, and the `done` event."""
    await ws.subscribe(STREAM, {"id": reply})
    loop = asyncio.get_running_loop()
    seen: dict[int, float] = {}
    while True:
        event = (await next_event(ws, within=10.0))["messageStream"]
        if event["done"]:
            return seen, event
        assert event["seq"] not in seen, "a seq came twice"
        seen[event["seq"]] = loop.time()


async def test_a_follower_on_another_instance_gets_each_delta_as_it_comes(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """Through the reply's Redis stream, not MongoDB's 0.5 s re-reads: a follower on B gets
    each delta about when a follower on A (where the reply runs) does."""
    fake_openrouter.default = Reply(tokens=[f"d{i} " for i in range(40)], token_delay=0.05)
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    async with (
        signed_in_socket(pair.a.ws_url, alice.token) as on_a,
        signed_in_socket(pair.b.ws_url, alice.token) as on_b,
    ):
        (seen_a, done_a), (seen_b, done_b) = await asyncio.gather(
            arrivals(on_a, reply), arrivals(on_b, reply)
        )
    assert sorted(seen_b) == list(range(1, 41)) == sorted(seen_a)
    assert done_b["status"] == done_a["status"] == "COMPLETE"
    lags = sorted(seen_b[seq] - seen_a[seq] for seq in seen_a)
    assert lags[len(lags) // 2] < 0.1, lags  # MongoDB's re-reads alone lag 0.25 s on average


async def test_reasoning_crosses_instances_as_reasoning(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """Reasoning deltas go through the reply's Redis stream with their kind: a follower on B
    gets them as `reasoningDelta`, in one `seq` numbering with the answer."""
    tokens = [f"t{i} " for i in range(20)]
    thinking = frozenset(range(8))
    fake_openrouter.default = Reply(tokens=tokens, token_delay=0.03, reasoning_at=thinking)
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    async with signed_in_socket(pair.b.ws_url, alice.token) as on_b:
        await on_b.subscribe(REASONING_STREAM, {"id": reply})
        events = []
        while not (event := (await next_event(on_b, within=5.0))["messageStream"])["done"]:
            events.append(event)
    assert [e["seq"] for e in events] == list(range(1, 21))
    assert [e["reasoningDelta"] for e in events[:8]] == tokens[:8]
    assert [e["delta"] for e in events[8:]] == tokens[8:]
    assert event["message"]["reasoning"] == "".join(tokens[:8])


async def test_a_lost_stream_is_filled_from_mongodb_without_gap_or_repeat(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = Reply(tokens=[f"d{i} " for i in range(60)], token_delay=0.03)
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    redis = Redis.from_url(pair.redis.url)
    key = f"gql_chat:{pair.settings.mongodb_db}:reply:{reply}"
    try:
        async with signed_in_socket(pair.b.ws_url, alice.token) as on_b:
            following = asyncio.create_task(arrivals(on_b, reply))
            for _ in range(3):  # Redis loses the stream, more than once
                await asyncio.sleep(0.4)
                await redis.delete(key)
            seen, done = await following
        assert sorted(seen) == list(range(1, 61))
        assert done["status"] == "COMPLETE"
        assert 0 < await redis.ttl(key) <= 300  # the end's entry; the stream then expires
    finally:
        await redis.aclose()


async def test_a_reply_stream_outlives_the_reply_then_expires(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """The expiry is set with the first delta (long enough for the longest reply, so a reply
    whose end is never written still leaves nothing behind for good), then shortened at the
    end."""
    fake_openrouter.default = Reply(tokens=[f"d{i} " for i in range(20)], token_delay=0.05)
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    redis = Redis.from_url(pair.redis.url)
    key = f"gql_chat:{pair.settings.mongodb_db}:reply:{reply}"
    longest = pair.settings.max_reply_seconds + 300
    try:
        async with signed_in_socket(pair.b.ws_url, alice.token) as on_b:
            following = asyncio.create_task(arrivals(on_b, reply))
            await asyncio.sleep(0.4)
            assert 300 < await redis.ttl(key) <= longest
            seen, _ = await following
        assert sorted(seen) == list(range(1, 21))
        assert 0 < await redis.ttl(key) <= 300
    finally:
        await redis.aclose()


async def test_a_follower_elsewhere_gets_the_whole_reply_through_a_redis_outage(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """Redis stops mid-reply and comes back: B's follower reads MongoDB meanwhile, then the
    stream again, and gets every seq once."""
    fake_openrouter.default = Reply(tokens=[f"d{i} " for i in range(80)], token_delay=0.03)
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    async with signed_in_socket(pair.b.ws_url, alice.token) as on_b:
        following = asyncio.create_task(arrivals(on_b, reply))
        await asyncio.sleep(0.5)
        await pair.redis.stop()
        await asyncio.sleep(0.8)
        await pair.redis.start()
        seen, done = await following
    assert sorted(seen) == list(range(1, 81))
    assert done["status"] == "COMPLETE"


async def slot_members(pair: Pair, user: SignedIn) -> list[object]:
    redis = Redis.from_url(pair.redis.url)
    try:
        key = f"gql_chat:{pair.settings.mongodb_db}:slots:{user.user_id}"
        members: list[object] = list(await redis.zrange(key, 0, -1))
        return members
    finally:
        await redis.aclose()


async def test_slots_taken_while_redis_was_down_count_once_it_is_back(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    alice_on_b = as_user(alice, pair.b_gql)
    await pair.redis.stop()
    await send_message(alice, "one")
    await send_message(alice, "two")
    await pair.redis.start()
    for _ in range(50):  # the next renewal (a third of the pair's one-second lease) writes them
        await asyncio.sleep(0.1)
        if len(await slot_members(pair, alice)) == 2:
            break
    await send_message(alice_on_b, "three")
    assert (await alice_on_b.execute(SEND, {"c": "four"})).error_codes == ["RATE_LIMITED"]


async def test_just_after_a_redis_restart_the_limit_still_counts_every_instance(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """B's first claim after a restart goes out on a connection Redis closed: it is sent again
    on a new one (it once counted B's replies alone, letting a user past the limit)."""
    fake_openrouter.default = SLOW
    alice = await sign_up(pair.a_gql)
    alice_on_b = as_user(alice, pair.b_gql)
    on_b = (await send_message(alice_on_b, "opens B's connection"))["assistantMessage"]["id"]
    await alice_on_b.ok(STOP, {"id": on_b})
    for n in range(3):
        await send_message(alice, f"reply {n}")
    await pair.redis.stop()
    await pair.redis.start()
    for _ in range(50):  # A's renewals write its three slots into the new Redis
        if len(await slot_members(pair, alice)) == 3:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("A's slots were never written again")
    assert (await alice_on_b.execute(SEND, {"c": "four"})).error_codes == ["RATE_LIMITED"]


async def test_a_reply_continued_on_one_instance_streams_on_through_redis_to_another(
    pair: Pair, fake_openrouter: FakeOpenRouter
) -> None:
    """`continueGeneration` replaces the reply's ended Redis stream: a follower on B gets the
    new deltas as they come (numbered on from the stored ones), not through MongoDB's re-reads;
    and a reply written long ago is not taken for one its instance lost."""
    cut_off = "".join(f"a{i} " for i in range(10))
    fake_openrouter.by_prompt["hello"] = Reply(
        tokens=[f"a{i} " for i in range(10)], finish_reason="length"
    )
    alice = await sign_up(pair.a_gql)
    reply = (await send_message(alice, "hello"))["assistantMessage"]["id"]
    await final_message(alice, reply)
    messages = pair.a.app.state.services.database.db["messages"]
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await messages.update_one({"_id": ObjectId(reply)}, {"$set": {"created_at": an_hour_ago}})
    fake_openrouter.by_prompt[cut_off] = Reply(
        tokens=[f"b{i} " for i in range(40)], token_delay=0.05
    )
    continued = """mutation($id: ID!) { continueGeneration(messageId: $id) {
        assistantMessage { status } } }"""

    await alice.ok(continued, {"id": reply})

    async with (
        signed_in_socket(pair.a.ws_url, alice.token) as on_a,
        signed_in_socket(pair.b.ws_url, alice.token) as on_b,
    ):
        (seen_a, done_a), (seen_b, done_b) = await asyncio.gather(
            arrivals(on_a, reply), arrivals(on_b, reply)
        )
    assert sorted(seen_b) == list(range(1, 51)) == sorted(seen_a)
    assert done_b["status"] == done_a["status"] == "COMPLETE"
    lags = sorted(seen_b[seq] - seen_a[seq] for seq in range(11, 51))
    assert lags[len(lags) // 2] < 0.1, lags  # MongoDB's re-reads alone lag 0.25 s on average
