"""A user's folder-tree lock: an asyncio lock for this process's requests (no polling), then a
lease document in `folder_locks` for other app instances' requests (see `services/folders.py`
for why a lease and not a transaction)."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from bson import ObjectId

from gql_chat.errors import Conflict
from gql_chat.services.keyed_lock import KeyedLock
from gql_chat.store.folders import FolderStore

logger = logging.getLogger(__name__)

LOCK_LEASE = timedelta(seconds=30)
"""How long a tree lease lasts: far longer than any tree change takes. A crashed holder's lease
blocks that user's folder changes (CONFLICT) until it runs out."""
LOCK_WAIT = 10.0
"""How long a change waits for the tree lock before it answers CONFLICT."""


class TreeLock:
    def __init__(
        self, folders: FolderStore, *, lease: timedelta = LOCK_LEASE, wait: float = LOCK_WAIT
    ) -> None:
        self._folders = folders
        self._lease = lease
        self._wait = wait
        self._local = KeyedLock()

    @asynccontextmanager
    async def __call__(self, owner_id: ObjectId) -> AsyncIterator[None]:
        """Hold the owner's tree lock, or raise `Conflict` after waiting `wait` seconds."""
        async with self._local(owner_id):
            holder = uuid.uuid4().hex
            await self._acquire_lease(owner_id, holder)
            try:
                yield
            finally:
                await self._release_lease(owner_id, holder)

    async def _acquire_lease(self, owner_id: ObjectId, holder: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait
        delay = 0.005
        while not await self._folders.try_lock(owner_id, holder, self._lease):
            if loop.time() >= deadline:
                raise Conflict("Your folders are being changed elsewhere; try again.")
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter only
            delay = min(delay * 2, 0.1)

    async def _release_lease(self, owner_id: ObjectId, holder: str) -> None:
        """A failed release must not hide the request's own outcome: the lease runs out."""
        try:
            await self._folders.unlock(owner_id, holder)
        except Exception:
            logger.warning("releasing a folder tree lease failed", exc_info=True)
