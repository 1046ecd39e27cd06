"""Account deletion's hook, without HTTP: stopping a user's replies is idempotent, so entering it
twice is invisible through the public API; only counting the entries shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bson import ObjectId
from limits.aio.storage import MemoryStorage

from gql_chat.config import Settings
from gql_chat.services.accounts import AccountService
from gql_chat.services.passwords import PasswordService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.tokens import TokenService
from gql_chat.store.database import Database
from gql_chat.store.embedded import open_embedded_client

PASSWORD = "a long enough password"
SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123"


async def test_deleting_an_account_runs_the_user_removed_hook_once(settings: Settings) -> None:
    removed: list[ObjectId] = []

    @asynccontextmanager
    async def on_user_removed(user_id: ObjectId) -> AsyncIterator[None]:
        removed.append(user_id)
        yield

    database = Database.over(open_embedded_client(), settings.mongodb_db, embedded=True)
    await database.create_indexes()
    accounts = AccountService(
        database,
        PasswordService(settings),
        TokenService(settings, SECRET),
        RateLimits(settings, MemoryStorage()),
        SignInChanges(),
        on_user_removed=on_user_removed,
    )
    session = await accounts.register("removed@example.com", PASSWORD, None, "127.0.0.1")

    await accounts.delete_account(session.user, PASSWORD)

    assert removed == [session.user.id]
    assert await database.users.get(session.user.id) is None
