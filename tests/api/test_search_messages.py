"""`searchMessages`: literal, case-insensitive hits over message text, newest first, paged, each
with its conversation, role and a snippet around the match; nobody else's messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gql_chat.services.search import SNIPPET_CONTEXT, snippet_of
from tests.support import SignedIn, final_message, send_message

SEARCH = """query($q: String!, $first: Int, $after: String) {
    searchMessages(query: $q, first: $first, after: $after) {
        totalCount pageInfo { hasNextPage endCursor }
        edges { node { role message { id content } conversation { id }
            snippet { before match after } } } } }"""


async def test_hits_are_newest_first_with_snippets_and_pages(
    alice: SignedIn, bob: SignedIn
) -> None:
    sent = []
    for n in range(3):
        message = await send_message(alice, f"Trip {n} to Lisbon (a.k.a. LISBOA?) in spring")
        await final_message(alice, message["assistantMessage"]["id"])
        sent.append(message)
    other = await send_message(bob, "lisbon for bob")
    await final_message(bob, other["assistantMessage"]["id"])

    first = (await alice.ok(SEARCH, {"q": "lisbon (a.k.a.", "first": 4}))["searchMessages"]
    # Each question matches, and so does each offline reply (it quotes the question).
    assert first["totalCount"] == 6
    hits = [edge["node"] for edge in first["edges"]]
    assert [h["role"] for h in hits] == ["ASSISTANT", "USER", "ASSISTANT", "USER"]
    assert hits[1]["message"]["id"] == sent[2]["userMessage"]["id"]
    assert hits[1]["conversation"]["id"] == sent[2]["conversation"]["id"]
    assert hits[1]["snippet"] == {
        "before": "Trip 2 to ",
        "match": "Lisbon (a.k.a.",
        "after": " LISBOA?) in spring",
    }
    assert first["pageInfo"]["hasNextPage"]
    rest = (
        await alice.ok(
            SEARCH, {"q": "LISBON (A.K.A.", "first": 4, "after": first["pageInfo"]["endCursor"]}
        )
    )["searchMessages"]
    assert len(rest["edges"]) == 2
    assert not rest["pageInfo"]["hasNextPage"]
    assert rest["edges"][-1]["node"]["message"]["id"] == sent[0]["userMessage"]["id"]


@pytest.mark.parametrize("query", ["", "   ", "x" * 2000])
async def test_an_empty_or_huge_query_is_bad_input(alice: SignedIn, query: str) -> None:
    result = await alice.execute(SEARCH, {"q": query})
    assert result.error_codes == ["BAD_USER_INPUT"]


async def test_a_forged_cursor_is_bad_input(alice: SignedIn) -> None:
    result = await alice.execute(SEARCH, {"q": "x", "after": "not-a-cursor"})
    assert result.error_codes == ["BAD_USER_INPUT"]


@hypothesis_settings(derandomize=True, deadline=None, max_examples=120)
@given(
    text=st.text(alphabet="ab Ab\n.é", max_size=300),
    query=st.text(alphabet="ab A.é", min_size=1, max_size=4),
)
def test_a_snippet_is_a_window_around_the_first_match(text: str, query: str) -> None:
    snippet = snippet_of(text, query)
    at = text.lower().find(query.lower())
    if at < 0 or len(query.lower()) != len(query):
        return
    assert snippet.match.lower() == query.lower()
    joined = snippet.before + snippet.match + snippet.after
    assert joined in text
    assert len(snippet.before) <= SNIPPET_CONTEXT
    assert len(snippet.after) <= SNIPPET_CONTEXT
