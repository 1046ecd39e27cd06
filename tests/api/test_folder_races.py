"""Folder tree changes under concurrency and over corrupt data: no cycle, no endless request.

Concurrent requests go to one app or to two app instances over the same store (the embedded
one, or the MongoDB server of GQL_CHAT_TEST_MONGODB_URL), so both the in-process lock and the
lease in the database are exercised. The folder store's reads yield to the event loop for a
random moment, so the requests interleave between a move's check and its write (the window
the race needs) on the embedded store as on a server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from bson import ObjectId
from starlette.applications import Starlette

from gql_chat.app import create_app
from gql_chat.domain.clock import utc_now
from gql_chat.store.database import Database
from tests.conftest import serve
from tests.support import GraphQLClient, GraphQLResult, SignedIn, create_conversation, create_folder

MOVE = """mutation($id: ID!, $parent: ID) {
    updateFolder(id: $id, input: {parentId: $parent}) { id parent { id } } }"""
DELETE = "mutation($id: ID!, $all: Boolean) { deleteFolder(id: $id, deleteContents: $all) }"
CREATE = """mutation($name: String!, $parent: ID) {
    createFolder(input: {name: $name, parentId: $parent}) { id } }"""
FOLDERS = "{ folders { id parent { id } children { id } } }"
BOUND = 20.0  # seconds any single request may take, even on a loaded machine


def database_of(app: Starlette) -> Database:
    database: Database = app.state.services.database
    return database


def interleave(app: Starlette, rng: random.Random) -> None:
    """Make the app's folder reads yield to the event loop for 0-2 ms first."""
    store = database_of(app).folders
    for name in ("get", "children_of"):
        real = getattr(store, name)

        def yielding(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def read(*args: Any) -> Any:
                await asyncio.sleep(rng.random() * 0.002)
                return await real(*args)

            return read

        setattr(store, name, yielding(real))


@pytest.fixture
async def second(app: Starlette) -> AsyncIterator[GraphQLClient]:
    """A second app instance over the same store."""
    database = database_of(app)
    other = create_app(
        app.state.services.settings,
        embedded_client=database.client if database.embedded else None,
    )
    async with serve(other) as http:
        interleave(other, random.Random(7))
        yield GraphQLClient(http)


def on(user: SignedIn, gql: GraphQLClient) -> SignedIn:
    return dataclasses.replace(user, gql=gql)


async def bounded(request: Awaitable[GraphQLResult]) -> GraphQLResult:
    return await asyncio.wait_for(request, BOUND)


async def parents(user: SignedIn) -> dict[str, str | None]:
    result = await bounded(user.execute(FOLDERS))
    return {f["id"]: (f["parent"] or {}).get("id") for f in result.ok()["folders"]}


def assert_no_cycle(tree: dict[str, str | None]) -> None:
    for start in tree:
        seen = {start}
        current = tree[start]
        while current is not None:
            assert current not in seen, f"cycle through {start}"
            seen.add(current)
            current = tree.get(current)


async def assert_sound(user: SignedIn, app: Starlette) -> None:
    """No cycle through the API, and in the database every parent exists."""
    assert_no_cycle(await parents(user))
    stored = await database_of(app).folders.list_all(ObjectId(user.user_id))
    ids = {f.id for f in stored}
    assert all(f.parent_id is None or f.parent_id in ids for f in stored)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("instances", [1, 2])
async def test_opposite_concurrent_moves_apply_exactly_one(
    alice: SignedIn, app: Starlette, second: GraphQLClient, seed: int, instances: int
) -> None:
    rng = random.Random(seed)
    interleave(app, rng)
    other = on(alice, second) if instances == 2 else alice
    for _ in range(8):
        a = await create_folder(alice, "A")
        b = await create_folder(alice, "B")
        moves = [(alice, a, b), (other, b, a)]
        rng.shuffle(moves)
        results = await asyncio.gather(
            *(bounded(user.execute(MOVE, {"id": x, "parent": y})) for user, x, y in moves)
        )
        codes = sorted(str(r.error_codes) for r in results)
        assert codes == ["['BAD_USER_INPUT']", "[]"], codes
        tree = await parents(alice)
        assert_no_cycle(tree)
        assert (tree[a], tree[b]) in {(b, None), (None, a)}
        await bounded(alice.execute(DELETE, {"id": a if tree[a] is None else b, "all": True}))
    await assert_sound(alice, app)
    assert await parents(alice) == {}


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_random_concurrent_moves_and_deletes_keep_a_tree(
    alice: SignedIn, app: Starlette, second: GraphQLClient, seed: int
) -> None:
    rng = random.Random(seed)
    interleave(app, rng)
    users = [alice, on(alice, second)]
    for _ in range(4):
        await create_folder(alice, "seed")
    for _ in range(10):
        existing = list(await parents(alice))
        while len(existing) < 5:
            existing.append(await create_folder(alice, "more", rng.choice([None, *existing])))

        def request(existing: list[str]) -> Awaitable[GraphQLResult]:
            user = rng.choice(users)
            roll = rng.random()
            if roll < 0.6:
                target = rng.choice([None, *existing])
                return user.execute(MOVE, {"id": rng.choice(existing), "parent": target})
            if roll < 0.8:
                variables = {"id": rng.choice(existing), "all": rng.random() < 0.5}
                return user.execute(DELETE, variables)
            return user.execute(CREATE, {"name": "new", "parent": rng.choice([None, *existing])})

        results = await asyncio.gather(*(bounded(request(existing)) for _ in range(6)))
        for result in results:
            # A folder deleted by a concurrent request is NOT_FOUND; a refused move is
            # BAD_USER_INPUT; anything else (an internal error, a conflict) is a failure.
            assert set(result.error_codes) <= {"BAD_USER_INPUT", "NOT_FOUND"}, result.errors
        await assert_sound(alice, app)


async def test_deleting_a_deep_tree_with_contents_terminates(alice: SignedIn) -> None:
    parent = None
    chain = []
    for depth in range(16):
        parent = await create_folder(alice, f"L{depth}", parent)
        chain.append(parent)
        await create_conversation(alice, folderId=parent)
    result = await bounded(alice.execute(DELETE, {"id": chain[0], "all": True}))
    assert result.ok() == {"deleteFolder": True}
    assert await parents(alice) == {}
    count = await bounded(alice.execute("{ conversations { totalCount } }"))
    assert count.ok()["conversations"]["totalCount"] == 0


async def plant_cycle(alice: SignedIn, app: Starlette) -> dict[str, str]:
    """A -> B -> C -> A written straight into the database (as corrupt data or a bug of the
    past would leave it), a self-loop S, and an ordinary folder X with a child Y. The reads
    yield to the event loop, so a request that looped would time out rather than hang."""
    interleave(app, random.Random(0))
    a = await create_folder(alice, "A")
    b = await create_folder(alice, "B", a)
    c = await create_folder(alice, "C", b)
    s = await create_folder(alice, "S")
    x = await create_folder(alice, "X")
    y = await create_folder(alice, "Y", x)
    folders = database_of(app).db["folders"]
    await folders.update_one({"_id": ObjectId(a)}, {"$set": {"parent_id": ObjectId(c)}})
    await folders.update_one({"_id": ObjectId(s)}, {"$set": {"parent_id": ObjectId(s)}})
    return {"A": a, "B": b, "C": c, "S": s, "X": x, "Y": y}


async def test_a_stored_cycle_cannot_make_reads_loop(alice: SignedIn, app: Starlette) -> None:
    ids = await plant_cycle(alice, app)
    tree = await parents(alice)
    assert tree[ids["A"]] == ids["C"]
    assert tree[ids["S"]] == ids["S"]
    deep = "query($id: ID!) { folder(id: $id) { parent { parent { parent { parent { id } } } } } }"
    result = await bounded(alice.execute(deep, {"id": ids["A"]}))
    assert result.ok()["folder"]["parent"]["parent"]["parent"]["parent"] == {"id": ids["C"]}


@pytest.mark.parametrize(
    ("folder", "target"),
    [("A", "B"), ("B", "A"), ("C", "C"), ("X", "A"), ("Y", "S"), ("S", "S"), ("X", "Y")],
)
async def test_a_stored_cycle_refuses_moves_into_it(
    alice: SignedIn, app: Starlette, folder: str, target: str
) -> None:
    ids = await plant_cycle(alice, app)
    result = await bounded(alice.execute(MOVE, {"id": ids[folder], "parent": ids[target]}))
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "parentId"}
    created = await bounded(alice.execute(CREATE, {"name": "new", "parent": ids[target]}))
    if target in "ABCS":
        assert created.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(("folder", "target"), [("A", None), ("B", "X"), ("C", "Y"), ("S", "X")])
async def test_moving_a_folder_out_of_a_stored_cycle_repairs_it(
    alice: SignedIn, app: Starlette, folder: str, target: str | None
) -> None:
    ids = await plant_cycle(alice, app)
    variables = {"id": ids[folder], "parent": ids[target] if target else None}
    assert (await bounded(alice.execute(MOVE, variables))).ok()
    tree = await parents(alice)
    untouched = {ids[n] for n in (("A", "B", "C") if folder == "S" else ("S",))}
    assert_no_cycle({k: v for k, v in tree.items() if k not in untouched})
    assert tree[ids[folder]] == (ids[target] if target else None)


@pytest.mark.parametrize("folder", ["A", "B", "S"])
@pytest.mark.parametrize("contents", [True, False])
async def test_a_stored_cycle_can_be_deleted(
    alice: SignedIn, app: Starlette, folder: str, contents: bool
) -> None:
    ids = await plant_cycle(alice, app)
    result = await bounded(alice.execute(DELETE, {"id": ids[folder], "all": contents}))
    assert result.ok() == {"deleteFolder": True}
    tree = await parents(alice)
    assert ids[folder] not in tree
    if contents:  # the whole cycle hangs from the deleted folder
        cycle = {ids["S"]} if folder == "S" else {ids["A"], ids["B"], ids["C"]}
        assert not cycle & set(tree)
    else:  # the cycle is broken at the deleted folder: its child moves to the top level
        rest = {"A": "B", "B": "C"}.get(folder)
        if rest:
            assert tree[ids[rest]] is None
            assert_no_cycle({k: v for k, v in tree.items() if k != ids["S"]})
    # Every other folder request still answers.
    assert (await bounded(alice.execute(MOVE, {"id": ids["Y"], "parent": None}))).ok()


async def test_an_expired_lease_is_taken_over(alice: SignedIn, app: Starlette) -> None:
    folder = await create_folder(alice, "F")
    locks = database_of(app).db["folder_locks"]
    await locks.insert_one(
        {"_id": ObjectId(alice.user_id), "holder": "crashed", "expires_at": utc_now()}
    )
    assert (await bounded(alice.execute(MOVE, {"id": folder, "parent": None}))).ok()
    assert await locks.count_documents({}) == 0


async def test_a_held_lease_answers_conflict_after_the_wait(
    alice: SignedIn, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = await create_folder(alice, "F")
    monkeypatch.setattr(app.state.services.folders._tree_locked, "_wait", 0.2)
    locks = database_of(app).db["folder_locks"]
    expires = utc_now() + timedelta(hours=1)
    await locks.insert_one(
        {"_id": ObjectId(alice.user_id), "holder": "other", "expires_at": expires}
    )
    result = await bounded(alice.execute(MOVE, {"id": folder, "parent": None}))
    assert result.error_codes == ["CONFLICT"]
    await locks.delete_one({"_id": ObjectId(alice.user_id)})
    assert (await bounded(alice.execute(MOVE, {"id": folder, "parent": None}))).ok()
