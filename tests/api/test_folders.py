"""Folders: nesting, ordering, moves, cycles, and both kinds of delete."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from tests.support import SignedIn, create_conversation, create_folder

FOLDERS = "{ folders { id name position parent { id } children { id } } }"
UPDATE = """mutation($id: ID!, $input: UpdateFolderInput!) {
    updateFolder(id: $id, input: $input) { id name position parent { id } } }"""
DELETE = "mutation($id: ID!, $all: Boolean) { deleteFolder(id: $id, deleteContents: $all) }"


async def tree(user: SignedIn) -> dict[str, dict[str, Any]]:
    folders = (await user.ok(FOLDERS))["folders"]
    return {f["name"]: f for f in folders}


def sibling_order(folders: dict[str, dict[str, Any]], parent: str | None) -> list[str]:
    siblings = [f for f in folders.values() if (f["parent"] or {}).get("id") == parent]
    return [f["name"] for f in sorted(siblings, key=lambda f: f["position"])]


async def test_nested_folders_and_positions(alice: SignedIn) -> None:
    root = await create_folder(alice, "Work")
    for name in ("A", "B", "C"):
        await create_folder(alice, name, root)
    folders = await tree(alice)
    assert sibling_order(folders, root) == ["A", "B", "C"]
    assert [f["position"] for f in folders.values() if f["parent"]] == [0, 1, 2]
    assert {c["id"] for c in folders["Work"]["children"]} == {
        folders[n]["id"] for n in ("A", "B", "C")
    }
    folder = await alice.ok(
        "query($id: ID!) { folder(id: $id) { name parent { name } children { name } } }",
        {"id": folders["B"]["id"]},
    )
    assert folder == {"folder": {"name": "B", "parent": {"name": "Work"}, "children": []}}


async def test_setting_a_position_shifts_siblings(alice: SignedIn) -> None:
    ids = [await create_folder(alice, name) for name in ("A", "B", "C", "D")]
    await alice.ok(UPDATE, {"id": ids[3], "input": {"position": 0}})
    assert sibling_order(await tree(alice), None) == ["D", "A", "B", "C"]
    await alice.ok(UPDATE, {"id": ids[3], "input": {"position": 99}})
    folders = await tree(alice)
    assert sibling_order(folders, None) == ["A", "B", "C", "D"]
    assert sorted(f["position"] for f in folders.values()) == [0, 1, 2, 3]


async def test_names_are_trimmed_and_checked(alice: SignedIn) -> None:
    folder_id = await create_folder(alice, "  Padded  ")
    assert (await tree(alice))["Padded"]["id"] == folder_id
    for bad in ("   ", "x" * 201):
        result = await alice.execute(
            "mutation($n: String!) { createFolder(input: {name: $n}) { id } }", {"n": bad}
        )
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "name"}
    renamed = await alice.ok(UPDATE, {"id": folder_id, "input": {"name": " Renamed "}})
    assert renamed["updateFolder"]["name"] == "Renamed"


async def test_moves_reject_cycles_and_allow_the_top_level(alice: SignedIn) -> None:
    a = await create_folder(alice, "A")
    b = await create_folder(alice, "B", a)
    c = await create_folder(alice, "C", b)
    for target in (a, b, c):
        result = await alice.execute(UPDATE, {"id": a, "input": {"parentId": target}})
        assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "parentId"}
    moved = await alice.ok(UPDATE, {"id": c, "input": {"parentId": None}})
    assert moved["updateFolder"]["parent"] is None
    folders = await tree(alice)
    assert sibling_order(folders, None) == ["A", "C"]
    unchanged = await alice.ok(UPDATE, {"id": b, "input": {"name": "B2"}})
    assert unchanged["updateFolder"]["parent"] == {"id": a}


async def test_depth_is_limited(alice: SignedIn) -> None:
    parent = None
    chain = []
    for depth in range(16):
        parent = await create_folder(alice, f"L{depth}", parent)
        chain.append(parent)
    too_deep = await alice.execute(
        'mutation($p: ID!) { createFolder(input: {name: "L16", parentId: $p}) { id } }',
        {"p": parent},
    )
    assert too_deep.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "parentId"}
    # Moving a two-level subtree under level 15 would reach depth 17.
    other = await create_folder(alice, "X")
    await create_folder(alice, "Y", other)
    result = await alice.execute(UPDATE, {"id": other, "input": {"parentId": chain[14]}})
    assert result.errors[0]["extensions"]["field"] == "parentId"


async def test_delete_without_contents_moves_everything_up(alice: SignedIn) -> None:
    top = await create_folder(alice, "Top")
    middle = await create_folder(alice, "Middle", top)
    await create_folder(alice, "Sibling", top)
    child = await create_folder(alice, "Child", middle)
    conversation = await create_conversation(alice, title="Filed", folderId=middle)

    assert (await alice.ok(DELETE, {"id": middle, "all": False})) == {"deleteFolder": True}
    folders = await tree(alice)
    assert "Middle" not in folders
    assert folders["Child"]["parent"] == {"id": top}
    assert sibling_order(folders, top) == ["Sibling", "Child"]
    moved = await alice.ok(
        "query($id: ID!) { conversation(id: $id) { folder { id } } }", {"id": conversation}
    )
    assert moved == {"conversation": {"folder": {"id": top}}}
    assert child


async def test_delete_with_contents_removes_the_subtree(alice: SignedIn, app: Starlette) -> None:
    keep = await create_folder(alice, "Keep")
    kept_conversation = await create_conversation(alice, folderId=keep)
    doomed = await create_folder(alice, "Doomed")
    inner = await create_folder(alice, "Inner", doomed)
    deep = await create_folder(alice, "Deep", inner)
    conversations = [
        await create_conversation(alice, folderId=folder) for folder in (doomed, inner, deep)
    ]
    await alice.ok(DELETE, {"id": doomed, "all": True})
    assert set(await tree(alice)) == {"Keep"}
    for conversation in conversations:
        result = await alice.execute(
            "query($id: ID!) { conversation(id: $id) { id } }", {"id": conversation}
        )
        assert result.error_codes == ["NOT_FOUND"]
    listed = await alice.ok("{ conversations { totalCount edges { node { id } } } }")
    assert listed["conversations"]["edges"] == [{"node": {"id": kept_conversation}}]


async def test_a_failed_delete_is_finished_by_a_retry(
    alice: SignedIn, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = await create_folder(alice, "Doomed")
    inner = await create_folder(alice, "Inner", doomed)
    await create_folder(alice, "Deep", inner)
    await create_conversation(alice, folderId=inner)
    store = app.state.services.database.folders
    real_delete = store.delete_many
    calls = 0

    async def fail_on_second_level(owner_id: Any, ids: list[Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("network went away")
        await real_delete(owner_id, ids)

    monkeypatch.setattr(store, "delete_many", fail_on_second_level)
    failed = await alice.execute(DELETE, {"id": doomed, "all": True})
    assert failed.error_codes == ["INTERNAL_SERVER_ERROR"]
    # Half-done, but nothing is orphaned: what is left still hangs from the folder.
    left = await tree(alice)
    assert set(left) == {"Doomed", "Inner"}
    assert left["Inner"]["parent"] == {"id": doomed}

    assert await alice.ok(DELETE, {"id": doomed, "all": True})
    assert await tree(alice) == {}
    assert (await alice.ok("{ conversations { totalCount } }"))["conversations"]["totalCount"] == 0


async def test_folder_conversations_connection(alice: SignedIn) -> None:
    folder = await create_folder(alice, "F")
    inside = [await create_conversation(alice, folderId=folder) for _ in range(3)]
    await create_conversation(alice)
    data = await alice.ok(
        """query($id: ID!) { folder(id: $id) { conversations(first: 2) {
            totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } } }""",
        {"id": folder},
    )
    connection = data["folder"]["conversations"]
    assert connection["totalCount"] == 3
    assert connection["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["id"] for e in connection["edges"]] == inside[::-1][:2]
