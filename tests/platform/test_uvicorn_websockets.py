"""The leaner websocket protocol's stand-ins behave as the asyncio objects uvicorn used: messages
come out in order to a waiting reader, and sends wait while the transport is paused."""

from __future__ import annotations

import asyncio

import pytest

from gql_chat.platform import uvicorn_websockets
from gql_chat.platform.lean_asyncio import LeanEvent, LeanQueue
from gql_chat.platform.versions import UnsupportedVersion


async def test_a_waiting_reader_gets_every_message_in_order() -> None:
    queue: LeanQueue[int] = LeanQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    for item in range(3):
        queue.put_nowait(item)
    assert await reader == 0
    assert [await queue.get(), await queue.get()] == [1, 2]
    assert queue.empty()
    assert queue.qsize() == 0


async def test_a_cancelled_read_loses_no_message() -> None:
    queue: LeanQueue[str] = LeanQueue()
    reader = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    reader.cancel()
    queue.put_nowait("kept")
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert await queue.get() == "kept"


async def test_sends_wait_while_the_transport_is_paused() -> None:
    writable = LeanEvent()
    await asyncio.wait_for(writable.wait(), 0.1)  # set from the start
    writable.clear()
    waiting = asyncio.ensure_future(writable.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    writable.set()
    await asyncio.wait_for(waiting, 0.1)
    assert writable.is_set()


def test_an_unchecked_uvicorn_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("uvicorn.__version__", "0.99.0")
    with pytest.raises(UnsupportedVersion):
        uvicorn_websockets.websocket_protocol()
