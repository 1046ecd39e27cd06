"""The schema: every domain's Query, Mutation and Subscription parts merged into one."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.printer import print_schema

from gql_chat.api.accounts import AccountMutation, AccountQuery
from gql_chat.api.admin import AdminMutation, AdminQuery
from gql_chat.api.conversations import ConversationMutation, ConversationQuery
from gql_chat.api.errors import GqlChatSchema, MaskInternalErrors
from gql_chat.api.events import EventSubscription
from gql_chat.api.folders import FolderMutation, FolderQuery
from gql_chat.api.llm_configs import LlmConfigMutation, LlmConfigQuery
from gql_chat.api.messages import MessageMutation, MessageQuery, MessageSubscription
from gql_chat.api.reports import ReportQuery
from gql_chat.api.threads import ThreadMutation


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


def build_schema() -> strawberry.Schema:
    return GqlChatSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=[
            MaskInternalErrors,
            lambda: ParserCache(maxsize=512),
            lambda: ValidationCache(maxsize=512),
        ],
    )


def schema_sdl() -> str:
    return print_schema(build_schema()) + "\n"
