"""`conversations` pages backwards as well as forwards, and a folder's conversations take the
same `archived` filter as the top-level list."""

from __future__ import annotations

import random

import pytest

from tests.support import SignedIn, create_conversation, create_folder

PAGE = """query($first: Int, $after: String, $last: Int, $before: String) {
    conversations(first: $first, after: $after, last: $last, before: $before) {
        totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        edges { cursor node { id } } } }"""


async def forwards(user: SignedIn, size: int) -> list[str]:
    ids: list[str] = []
    after = None
    while True:
        page = (await user.ok(PAGE, {"first": size, "after": after}))["conversations"]
        ids += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return ids
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("seed", range(3))
async def test_walking_backwards_gives_the_same_list(alice: SignedIn, seed: int) -> None:
    rng = random.Random(seed)
    for number in range(rng.randint(1, 14)):
        await create_conversation(alice, title=f"c{number}")
    newest_first = await forwards(alice, rng.randint(1, 5))
    assert len(newest_first) == len(set(newest_first))
    collected: list[str] = []
    before = None
    while True:
        size = rng.randint(1, 5)
        page = (await alice.ok(PAGE, {"last": size, "before": before}))["conversations"]
        ids = [edge["node"]["id"] for edge in page["edges"]]
        assert ids == newest_first[len(newest_first) - len(collected) - len(ids) :][: len(ids)]
        assert page["pageInfo"]["hasNextPage"] == (before is not None)
        collected = ids + collected
        assert page["totalCount"] == len(newest_first)
        if not page["pageInfo"]["hasPreviousPage"]:
            break
        before = page["pageInfo"]["startCursor"]
    assert collected == newest_first


async def test_both_directions_at_once_and_bad_cursors_are_refused(alice: SignedIn) -> None:
    await create_conversation(alice, title="one")
    both = await alice.execute(PAGE, {"first": 1, "last": 1})
    assert both.error_codes == ["BAD_USER_INPUT"]
    bad = await alice.execute(PAGE, {"last": 1, "before": "nope"})
    assert bad.error_codes == ["BAD_USER_INPUT"]
    assert bad.errors[0]["extensions"]["field"] == "before"


async def test_a_folders_conversations_take_the_archived_filter(alice: SignedIn) -> None:
    folder = await create_folder(alice, "Old things")
    archived = await create_conversation(alice, title="done", folderId=folder)
    await alice.ok(
        "mutation($id: ID!) { updateConversation(id: $id, input: {archived: true}) { id } }",
        {"id": archived},
    )
    query = """query($archived: Boolean) { folders { conversations(archived: $archived) {
        totalCount edges { node { id } } } } }"""
    default = (await alice.ok("{ folders { conversations { totalCount } } }"))["folders"]
    assert default[0]["conversations"]["totalCount"] == 0
    only = (await alice.ok(query, {"archived": True}))["folders"][0]["conversations"]
    assert (only["totalCount"], only["edges"][0]["node"]["id"]) == (1, archived)
    every = (await alice.ok(query, {"archived": None}))["folders"][0]["conversations"]
    assert every["totalCount"] == 1
