"""`rateMessage`: thumbs up or down and a comment on a reply, shown as `Message.feedback`,
replaced by a later rating, cleared by nulls; the admins page through everyone's (`feedback`)."""

from __future__ import annotations

from tests.support import SignedIn, final_message, send_message

RATE = """mutation($id: ID!, $rating: FeedbackRating, $comment: String) {
    rateMessage(messageId: $id, rating: $rating, comment: $comment) {
        id feedback { rating comment updatedAt } } }"""
EXPORT = """query($first: Int, $after: String, $rating: FeedbackRating) {
    feedback(first: $first, after: $after, rating: $rating) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { userId conversationId model message { id }
            feedback { rating comment } } } } }"""


async def reply_of(user: SignedIn, text: str) -> str:
    reply: str = (await send_message(user, text))["assistantMessage"]["id"]
    await final_message(user, reply)
    return reply


async def test_rating_a_reply(alice: SignedIn, bob: SignedIn, admin: SignedIn) -> None:
    reply = await reply_of(alice, "rate me")
    up = await alice.ok(RATE, {"id": reply, "rating": "UP", "comment": "  spot on  "})
    assert up["rateMessage"]["feedback"]["rating"] == "UP"
    assert up["rateMessage"]["feedback"]["comment"] == "spot on"
    down = await alice.ok(RATE, {"id": reply, "rating": "DOWN", "comment": None})
    assert down["rateMessage"]["feedback"]["rating"] == "DOWN"
    assert down["rateMessage"]["feedback"]["comment"] is None
    read = await alice.ok(
        "query($id: ID!) { message(id: $id) { feedback { rating } } }", {"id": reply}
    )
    assert read["message"]["feedback"] == {"rating": "DOWN"}

    other = await reply_of(bob, "bob's")
    await bob.ok(RATE, {"id": other, "rating": "UP"})
    assert (await bob.execute(RATE, {"id": reply, "rating": "UP"})).error_codes == ["NOT_FOUND"]
    question = (await send_message(alice, "a question"))["userMessage"]["id"]
    refused = await alice.execute(RATE, {"id": question, "rating": "UP"})
    assert refused.error_codes == ["BAD_USER_INPUT"]
    long = await alice.execute(RATE, {"id": reply, "comment": "x" * 2001})
    assert long.errors[0]["extensions"]["field"] == "comment"

    assert (await alice.execute(EXPORT, {})).error_codes == ["FORBIDDEN"]
    everything = (await admin.ok(EXPORT, {"first": 1}))["feedback"]
    assert everything["totalCount"] == 2
    assert everything["edges"][0]["node"]["message"]["id"] == other  # newest first
    assert everything["edges"][0]["node"]["userId"] == bob.user_id
    rest = await admin.ok(EXPORT, {"first": 1, "after": everything["pageInfo"]["endCursor"]})
    assert rest["feedback"]["edges"][0]["node"]["feedback"] == {"rating": "DOWN", "comment": None}
    downs = (await admin.ok(EXPORT, {"rating": "DOWN"}))["feedback"]
    assert [e["node"]["message"]["id"] for e in downs["edges"]] == [reply]

    cleared = await alice.ok(RATE, {"id": reply, "rating": None, "comment": None})
    assert cleared["rateMessage"]["feedback"] is None
    assert (await admin.ok(EXPORT, {}))["feedback"]["totalCount"] == 1
