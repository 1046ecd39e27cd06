"""The schema: every domain's Query, Mutation and Subscription parts merged into one."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions import MaxTokensLimiter, ParserCache, ValidationCache
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from gql_chat.api.accounts import AccountMutation, AccountQuery
from gql_chat.api.admin import AdminMutation, AdminQuery
from gql_chat.api.conversations import ConversationMutation, ConversationQuery
from gql_chat.api.document_limits import document_limits
from gql_chat.api.errors import GqlChatSchema, MaskInternalErrors
from gql_chat.api.events import EventSubscription
from gql_chat.api.folders import FolderMutation, FolderQuery
from gql_chat.api.llm_configs import LlmConfigMutation, LlmConfigQuery
from gql_chat.api.messages import MessageMutation, MessageQuery, MessageSubscription
from gql_chat.api.operation_log import OperationLog
from gql_chat.api.reports import ReportQuery
from gql_chat.api.threads import ThreadMutation
from gql_chat.config import Settings


@strawberry.type
class Query(
    AccountQuery,
    FolderQuery,
    ConversationQuery,
    LlmConfigQuery,
    MessageQuery,
    ReportQuery,
    AdminQuery,
):
    pass


@strawberry.type
class Mutation(
    AccountMutation,
    FolderMutation,
    ConversationMutation,
    LlmConfigMutation,
    MessageMutation,
    ThreadMutation,
    AdminMutation,
):
    pass


@strawberry.type
class Subscription(MessageSubscription, EventSubscription):
    pass


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """Limits, caches and masking as extension factories (fresh per operation, never shared)."""
    settings = settings or Settings.model_construct()  # defaults, without reading the environment
    extensions: list[Any] = [
        OperationLog,
        MaskInternalErrors,
        document_limits(
            settings.max_query_depth, settings.max_aliases, not settings.introspection_enabled
        ),
        lambda: MaxTokensLimiter(max_token_count=settings.max_tokens),
        lambda: ParserCache(maxsize=512),
        lambda: ValidationCache(maxsize=512),
    ]
    return GqlChatSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(disable_field_suggestions=not settings.introspection_enabled),
    )


def schema_sdl() -> str:
    return print_schema(build_schema()) + "\n"
