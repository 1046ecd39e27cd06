"""Sending in the background: an operation queues its mail and goes on (it never fails because
of mail); one task sends, retrying a failed send a few times before logging it. Neither a
mail's address nor its link is ever logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gql_chat.mail.messages import Mail
from gql_chat.mail.transports import MailTransport

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 1_000
ATTEMPTS = 4
BACKOFF = 2.0
"""Seconds before the second attempt, doubling after each."""


class Mailer:
    def __init__(self, transport: MailTransport | None, sender: str) -> None:
        self._transport = transport
        self._sender = sender
        self._queue: asyncio.Queue[Mail] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        """Whether mail can be sent at all (in production, only with SMTP)."""
        return self._transport is not None

    def start(self) -> None:
        if self._transport is not None:
            self._task = asyncio.create_task(self._send_forever(), name="mailer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def queue(self, mail: Mail) -> None:
        """Never blocks, never raises: a full queue drops the mail (and says so)."""
        if self._transport is None:
            return
        try:
            self._queue.put_nowait(mail)
        except asyncio.QueueFull:
            logger.error("the mail queue is full; a %r mail was dropped", mail.subject)

    async def _send_forever(self) -> None:
        while True:
            mail = await self._queue.get()
            await self._send(mail)

    async def _send(self, mail: Mail) -> None:
        assert self._transport is not None
        message = mail.message(self._sender)
        for attempt in range(ATTEMPTS):
            try:
                await self._transport.send(message)
                return
            except Exception as exc:
                if attempt + 1 == ATTEMPTS:
                    logger.error(
                        "a %r mail could not be sent (%s)", mail.subject, type(exc).__name__
                    )
                    return
            await asyncio.sleep(BACKOFF * 2**attempt)
