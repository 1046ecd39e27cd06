"""argon2id hashing, always off the event loop (a verify costs tens of milliseconds of CPU)."""

from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gql_chat.config import Settings


class PasswordService:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._dummy_hash: str | None = None
        # argon2 is all CPU: leave a core to the event loop, or a login burst starves every
        # other request (measured: `me` p99 64 ms during a burst with unbounded hashing).
        self._slots = asyncio.Semaphore(max(1, (os.cpu_count() or 2) - 1))

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """False for an account without a password, at the cost of a wrong one."""
        if password_hash is None:
            await self.burn_equivalent_work(password)
            return False
        async with self._slots:
            return await asyncio.to_thread(self._verify_sync, password_hash, password)

    async def burn_equivalent_work(self, password: str) -> None:
        """Verify against a dummy hash so an unknown email costs what a wrong password costs."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("dummy password for timing equalisation")
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
