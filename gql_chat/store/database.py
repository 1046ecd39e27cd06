"""Opening the database: real MongoDB through PyMongo's async API, or the embedded store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    ConnectionFailure,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from gql_chat.config import Settings
from gql_chat.store.analytics import AnalyticsStore
from gql_chat.store.archives import ArchiveStore
from gql_chat.store.attachments import AttachmentStore
from gql_chat.store.audit_log import AuditLogStore
from gql_chat.store.conversations import ConversationStore
from gql_chat.store.email_tokens import EmailTokenStore
from gql_chat.store.embedded import open_embedded_client
from gql_chat.store.folders import FolderStore
from gql_chat.store.identities import IdentityStore
from gql_chat.store.jobs import JobStore
from gql_chat.store.llm_configs import LlmConfigStore
from gql_chat.store.logins import LoginStore
from gql_chat.store.messages import MessageStore
from gql_chat.store.refresh_tokens import RefreshTokenStore
from gql_chat.store.shares import ShareStore
from gql_chat.store.sign_in_flows import SignInFlowStore
from gql_chat.store.spending import SpendingStore
from gql_chat.store.usage import UsageStore
from gql_chat.store.users import UserStore

logger = logging.getLogger(__name__)

AUTHENTICATION_FAILED = 18
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure, ExecutionTimeout, WTimeoutError)
"""The driver's errors that mean the database is unreachable or too slow for now (not a bug):
the api answers them as retryable, with one log line each."""


class DatabaseUnavailable(Exception):
    """MongoDB cannot be used. The message is one line that names the hosts; it never carries
    the URL (credentials) or the driver's own message."""


@dataclass
class Database:
    """The open client and one repository per collection."""

    client: Any
    db: AsyncDatabase[dict[str, Any]]
    embedded: bool
    users: UserStore
    refresh_tokens: RefreshTokenStore
    folders: FolderStore
    conversations: ConversationStore
    llm_configs: LlmConfigStore
    messages: MessageStore
    usage: UsageStore  # over the messages collection
    attachments: AttachmentStore
    shares: ShareStore
    jobs: JobStore
    archives: ArchiveStore
    logins: LoginStore
    email_tokens: EmailTokenStore
    identities: IdentityStore
    sign_in_flows: SignInFlowStore
    spending: SpendingStore
    audit_log: AuditLogStore
    analytics: AnalyticsStore  # over messages, users and conversations

    @classmethod
    def over(cls, client: Any, db_name: str, *, embedded: bool) -> Database:
        db = client[db_name]
        return cls(
            client=client,
            db=db,
            embedded=embedded,
            users=UserStore(db["users"]),
            refresh_tokens=RefreshTokenStore(db["refresh_tokens"]),
            folders=FolderStore(db["folders"]),
            conversations=ConversationStore(db["conversations"]),
            llm_configs=LlmConfigStore(db["llm_configs"]),
            messages=MessageStore(db["messages"]),
            usage=UsageStore(db["messages"], db["deleted_replies"]),
            attachments=AttachmentStore(db),
            shares=ShareStore(db),
            jobs=JobStore(db["jobs"]),
            archives=ArchiveStore(db),
            logins=LoginStore(db["logins"]),
            email_tokens=EmailTokenStore(db["email_tokens"]),
            identities=IdentityStore(db["identities"]),
            sign_in_flows=SignInFlowStore(db["sign_in_flows"]),
            spending=SpendingStore(db["spending"]),
            audit_log=AuditLogStore(db["audit_log"]),
            analytics=AnalyticsStore(
                db["messages"], db["users"], db["conversations"], aside=embedded
            ),
        )

    async def create_indexes(self) -> None:
        """Idempotent: MongoDB ignores an index that already exists with the same spec."""
        for store in (
            self.users,
            self.refresh_tokens,
            self.folders,
            self.conversations,
            self.llm_configs,
            self.messages,
            self.attachments,
            self.usage,
            self.shares,
            self.jobs,
            self.logins,
            self.email_tokens,
            self.identities,
            self.sign_in_flows,
            self.spending,
            self.audit_log,
            self.archives,
        ):
            await store.create_indexes()

    async def delete_user_and_owned_data(self, user_id: ObjectId) -> None:
        """Owned data first, the user last: a retry after a failure halfway finishes the job."""
        await self.refresh_tokens.delete_for_user(user_id)
        await self.logins.delete_for_user(user_id)
        await self.email_tokens.delete_for_user(user_id)
        await self.identities.delete_for_user(user_id)
        await self.shares.delete_for_owner(user_id)
        await self.archives.delete_for_owner(user_id)
        await self.jobs.delete_for_owner(user_id)
        await self.messages.delete_for_owner(user_id)
        await self.conversations.delete_for_owner(user_id)
        await self.folders.delete_for_owner(user_id)
        await self.llm_configs.delete_for_owner(user_id)
        await self.attachments.delete_for_owner(user_id)
        await self.usage.delete_for_owner(user_id)
        await self.spending.delete_for_owner(user_id)
        await self.users.delete(user_id)

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
        except Exception:
            logger.warning("database ping failed", exc_info=True)
            return False
        return True

    async def check(self) -> None:
        """Start-up check: one ping, within the URL's `serverSelectionTimeoutMS` (PyMongo's
        default: 30 s). Raises `DatabaseUnavailable`."""
        try:
            await self.db.command("ping")
        except OperationFailure as exc:
            if exc.code == AUTHENTICATION_FAILED:
                raise DatabaseUnavailable(
                    f"MongoDB at {self.hosts()} refused the credentials in GQL_CHAT_MONGODB_URL"
                ) from None
            raise DatabaseUnavailable(
                f"MongoDB at {self.hosts()} refused the start-up ping (error code {exc.code})"
            ) from None
        except PyMongoError:
            raise DatabaseUnavailable(f"cannot reach MongoDB at {self.hosts()}") from None

    def hosts(self) -> str:
        """The servers the client knows of, as `host:port` (no credentials)."""
        if self.embedded:
            return "the embedded store"
        addresses = [
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for host, port in self.client.topology_description.server_descriptions()
        ]
        return ", ".join(addresses) or "the configured hosts"

    async def close(self) -> None:
        if not self.embedded:
            await self.client.close()


def open_database(settings: Settings, embedded_client: Any | None = None) -> Database:
    """Connect lazily (PyMongo connects on first use).

    `embedded_client` lets two app instances share one in-memory store."""
    if settings.mongodb_url is not None:
        try:
            client: Any = AsyncMongoClient(
                settings.mongodb_url.get_secret_value(), tz_aware=True, appname="gql_chat"
            )
        except (PyMongoError, ValueError):  # the driver's message may quote the URL
            raise DatabaseUnavailable(
                "GQL_CHAT_MONGODB_URL is not a valid MongoDB URL (mongodb://[user:password@]"
                "host[:port]/..., with special characters in the user and password escaped)"
            ) from None
        return Database.over(client, settings.mongodb_db, embedded=False)
    logger.warning(
        "GQL_CHAT_MONGODB_URL is not set: using the embedded in-memory store; data is not kept "
        "across restarts"
    )
    client = embedded_client if embedded_client is not None else open_embedded_client()
    return Database.over(client, settings.mongodb_db, embedded=True)
