"""Account services without HTTP, where the public API cannot see what matters: stopping a
user's replies is idempotent, so entering the deletion hook twice is invisible; and the news that
sign-ins ended (which makes every open socket of the user check itself again) must be sent only
when something ended, or one account's repeated logouts become a storm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bson import ObjectId
from limits.aio.storage import MemoryStorage

from gql_chat.config import Settings
from gql_chat.services.accounts import AccountService, UserHook
from gql_chat.services.audit import AuditLog
from gql_chat.services.passwords import PasswordService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.tokens import TokenService
from gql_chat.store.database import Database
from gql_chat.store.embedded import open_embedded_client

PASSWORD = "a long enough password"
SECRET = "a-test-secret-that-is-long-enough-for-hs256-0123"


async def accounts_over(
    settings: Settings, sign_ins: SignInChanges, on_user_removed: UserHook | None = None
) -> tuple[AccountService, Database]:
    database = Database.over(open_embedded_client(), settings.mongodb_db, embedded=True)
    await database.create_indexes()
    accounts = AccountService(
        database,
        PasswordService(settings),
        TokenService(settings, SECRET),
        RateLimits(settings, MemoryStorage()),
        sign_ins,
        AuditLog(settings, database.audit_log),
        on_user_removed=on_user_removed,
    )
    return accounts, database


async def test_sign_in_news_is_sent_only_when_a_sign_in_ended(settings: Settings) -> None:
    heard: list[ObjectId] = []
    sign_ins = SignInChanges()
    sign_ins.listen(heard.append)
    accounts, _ = await accounts_over(settings, sign_ins)
    first = await accounts.register("news@example.com", PASSWORD, None, "127.0.0.1")
    user = first.user

    await accounts.logout(first.refresh.token)
    await accounts.logout(first.refresh.token)  # already ended: nothing to tell
    assert heard == [user.id]

    await accounts.logout_all(user)  # nothing left to end
    second = await accounts.login("news@example.com", PASSWORD, "127.0.0.1")
    await accounts.change_password(user, PASSWORD, "another long password", second.family_id)
    assert heard == [user.id]  # the caller's own sign-in is kept: nothing else ended

    await accounts.login("news@example.com", "another long password", "127.0.0.1")
    await accounts.logout_all(user)
    assert heard == [user.id, user.id]


async def test_deleting_an_account_runs_the_user_removed_hook_once(settings: Settings) -> None:
    removed: list[ObjectId] = []

    @asynccontextmanager
    async def on_user_removed(user_id: ObjectId) -> AsyncIterator[None]:
        removed.append(user_id)
        yield

    accounts, database = await accounts_over(settings, SignInChanges(), on_user_removed)
    session = await accounts.register("removed@example.com", PASSWORD, None, "127.0.0.1")

    await accounts.delete_account(await accounts.authenticate(session.access.token), PASSWORD)

    assert removed == [session.user.id]
    assert await database.users.get(session.user.id) is None
