"""What a finished reply says of itself: why the model stopped, and how long it took."""

from __future__ import annotations

import asyncio

from tests.support import SignedIn, send_message

DETAILS = """query($id: ID!) { message(id: $id) { status finishReason
    timings { firstTokenMs totalMs } } }"""


async def test_a_finished_reply_has_its_finish_reason_and_timings(alice: SignedIn) -> None:
    sent = await send_message(alice, "hello there")
    reply_id = sent["assistantMessage"]["id"]
    for _ in range(300):
        reply = (await alice.ok(DETAILS, {"id": reply_id}))["message"]
        if reply["status"] == "COMPLETE":
            break
        assert reply["finishReason"] is None
        assert reply["timings"] is None
        await asyncio.sleep(0.02)
    assert reply["finishReason"] == "stop"
    timings = reply["timings"]
    assert 0 <= timings["firstTokenMs"] <= timings["totalMs"]
    question = (await alice.ok(DETAILS, {"id": sent["userMessage"]["id"]}))["message"]
    assert (question["finishReason"], question["timings"]) == (None, None)
