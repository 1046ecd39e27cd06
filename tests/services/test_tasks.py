"""`end_tasks` ends background tasks at shutdown, even one that absorbs a cancellation, and
never waits longer than its bound."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gql_chat.services import tasks
from gql_chat.services.tasks import end_tasks


async def test_a_task_that_absorbs_one_cancellation_is_cancelled_again() -> None:
    """As PyMongo's network read can: the loop goes on to its next sleep."""
    absorbed = 0

    async def sweep_forever() -> None:
        nonlocal absorbed
        while True:
            try:
                await asyncio.sleep(3600)  # a read that absorbs the first cancellation
            except asyncio.CancelledError:
                if absorbed:
                    raise
                absorbed += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(sweep_forever())
    await asyncio.sleep(0)
    await asyncio.wait_for(end_tasks([task], "sweeps", wait=0.1), 5)
    assert task.cancelled()
    assert absorbed == 1


async def test_a_task_that_never_ends_is_given_up_on_within_the_bound(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tasks, "CANCEL_ROUNDS", 2)
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.WARNING, logger="gql_chat.services.tasks"):
        await end_tasks([task], "stubborn tasks", wait=0.05)
    assert loop.time() - started < 1
    assert "1 stubborn tasks did not end when cancelled" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait([task])


async def test_failed_and_finished_tasks_are_taken_quietly() -> None:
    async def fails() -> None:
        raise ValueError("logged where it happened")

    failed = asyncio.create_task(fails())
    finished = asyncio.create_task(asyncio.sleep(0))
    await asyncio.wait([failed, finished])
    await end_tasks([failed, finished], "tasks")
    assert failed._log_traceback is False
