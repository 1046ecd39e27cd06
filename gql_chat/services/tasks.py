"""Ending background tasks at shutdown, with a bound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger(__name__)

CANCEL_ROUNDS = 3
"""How many times a task that goes on after being cancelled is cancelled again."""


async def end_tasks(tasks: Iterable[asyncio.Task[Any]], what: str, wait: float = 1.0) -> None:
    """Cancel until they end, for at most `CANCEL_ROUNDS` rounds of `wait` seconds. One
    cancellation is not always enough: one that lands inside PyMongo's async network read can
    be absorbed there, and a background loop then goes on to its next sleep, holding the
    shutdown for ever (seen once in CI: an archive sweep on a MongoDB server). Their failures
    were logged where they happened; they are taken here so asyncio does not report them.
    `tasks` is copied at once: a set the tasks remove themselves from may be passed."""
    tasks = list(tasks)
    pending = {task for task in tasks if not task.done()}
    for _ in range(CANCEL_ROUNDS):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()
    if pending:
        logger.warning("%d %s did not end when cancelled", len(pending), what)
