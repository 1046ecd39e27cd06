"""A database too slow for a send's bounded writes: the client gets a retryable error, the log
one line (not a traceback per send, which flooded the log when 1,000 sends hit a slow server),
and nothing is left half-done: no conversation, no message, and the user's reply slot is free."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from starlette.applications import Starlette

from gql_chat.api.errors import TIMED_OUT_MESSAGE
from gql_chat.domain.messages import MessageRecord
from gql_chat.services import reply_start
from tests.support import SEND, SignedIn, send_message


async def test_a_send_whose_writes_time_out_answers_a_retryable_error(
    app: Starlette,
    alice: SignedIn,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = app.state.services.database.messages
    add = store.add

    async def slow_add(message: MessageRecord) -> None:
        await asyncio.sleep(0.3)
        await add(message)

    monkeypatch.setattr(reply_start, "WRITE_TIMEOUT", 0.05)
    monkeypatch.setattr(store, "add", slow_add)
    with caplog.at_level(logging.WARNING):
        result = await alice.execute(SEND, {"input": {"content": "Hello"}})
    assert result.data is None
    (error,) = result.errors
    assert error["message"] == TIMED_OUT_MESSAGE
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "retryAfter": 1}
    records = [r for r in caplog.records if r.name == "gql_chat.api"]
    assert [r.getMessage() for r in records] == ["sendMessage timed out"]
    assert records[0].exc_info is None

    monkeypatch.setattr(store, "add", add)
    # The conversation the send opened is gone again, and with it anything it wrote.
    database = app.state.services.database.db
    conversations: list[dict[str, Any]] = await database["conversations"].find({}).to_list(None)
    messages: list[dict[str, Any]] = await database["messages"].find({}).to_list(None)
    assert (conversations, messages) == ([], [])
    # Every reply slot is free again: three sends at once are admitted.
    await asyncio.gather(*(send_message(alice, f"again {i}") for i in range(3)))
