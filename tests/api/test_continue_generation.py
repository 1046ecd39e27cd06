"""`continueGeneration`: a reply cut off by its length limit, stopped or interrupted grows in
place. The same message, its `seq` numbers going on (so a follower from any `afterSeq` gets
every delta once), the model given the reply so far as the start of its answer, usage and time
added up; refused, with nothing changed, for a reply that cannot be continued."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest
from bson import ObjectId

from gql_chat.config import Settings
from gql_chat.services.titles import TITLE_PROMPT
from tests.api.test_branching import wait_for_subscribers
from tests.api.test_user_event_objects import until
from tests.conftest import live_server_of, make_settings, openrouter_settings
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.support import (
    GraphQLClient,
    SignedIn,
    create_preset,
    final_message,
    follow_reply,
    send_message,
    sign_up,
    ws_client,
)

CONTINUE = """mutation($id: ID!) { continueGeneration(messageId: $id) {
    conversation { id messages(last: 1) { edges { node { id } } } } userMessage { id }
    assistantMessage { id status content finishReason } } }"""
STOP = "mutation($id: ID!) { stopGeneration(messageId: $id) { id status content } }"
DETAILS = """content reasoning finishReason model
    usage { promptTokens completionTokens totalTokens cost } timings { firstTokenMs totalMs }"""
STREAM_WITH_REASONING = """subscription($id: ID!, $after: Int) {
    messageStream(messageId: $id, afterSeq: $after) { seq delta reasoningDelta done
    message { content reasoning status } } }"""
EVENTS = "subscription { userEvents { kind message { id status content } } }"
USAGE_FIRST = {"prompt_tokens": 12, "completion_tokens": 4, "cost": 0.00042}
USAGE_SECOND = {"prompt_tokens": 20, "completion_tokens": 3, "cost": 0.0001}


@pytest.fixture
def settings(fake_openrouter: FakeOpenRouter) -> Settings:
    return openrouter_settings(fake_openrouter)


@pytest.fixture
async def user(live_gql: GraphQLClient) -> SignedIn:
    return await sign_up(live_gql)


def code_of(result: Any) -> str:
    assert result.errors, result.data
    code: str = result.errors[0]["extensions"]["code"]
    return code


def reply_requests(fake: FakeOpenRouter) -> list[Any]:
    """The requests for replies, not the automatic title's (sent after the first reply ends,
    at a moment of its own)."""
    return [r for r in fake.requests if r.body["messages"][0]["content"] != TITLE_PROMPT]


async def cut_off_reply(
    user: SignedIn, fake: FakeOpenRouter, tokens: list[str], question: str = "Tell me more"
) -> dict[str, Any]:
    """A stored reply of `tokens` that its length limit ended; the sendMessage payload."""
    fake.by_prompt[question] = Reply(tokens=tokens, finish_reason="length", usage=USAGE_FIRST)
    sent = await send_message(user, question)
    reply = await final_message(user, sent["assistantMessage"]["id"], "finishReason")
    assert (reply["status"], reply["finishReason"]) == ("COMPLETE", "length")
    return sent


async def test_a_reply_cut_off_by_its_length_limit_grows_in_place(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    sent = await cut_off_reply(user, fake_openrouter, ["Once", " upon", " a"])
    reply_id = sent["assistantMessage"]["id"]
    before = await final_message(user, reply_id, DETAILS)
    # Keyed by the prompt's last message, the reply so far (a title request takes no reply
    # meant for the continuation).
    fake_openrouter.by_prompt["Once upon a"] = Reply(
        tokens=[" time", "."], usage=USAGE_SECOND, token_delay=0.05
    )

    payload = (await user.ok(CONTINUE, {"id": reply_id}))["continueGeneration"]

    assert payload["assistantMessage"] == {
        "id": reply_id,
        "status": "STREAMING",
        "content": "Once upon a",
        "finishReason": None,
    }
    assert payload["userMessage"]["id"] == sent["userMessage"]["id"]
    assert payload["conversation"]["messages"]["edges"] == [{"node": {"id": reply_id}}]
    events = await follow_reply(live_server.ws_url, user.token, reply_id, after_seq=3)
    assert [(e["seq"], e["delta"]) for e in events[:-1]] == [(4, " time"), (5, ".")]
    assert events[-1]["done"]
    assert events[-1]["message"]["content"] == "Once upon a time."

    after = await final_message(user, reply_id, DETAILS)
    assert (after["status"], after["finishReason"]) == ("COMPLETE", "stop")
    assert after["usage"]["promptTokens"] == 12 + 20
    assert after["usage"]["completionTokens"] == 4 + 3
    assert after["usage"]["cost"] == pytest.approx(0.00042 + 0.0001)
    assert after["timings"]["firstTokenMs"] == before["timings"]["firstTokenMs"]
    assert after["timings"]["totalMs"] > before["timings"]["totalMs"]
    # The model was asked to go on from the reply's text: an assistant message last.
    request = fake_openrouter.requests[-1].body
    assert request["messages"][-2:] == [
        {"role": "user", "content": "Tell me more"},
        {"role": "assistant", "content": "Once upon a"},
    ]
    replay = await follow_reply(live_server.ws_url, user.token, reply_id)  # from the store
    assert [e["seq"] for e in replay[:-1]] == [1, 2, 3, 4, 5]
    assert "".join(e["delta"] for e in replay[:-1]) == "Once upon a time."


async def test_a_stopped_reply_continues_and_a_follower_from_the_start_gets_every_delta_once(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt["Go slowly"] = Reply(
        tokens=["a", "b", "c", "d", "e"], gaps=[0, 0, 5, 5, 5]
    )
    sent = await send_message(user, "Go slowly")
    reply_id = sent["assistantMessage"]["id"]
    early = await follow_reply(live_server.ws_url, user.token, reply_id, stop_after=2)
    assert [e["delta"] for e in early] == ["a", "b"]
    stopped = (await user.ok(STOP, {"id": reply_id}))["stopGeneration"]
    assert (stopped["status"], stopped["content"]) == ("STOPPED", "ab")
    fake_openrouter.by_prompt["ab"] = Reply(tokens=["C", "D", "E"], gaps=[0, 0.3, 0.3])

    await user.ok(CONTINUE, {"id": reply_id})
    # Live, from the start: the stored deltas, then the new ones numbered on.
    events = await follow_reply(live_server.ws_url, user.token, reply_id)

    assert [(e["seq"], e["delta"]) for e in events[:-1]] == [
        (1, "a"),
        (2, "b"),
        (3, "C"),
        (4, "D"),
        (5, "E"),
    ]
    final = events[-1]["message"]
    assert (final["content"], final["status"]) == ("abCDE", "COMPLETE")


async def test_reasoning_of_a_continuation_is_appended_and_numbered_with_the_answer(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.by_prompt["Think"] = Reply(
        tokens=["hmm ", "The"], reasoning_at=frozenset({0}), finish_reason="length"
    )
    sent = await send_message(user, "Think")
    reply_id = sent["assistantMessage"]["id"]
    await final_message(user, reply_id)
    fake_openrouter.by_prompt["The"] = Reply(
        tokens=["so ", " answer"], reasoning_at=frozenset({0}), token_delay=0.05
    )

    await user.ok(CONTINUE, {"id": reply_id})

    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe(STREAM_WITH_REASONING, {"id": reply_id, "after": 1})
        events: list[dict[str, Any]] = []
        while not (events and events[-1]["done"]):
            message = await asyncio.wait_for(ws.receive(), timeout=10)
            events.append(message["payload"]["data"]["messageStream"])
    assert [(e["seq"], e["delta"], e["reasoningDelta"]) for e in events[:-1]] == [
        (2, "The", ""),
        (3, "", "so "),
        (4, " answer", ""),
    ]
    assert events[-1]["message"] == {
        "content": "The answer",
        "reasoning": "hmm so ",
        "status": "COMPLETE",
    }
    # The reasoning is never sent back: the prefill is the answer alone.
    assert fake_openrouter.requests[-1].body["messages"][-1] == {
        "role": "assistant",
        "content": "The",
    }


async def test_replies_that_cannot_be_continued_are_refused_and_left_unchanged(
    live_server: Any, user: SignedIn, live_gql: GraphQLClient, fake_openrouter: FakeOpenRouter
) -> None:
    sent = await send_message(user, "Hello")  # ends with finish reason "stop"
    reply_id = sent["assistantMessage"]["id"]
    complete = await final_message(user, reply_id, DETAILS)
    other = await sign_up(live_gql)

    assert code_of(await user.execute(CONTINUE, {"id": reply_id})) == "BAD_USER_INPUT"
    question = sent["userMessage"]["id"]
    assert code_of(await user.execute(CONTINUE, {"id": question})) == "BAD_USER_INPUT"
    assert code_of(await other.execute(CONTINUE, {"id": reply_id})) == "NOT_FOUND"
    assert code_of(await user.execute(CONTINUE, {"id": "not-an-id"})) in {
        "BAD_USER_INPUT",
        "NOT_FOUND",
    }
    assert await final_message(user, reply_id, DETAILS) == complete
    assert not any(r.body["messages"][-1]["role"] == "assistant" for r in fake_openrouter.requests)

    fake_openrouter.by_prompt["Slow"] = Reply(tokens=["x", "y"], gaps=[0, 5])
    streaming = (await send_message(user, "Slow"))["assistantMessage"]["id"]
    await follow_reply(live_server.ws_url, user.token, streaming, stop_after=1)
    assert code_of(await user.execute(CONTINUE, {"id": streaming})) == "CONFLICT"
    await user.ok(STOP, {"id": streaming})


async def test_two_continuations_at_once_claim_the_reply_once(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    sent = await cut_off_reply(user, fake_openrouter, ["one", " two"])
    reply_id = sent["assistantMessage"]["id"]
    fake_openrouter.by_prompt["one two"] = Reply(tokens=[" three"], usage=USAGE_SECOND)

    results = await asyncio.gather(*(user.execute(CONTINUE, {"id": reply_id}) for _ in range(3)))

    succeeded = [r for r in results if not r.errors]
    assert len(succeeded) == 1, [r.errors for r in results]
    assert {code_of(r) for r in results if r.errors} <= {"CONFLICT", "RATE_LIMITED"}
    final = await final_message(user, reply_id, DETAILS)
    assert final["content"] == "one two three"
    assert final["usage"]["promptTokens"] == 12 + 20


async def test_a_continuation_the_user_stops_keeps_what_it_streamed_and_can_go_on_again(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    sent = await cut_off_reply(user, fake_openrouter, ["1"])
    reply_id = sent["assistantMessage"]["id"]
    fake_openrouter.by_prompt["1"] = Reply(tokens=["2", "3"], gaps=[0, 5])
    await user.ok(CONTINUE, {"id": reply_id})
    await follow_reply(live_server.ws_url, user.token, reply_id, after_seq=1, stop_after=1)
    stopped = (await user.ok(STOP, {"id": reply_id}))["stopGeneration"]
    assert (stopped["status"], stopped["content"]) == ("STOPPED", "12")
    fake_openrouter.by_prompt["12"] = Reply(tokens=["3", "4"])

    await user.ok(CONTINUE, {"id": reply_id})

    events = await follow_reply(live_server.ws_url, user.token, reply_id, after_seq=2)
    assert [(e["seq"], e["delta"]) for e in events[:-1]] == [(3, "3"), (4, "4")]
    assert events[-1]["message"]["content"] == "1234"


@pytest.mark.parametrize("seed", range(4))
async def test_offline_replies_cut_by_max_tokens_continue_to_the_whole_answer(seed: int) -> None:
    """Generated: a preset's random `maxTokens` cuts the offline model's answer; continuing
    until it ends gives exactly the answer a reply without the limit gets, every delta once."""
    rng = random.Random(seed)
    settings = make_settings(offline_token_delay=0.0)
    async with (
        live_server_of(settings) as server,
        httpx.AsyncClient(base_url=server.http_url) as http,
    ):
        user = await sign_up(GraphQLClient(http))
        question = " ".join(f"word{rng.randrange(1000)}" for _ in range(rng.randint(1, 30)))
        whole = await send_message(user, question)
        expected = (await final_message(user, whole["assistantMessage"]["id"], "content"))[
            "content"
        ]
        preset = await create_preset(user, "short", maxTokens=rng.randint(3, 12))
        sent = await send_message(user, question, llmConfigId=preset)
        reply_id = sent["assistantMessage"]["id"]
        rounds = 0
        while True:
            reply = await final_message(user, reply_id, "content finishReason")
            if reply["finishReason"] != "length":
                break
            rounds += 1
            assert rounds < 100, "the answer never ended"
            await user.ok(CONTINUE, {"id": reply_id})
        assert rounds >= 1
        assert (reply["status"], reply["content"]) == ("COMPLETE", expected)
        events = await follow_reply(server.ws_url, user.token, reply_id)
        assert "".join(e["delta"] for e in events[:-1]) == expected
        assert [e["seq"] for e in events[:-1]] == list(range(1, len(events)))


async def test_other_devices_hear_the_reply_go_on_and_end(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    sent = await cut_off_reply(user, fake_openrouter, ["x"])
    reply_id = sent["assistantMessage"]["id"]
    fake_openrouter.by_prompt["x"] = Reply(tokens=["y"], token_delay=0.05)
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {user.token}"})
        await ws.subscribe(EVENTS)
        await wait_for_subscribers(live_server, user, 1)

        await user.ok(CONTINUE, {"id": reply_id})

        updated = await until(ws, "MESSAGE_UPDATED")
        assert updated["message"]["id"] == reply_id
        assert updated["message"]["status"] in ("STREAMING", "COMPLETE")
        completed = await until(ws, "MESSAGE_COMPLETED")
        assert completed["message"] == {"id": reply_id, "status": "COMPLETE", "content": "xy"}


async def test_a_continuation_refused_after_claiming_the_reply_restores_it(
    live_server: Any, user: SignedIn, fake_openrouter: FakeOpenRouter
) -> None:
    """While a message delete holds the conversation, no reply starts there: the continuation
    claimed the reply first, and gives it back as it was."""
    sent = await cut_off_reply(user, fake_openrouter, ["kept"])
    reply_id = sent["assistantMessage"]["id"]
    before = await final_message(user, reply_id, DETAILS)
    runner = live_server.app.state.services.runner
    requests = len(reply_requests(fake_openrouter))

    with runner.changing_conversation(ObjectId(sent["conversation"]["id"])):
        result = await user.execute(CONTINUE, {"id": reply_id})

    assert code_of(result) == "NOT_FOUND"
    assert await final_message(user, reply_id, DETAILS) == before
    assert len(reply_requests(fake_openrouter)) == requests  # nothing was sent to the model
    fake_openrouter.by_prompt["kept"] = Reply(tokens=[" and more"])
    await user.ok(CONTINUE, {"id": reply_id})  # and it can be continued after
    assert (await final_message(user, reply_id, "content"))["content"] == "kept and more"
