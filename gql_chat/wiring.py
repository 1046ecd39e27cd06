"""The composition root: the services one app instance runs, built once in the lifespan.

The only module that knows every layer (store, llm, streams, services) and how they fit; the
app hands the result to the api, which sees services only."""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlsplit

import httpx

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRecord
from gql_chat.llm.offline import OfflineProvider
from gql_chat.llm.openrouter import OpenRouterProvider
from gql_chat.llm.types import ChatProvider
from gql_chat.mail.mailer import Mailer
from gql_chat.mail.transports import OutboxTransport, SmtpTransport
from gql_chat.oidc.providers import Providers
from gql_chat.services.accounts import AccountService
from gql_chat.services.admin import AdminService
from gql_chat.services.analytics import AnalyticsService
from gql_chat.services.attachments import AttachmentService
from gql_chat.services.audit import AuditLog
from gql_chat.services.branching import BranchService
from gql_chat.services.budgets import BudgetService
from gql_chat.services.cluster import Cluster
from gql_chat.services.continuation import ContinuationService
from gql_chat.services.conversations import ConversationService
from gql_chat.services.email_accounts import EmailAccountService
from gql_chat.services.exports import ExportService
from gql_chat.services.file_urls import FileUrls
from gql_chat.services.folders import FolderService
from gql_chat.services.following import ReplyFollower
from gql_chat.services.forks import ForkService
from gql_chat.services.generation import GenerationRunner
from gql_chat.services.imports import ImportService
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.messages import MessageService
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.passwords import PasswordService
from gql_chat.services.prompts import PromptService
from gql_chat.services.rate_limits import RateLimits, open_storage
from gql_chat.services.registry import Services
from gql_chat.services.reply_leases import ReplyLeases
from gql_chat.services.reply_slots import SharedReplySlots
from gql_chat.services.reply_start import ReplyStarter
from gql_chat.services.reports import ReportService
from gql_chat.services.search import SearchService
from gql_chat.services.sending import SendService
from gql_chat.services.shares import ShareService
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.single_sign_on import SingleSignOn
from gql_chat.services.titles import TitleService
from gql_chat.services.tokens import TokenService
from gql_chat.store.database import Database
from gql_chat.streams.replies import ReplyRegistry
from gql_chat.streams.user_events import UserEventBus, UserEventKind

logger = logging.getLogger(__name__)


def jwt_secret_for(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    logger.warning(
        "GQL_CHAT_JWT_SECRET is not set: using a random per-process secret; "
        "tokens die with the process"
    )
    return secrets.token_urlsafe(48)


def build_provider(settings: Settings, http_client: httpx.AsyncClient) -> ChatProvider:
    if settings.uses_offline_model:
        logger.warning(
            "no OpenRouter API key (GQL_CHAT_OPENROUTER_API_KEY or OPENROUTER_API_KEY): replies "
            "come from the built-in offline model 'offline/echo'"
        )
        return OfflineProvider(settings.offline_token_delay)
    return OpenRouterProvider(settings, http_client)


def build_mailer(settings: Settings) -> Mailer:
    """SMTP when configured; else, while developing, `.eml` files in the outbox; in production
    without SMTP, none (the features that need mail are off). The start-up log says which."""
    if settings.smtp_url is not None:
        url = settings.smtp_url.get_secret_value()
        logger.info("mail goes over SMTP to %s", urlsplit(url).hostname)
        return Mailer(SmtpTransport(url), settings.mail_from)
    if settings.is_production:
        logger.warning(
            "GQL_CHAT_SMTP_URL is not set: mail is off (no email verification, no password reset)"
        )
        return Mailer(None, settings.mail_from)
    outbox = settings.mail_outbox.resolve()
    logger.warning("GQL_CHAT_SMTP_URL is not set: mail is written to %s as .eml files", outbox)
    return Mailer(OutboxTransport(outbox), settings.mail_from)


def build_services(
    settings: Settings, database: Database, http_client: httpx.AsyncClient
) -> Services:
    provider = build_provider(settings, http_client)
    cluster = Cluster(settings)
    registry: ReplyRegistry[MessageRecord] = ReplyRegistry(mirror=cluster.reply_streams)
    runner = GenerationRunner(settings, database.messages, provider, registry)
    rate_limits = RateLimits(settings, open_storage(settings))
    events = UserEventBus(relay=cluster.relay_event if cluster.shared else None)
    sign_ins = SignInChanges(relay=cluster.relay_sign_ins_ended if cluster.shared else None)
    cluster.attach(events, runner, sign_ins)
    folders = FolderService(
        database,
        events,
        max_folders=settings.max_folders_per_user,
        on_deleting_conversations=cluster.removing_conversations,
    )
    model_access = ModelAccess(settings)
    presets = LlmConfigService(database, events, model_access, settings.max_presets_per_user)
    conversations = ConversationService(
        database, folders, presets, events, on_deleting=cluster.removing_conversations
    )
    titles = TitleService(settings, database, provider, conversations, model_access)

    async def announce_completion(reply: MessageRecord) -> None:
        conversations.publish(
            reply.owner_id, UserEventKind.MESSAGE_COMPLETED, reply.conversation_id, reply.id
        )

    budgets = BudgetService(settings, database, provider.list_models)
    runner.settle = budgets.settle
    runner.on_finished += [announce_completion, titles.after_reply]
    jwt_secret = jwt_secret_for(settings)
    file_urls = FileUrls(jwt_secret, settings.file_url_ttl)
    attachments = AttachmentService(settings, database, file_urls)
    reports = ReportService(database, conversations)
    audit = AuditLog(settings, database.audit_log)
    accounts = AccountService(
        database,
        PasswordService(settings),
        TokenService(settings, jwt_secret),
        rate_limits,
        sign_ins,
        audit,
        on_user_removed=cluster.removing_owner,
        presets=presets,
        events=events,
    )
    mailer = build_mailer(settings)
    email_accounts = EmailAccountService(settings, database, accounts, mailer, rate_limits, audit)
    prompts = PromptService(settings, presets, provider)
    messages = MessageService(database, runner, cluster)
    reply_slots = (
        SharedReplySlots.connect(
            settings.redis_url.get_secret_value(), settings.mongodb_db, settings.reply_lease
        )
        if settings.redis_url is not None
        else None
    )
    starter = ReplyStarter(
        settings,
        database,
        accounts,
        conversations,
        prompts,
        attachments,
        runner,
        rate_limits,
        budgets,
        model_access,
        reply_slots,
    )
    return Services(
        settings=settings,
        database=database,
        accounts=accounts,
        folders=folders,
        conversations=conversations,
        presets=presets,
        budgets=budgets,
        model_access=model_access,
        admin=AdminService(database, sign_ins, audit, on_user_disabled=cluster.removing_owner),
        audit=audit,
        analytics=AnalyticsService(database),
        prompts=prompts,
        sending=SendService(database, conversations, prompts, attachments, starter),
        branching=BranchService(
            conversations, messages, prompts, attachments, starter, database, runner
        ),
        continuation=ContinuationService(conversations, messages, starter),
        attachments=attachments,
        forks=ForkService(settings, database, conversations, messages),
        search=SearchService(database),
        shares=ShareService(database, conversations, attachments, file_urls, rate_limits, audit),
        imports=ImportService(settings, database, events, attachments),
        email_accounts=email_accounts,
        single_sign_on=SingleSignOn(
            database,
            accounts,
            email_accounts,
            Providers(settings.oidc_providers),
            rate_limits,
            audit,
        ),
        mailer=mailer,
        exports=ExportService(settings, database, reports, file_urls),
        messages=messages,
        following=ReplyFollower(settings, messages, registry, cluster.reply_streams),
        runner=runner,
        cluster=cluster,
        leases=(
            ReplyLeases(settings, database.messages, runner, cluster.reply_streams)
            if cluster.shared
            else None
        ),
        reply_slots=reply_slots,
        reports=reports,
        events=events,
        sign_ins=sign_ins,
        rate_limits=rate_limits,
    )
