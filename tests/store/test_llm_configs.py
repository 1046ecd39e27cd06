"""The default preset under contention between instances: a claim that keeps losing the unique
index gives up with CONFLICT (a client can retry), never an internal error."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from gql_chat.errors import Conflict
from gql_chat.store import llm_configs
from gql_chat.store.embedded import open_embedded_client
from gql_chat.store.llm_configs import LlmConfigStore


async def test_a_claim_that_always_loses_the_race_answers_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collection: Any = open_embedded_client()["test"]["llm_configs"]
    store = LlmConfigStore(collection)
    await store.create_indexes()
    owner = ObjectId()
    config = await store.insert(owner, {"name": "p", "model": "m"})
    claims = 0

    async def another_instance_wins(*_: Any, **__: Any) -> NoReturn:
        nonlocal claims
        claims += 1
        raise DuplicateKeyError("E11000 duplicate key")

    monkeypatch.setattr(llm_configs, "SET_DEFAULT_ATTEMPTS", 3)
    monkeypatch.setattr(collection, "update_one", another_instance_wins)
    with pytest.raises(Conflict):
        await store.make_default(owner, config.id)
    assert claims == 3
