"""The services one app instance runs, built once in the lifespan."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from gql_chat.config import Settings
from gql_chat.services.accounts import AccountService
from gql_chat.services.admin import AdminService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.folders import FolderService
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.passwords import PasswordService
from gql_chat.services.tokens import TokenService
from gql_chat.store.database import Database

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    database: Database
    accounts: AccountService
    folders: FolderService
    conversations: ConversationService
    presets: LlmConfigService
    admin: AdminService


def jwt_secret_for(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    logger.warning(
        "GQL_CHAT_JWT_SECRET is not set: using a random per-process secret; "
        "tokens die with the process"
    )
    return secrets.token_urlsafe(48)


def build_services(settings: Settings, database: Database) -> Services:
    tokens = TokenService(settings, jwt_secret_for(settings))
    passwords = PasswordService(settings)
    folders = FolderService(database)
    presets = LlmConfigService(database)
    return Services(
        settings=settings,
        database=database,
        accounts=AccountService(database, passwords, tokens),
        folders=folders,
        conversations=ConversationService(database, folders, presets),
        presets=presets,
        admin=AdminService(database),
    )
