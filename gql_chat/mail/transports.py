"""How a mail leaves: over SMTP (`GQL_CHAT_SMTP_URL`), or as an `.eml` file in the outbox
directory while developing (`GQL_CHAT_MAIL_OUTBOX`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

SMTP_TIMEOUT = 20.0


class MailTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Raises on failure (the mailer retries)."""


@dataclass(frozen=True, slots=True)
class SmtpTransport:
    """`smtp://user:pass@host:587` (STARTTLS when the server offers it) or
    `smtps://user:pass@host:465` (TLS from the start)."""

    url: str

    async def send(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        implicit_tls = parts.scheme == "smtps"
        await aiosmtplib.send(
            message,
            hostname=parts.hostname or "localhost",
            port=parts.port or (465 if implicit_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit_tls,
            start_tls=None if not implicit_tls else False,
            timeout=SMTP_TIMEOUT,
        )


@dataclass(frozen=True, slots=True)
class OutboxTransport:
    """Each mail as a file, `<time>-<id>.eml`, for a developer to open."""

    directory: Path

    async def send(self, message: EmailMessage) -> None:
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(self._write, name, message.as_bytes())

    def _write(self, name: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / name).write_bytes(data)
