"""The lists that are not paged (`folders`, `llmConfigs`) stay small: an account holds at most
`GQL_CHAT_MAX_FOLDERS_PER_USER` folders and `GQL_CHAT_MAX_PRESETS_PER_USER` presets. One more is
refused with CONFLICT (`extensions.limit`) and writes nothing, however many creates race."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from gql_chat.config import Settings
from tests.support import CREATE_FOLDER, CREATE_PRESET, GraphQLResult, SignedIn

LIMIT = 3
FOLDERS = "{ folders { id } }"
PRESETS = "{ llmConfigs { id } }"
DELETE_FOLDER = "mutation($id: ID!) { deleteFolder(id: $id) }"
DELETE_PRESET = "mutation($id: ID!) { deleteLlmConfig(id: $id) }"


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    return settings_factory(max_folders_per_user=LIMIT, max_presets_per_user=LIMIT)


async def create_folder(user: SignedIn, name: str, parent: str | None = None) -> GraphQLResult:
    return await user.execute(CREATE_FOLDER, {"input": {"name": name, "parentId": parent}})


async def create_preset(user: SignedIn, name: str) -> GraphQLResult:
    return await user.execute(CREATE_PRESET, {"input": {"name": name, "model": "m/x"}})


def assert_limit_reached(result: GraphQLResult) -> None:
    assert result.data is None
    (error,) = result.errors
    assert error["extensions"] == {"code": "CONFLICT", "limit": LIMIT}
    assert str(LIMIT) in error["message"]


async def test_one_folder_over_the_limit_is_refused_until_one_is_deleted(
    alice: SignedIn, bob: SignedIn
) -> None:
    top = (await create_folder(alice, "top")).ok()["createFolder"]["id"]
    await create_folder(alice, "child", top)
    last = (await create_folder(alice, "grandchild", top)).ok()["createFolder"]["id"]

    assert_limit_reached(await create_folder(alice, "one too many"))
    assert_limit_reached(await create_folder(alice, "nested too", top))
    assert len((await alice.ok(FOLDERS))["folders"]) == LIMIT
    (await create_folder(bob, "bob's own")).ok()  # a limit per account

    await alice.ok(DELETE_FOLDER, {"id": last})
    (await create_folder(alice, "room again")).ok()


async def test_one_preset_over_the_limit_is_refused_until_one_is_deleted(alice: SignedIn) -> None:
    ids = [(await create_preset(alice, f"p{i}")).ok()["createLlmConfig"]["id"] for i in range(3)]

    assert_limit_reached(await create_preset(alice, "one too many"))
    assert len((await alice.ok(PRESETS))["llmConfigs"]) == LIMIT

    await alice.ok(DELETE_PRESET, {"id": ids[0]})
    (await create_preset(alice, "room again")).ok()


@pytest.mark.parametrize("kind", ["folders", "presets"])
async def test_racing_creates_keep_exactly_the_limit(alice: SignedIn, kind: str) -> None:
    create = create_folder if kind == "folders" else create_preset
    results = await asyncio.gather(*(create(alice, f"race {i}") for i in range(8)))

    created = [r for r in results if r.data is not None]
    assert len(created) == LIMIT
    for refused in (r for r in results if r.data is None):
        assert_limit_reached(refused)
    listing = await alice.ok(FOLDERS if kind == "folders" else PRESETS)
    assert len(next(iter(listing.values()))) == LIMIT


@pytest.mark.parametrize("seed", range(3))
async def test_random_creates_and_deletes_agree_with_a_counter(alice: SignedIn, seed: int) -> None:
    """Seeded random sequences (some creates sent at once): a create succeeds exactly when
    the account is under the limit, and the lists always hold what succeeded."""
    rng = random.Random(seed)
    folders: list[str] = []
    presets: list[str] = []
    for step in range(25):
        kind = rng.choice(["folders", "presets"])
        held = folders if kind == "folders" else presets
        if held and rng.random() < 0.35:
            doomed = held.pop(rng.randrange(len(held)))
            query = DELETE_FOLDER if kind == "folders" else DELETE_PRESET
            await alice.ok(query, {"id": doomed})
            continue
        create = create_folder if kind == "folders" else create_preset
        burst = rng.randint(1, 3)
        room = LIMIT - len(held)
        results = await asyncio.gather(*(create(alice, f"s{step}-{i}") for i in range(burst)))
        made = [r.ok() for r in results if r.data is not None]
        assert len(made) == min(burst, room)
        held.extend(next(iter(m.values()))["id"] for m in made)
        listing = await alice.ok(FOLDERS if kind == "folders" else PRESETS)
        assert sorted(item["id"] for item in next(iter(listing.values()))) == sorted(held)
