"""The schema: every domain's Query, Mutation and Subscription parts merged into one."""

from __future__ import annotations

import logging

import strawberry
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from gql_chat.api.accounts import AccountMutation, AccountQuery
from gql_chat.api.admin import AdminFeedbackQuery, AdminMutation, AdminQuery
from gql_chat.api.analytics import AnalyticsQuery
from gql_chat.api.attachments import AttachmentMutation
from gql_chat.api.audit import AuditQuery
from gql_chat.api.branching import BranchMutation
from gql_chat.api.conversations import ConversationMutation, ConversationQuery
from gql_chat.api.documents import DocumentChecks
from gql_chat.api.events import EventSubscription
from gql_chat.api.exports import ExportMutation, ExportQuery
from gql_chat.api.folders import FolderMutation, FolderQuery
from gql_chat.api.gql_schema import GqlChatSchema
from gql_chat.api.identities import IdentityMutation, IdentityQuery
from gql_chat.api.imports import ImportMutation, ImportQuery
from gql_chat.api.llm_configs import LlmConfigMutation, LlmConfigQuery
from gql_chat.api.messages import MessageMutation, MessageQuery, MessageSubscription
from gql_chat.api.operation_log import log_operation
from gql_chat.api.reports import ReportQuery
from gql_chat.api.scalars import SCALAR_OVERRIDES
from gql_chat.api.search import SearchQuery
from gql_chat.api.shares import ShareMutation, ShareQuery
from gql_chat.config import Settings
from gql_chat.platform.graphql_executor import EventScopedExecutor


@strawberry.type
class Query(
    AccountQuery,
    IdentityQuery,
    FolderQuery,
    ConversationQuery,
    LlmConfigQuery,
    MessageQuery,
    ReportQuery,
    SearchQuery,
    AdminQuery,
    AdminFeedbackQuery,
    AuditQuery,
    AnalyticsQuery,
    ShareQuery,
    ImportQuery,
    ExportQuery,
):
    pass


@strawberry.type
class Mutation(
    AccountMutation,
    IdentityMutation,
    FolderMutation,
    ConversationMutation,
    LlmConfigMutation,
    MessageMutation,
    BranchMutation,
    AttachmentMutation,
    ShareMutation,
    ImportMutation,
    ExportMutation,
    AdminMutation,
):
    pass


@strawberry.type
class Subscription(MessageSubscription, EventSubscription):
    pass


def build_schema(
    settings: Settings | None = None, transient_errors: tuple[type[Exception], ...] = ()
) -> strawberry.Schema:
    """No schema extensions: each would cost every request (`platform/strawberry_execute.py`);
    the document checks and the operation log are the schema's stages.
    `transient_errors`: the store's errors that mean "unavailable for now" (`GqlChatSchema`)."""
    settings = settings or Settings.model_construct()  # defaults, without reading the environment
    documents = DocumentChecks(
        max_tokens=settings.max_tokens,
        max_depth=settings.max_query_depth,
        max_aliases=settings.max_aliases,
        max_fragment_spreads=settings.max_fragment_spreads,
        forbid_introspection=not settings.introspection_enabled,
    )
    log_info = logging.getLevelNamesMapping()[settings.log_level] <= logging.INFO
    return GqlChatSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        stages=documents,
        finished=log_operation if log_info else None,
        execution_context_class=EventScopedExecutor,
        config=StrawberryConfig(disable_field_suggestions=not settings.introspection_enabled),
        scalar_overrides=SCALAR_OVERRIDES,
        transient_errors=transient_errors,
    )


def schema_sdl() -> str:
    return print_schema(build_schema()) + "\n"
