"""`Services`: what one app instance runs, as the api sees it. Built once by `gql_chat.wiring`
(the composition root, which knows every layer); the api imports this, never the wiring."""

from __future__ import annotations

from dataclasses import dataclass

from gql_chat.config import Settings
from gql_chat.mail.mailer import Mailer
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
from gql_chat.services.folders import FolderService
from gql_chat.services.following import ReplyFollower
from gql_chat.services.forks import ForkService
from gql_chat.services.generation import GenerationRunner
from gql_chat.services.imports import ImportService
from gql_chat.services.llm_configs import LlmConfigService
from gql_chat.services.messages import MessageService
from gql_chat.services.model_access import ModelAccess
from gql_chat.services.prompts import PromptService
from gql_chat.services.rate_limits import RateLimits
from gql_chat.services.reply_leases import ReplyLeases
from gql_chat.services.reply_slots import SharedReplySlots
from gql_chat.services.reports import ReportService
from gql_chat.services.search import SearchService
from gql_chat.services.sending import SendService
from gql_chat.services.shares import ShareService
from gql_chat.services.sign_ins import SignInChanges
from gql_chat.services.single_sign_on import SingleSignOn
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEventBus


@dataclass
class Services:
    settings: Settings
    # The app's readiness check pings it; the api reads and writes through the services only.
    database: Database
    accounts: AccountService
    folders: FolderService
    conversations: ConversationService
    presets: LlmConfigService
    admin: AdminService
    audit: AuditLog
    analytics: AnalyticsService
    prompts: PromptService
    sending: SendService
    branching: BranchService
    continuation: ContinuationService
    attachments: AttachmentService
    forks: ForkService
    search: SearchService
    shares: ShareService
    imports: ImportService
    email_accounts: EmailAccountService
    budgets: BudgetService
    model_access: ModelAccess
    single_sign_on: SingleSignOn
    mailer: Mailer
    exports: ExportService
    messages: MessageService
    following: ReplyFollower
    runner: GenerationRunner
    cluster: Cluster
    leases: ReplyLeases | None  # with several instances
    reply_slots: SharedReplySlots | None  # with several instances
    reports: ReportService
    events: UserEventBus
    sign_ins: SignInChanges  # the api's open websockets listen
    rate_limits: RateLimits
