"""Messages and replies: `sendMessage`, `stopGeneration`, `message`, `models`, `messageStream`."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry
from bson import ObjectId

from gql_chat.api.attachments import AttachmentType
from gql_chat.api.context import Info, response_budget
from gql_chat.api.conversations import ConversationType
from gql_chat.api.llm_configs import ReasoningEffort
from gql_chat.api.numbers import finite_or_none, saturated
from gql_chat.api.pagination import PageInfo
from gql_chat.api.permissions import IsAuthenticated
from gql_chat.domain.messages import Feedback, MessageRecord, UsageRecord
from gql_chat.domain.messages import FeedbackRating as FeedbackRatingValue
from gql_chat.domain.messages import MessageRole as MessageRoleValue
from gql_chat.domain.messages import MessageStatus as MessageStatusValue
from gql_chat.domain.pages import Page
from gql_chat.errors import BadUserInput
from gql_chat.llm.types import ModelInfo
from gql_chat.services.following import StreamEvent
from gql_chat.services.reply_start import SendResult

MessageRole = strawberry.enum(MessageRoleValue, name="MessageRole")
FeedbackRating = strawberry.enum(
    FeedbackRatingValue, name="FeedbackRating", description="Thumbs up or down on a reply."
)


@strawberry.type(description="What the user said of a reply.")
class MessageFeedback:
    rating: FeedbackRating | None  # type: ignore[valid-type]
    comment: str | None
    updated_at: datetime

    @classmethod
    def of(cls, feedback: Feedback) -> MessageFeedback:
        return cls(rating=feedback.rating, comment=feedback.comment, updated_at=feedback.updated_at)


MessageStatus = strawberry.enum(
    MessageStatusValue,
    name="MessageStatus",
    description=None,
)


@strawberry.type(description="Token counts saturate at 2147483647 (GraphQL's Int is 32 bits).")
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float | None = strawberry.field(
        description=(
            "Cost in USD as reported by the provider (or estimated: costEstimated); null when "
            "unknown."
        )
    )
    reasoning_tokens: int | None = strawberry.field(
        description=(
            "Of the completion tokens, those the model spent reasoning (shown or not); null "
            "when the provider does not say."
        )
    )
    cost_estimated: bool = strawberry.field(
        description=(
            "The provider reported no cost: `cost` is worked out from the model's prices "
            "(`models`)."
        )
    )

    @classmethod
    def of(cls, usage: UsageRecord) -> Usage:
        reasoning = usage.reasoning_tokens
        return cls(
            prompt_tokens=saturated(usage.prompt_tokens),
            completion_tokens=saturated(usage.completion_tokens),
            total_tokens=saturated(usage.total_tokens),
            cost=finite_or_none(usage.cost),
            reasoning_tokens=saturated(reasoning) if reasoning is not None else None,
            cost_estimated=usage.cost_estimated,
        )


@strawberry.type
class MessageError:
    code: str
    message: str


def _content(root: MessageType, info: Info) -> str:
    """Counted against the response budget (`GQL_CHAT_MAX_RESPONSE_BYTES`) each time it is
    resolved: aliases of it, or of the fields above it, would otherwise multiply up to 100 KB
    (a reply up to 500 KB) into responses of hundreds of MB."""
    text = root.record.content
    info.context.charge_text(text)
    return text


def _reasoning(root: MessageType, info: Info) -> str | None:
    """Charged like `content`."""
    text = root.record.reasoning
    info.context.charge_text(text)
    return text or None


@strawberry.type
class MessageTimings:
    first_token_ms: float | None = strawberry.field(
        description="From the start of the reply to its first delta, in milliseconds."
    )
    total_ms: float = strawberry.field(
        description="From the start of the reply to its end, in milliseconds."
    )


@strawberry.type(name="Message")
class MessageType:
    id: strawberry.ID
    conversation_id: strawberry.ID
    role: MessageRole  # type: ignore[valid-type]
    content: str = strawberry.field(resolver=_content)
    reasoning: str | None = strawberry.field(
        resolver=_reasoning,
        description=(
            "The reasoning the model showed before (or while) answering; null when it showed "
            "none. It is never sent back to the model."
        ),
    )
    status: MessageStatus  # type: ignore[valid-type]
    model: str | None = strawberry.field(description="Model that produced an assistant message.")
    parent_id: strawberry.ID | None = strawberry.field(
        description="The message this one answers or follows; null for the first message."
    )
    usage: Usage | None
    error: MessageError | None
    finish_reason: str | None = strawberry.field(
        description=(
            "Why the model stopped, as the provider said (`stop`, `length`, `content_filter`, "
            "…); null for user messages and replies that did not finish normally."
        )
    )
    timings: MessageTimings | None = strawberry.field(
        description="How long a finished reply took; null for user messages and unfinished ones."
    )
    feedback: MessageFeedback | None = strawberry.field(
        description="The user's rating and comment on a reply (`rateMessage`); null when none."
    )
    created_at: datetime
    updated_at: datetime
    record: strawberry.Private[MessageRecord]

    @classmethod
    def from_record(cls, message: MessageRecord) -> MessageType:
        return cls(
            id=strawberry.ID(str(message.id)),
            conversation_id=strawberry.ID(str(message.conversation_id)),
            role=message.role,
            status=message.status,
            model=message.model,
            parent_id=strawberry.ID(str(message.parent_id)) if message.parent_id else None,
            usage=Usage.of(message.usage) if message.usage else None,
            error=(
                MessageError(code=message.error_code, message=message.error_message or "")
                if message.error_code
                else None
            ),
            finish_reason=message.finish_reason,
            timings=(
                MessageTimings(first_token_ms=message.first_token_ms, total_ms=message.total_ms)
                if message.total_ms is not None
                else None
            ),
            feedback=MessageFeedback.of(message.feedback) if message.feedback else None,
            created_at=message.created_at,
            updated_at=message.updated_at,
            record=message,
        )

    @strawberry.field(
        description=(
            "The files a user message carries, in the order sent (an attachment deleted "
            "meanwhile is left out)."
        )
    )
    async def attachments(self, info: Info) -> list[AttachmentType]:
        if not self.record.attachment_ids:
            return []
        loader = (await info.context.loaders()).attachment
        found = await loader.load_many(list(self.record.attachment_ids))
        return [AttachmentType.from_record(a) for a in found if a is not None]

    @strawberry.field(
        description=(
            "Messages sharing this one's parent (edits and regenerations), this one included, "
            "oldest first."
        )
    )
    async def sibling_ids(self, info: Info) -> list[strawberry.ID]:
        nodes = await (await info.context.loaders()).message_nodes.load(self.record.conversation_id)
        return [
            strawberry.ID(str(node.id)) for node in nodes if node.parent_id == self.record.parent_id
        ]


@strawberry.type
class MessageEdge:
    cursor: str
    node: MessageType


@strawberry.type
class MessageConnection:
    edges: list[MessageEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def of(cls, page: Page[MessageRecord]) -> MessageConnection:
        return cls(
            edges=[MessageEdge(cursor=c, node=MessageType.from_record(m)) for c, m in page.items],
            page_info=PageInfo.of(page),
            total_count=page.total_count,
        )


@strawberry.type
class Model:
    id: str = strawberry.field(
        description="Model id to put in LlmConfig.model or SendMessageInput.model."
    )
    name: str
    context_length: int | None
    prompt_price: float | None = strawberry.field(
        description="USD per prompt token; null when unknown."
    )
    completion_price: float | None = strawberry.field(
        description="USD per completion token; null when unknown."
    )
    input_modalities: list[str] = strawberry.field(
        description='What the model reads, e.g. ["text", "image", "file"].'
    )
    supports_reasoning: bool = strawberry.field(
        description="Whether it takes a reasoning effort (LlmConfig.reasoningEffort)."
    )

    @classmethod
    def of(cls, model: ModelInfo) -> Model:
        return cls(
            id=model.id,
            name=model.name,
            context_length=model.context_length,
            prompt_price=model.prompt_price,
            completion_price=model.completion_price,
            input_modalities=list(model.input_modalities),
            supports_reasoning=model.supports_reasoning,
        )


@strawberry.input
class SendMessageInput:
    conversation_id: strawberry.ID | None = strawberry.field(
        default=None, description="Omit to start a new conversation."
    )
    content: str
    llm_config_id: strawberry.ID | None = strawberry.field(
        default=None, description="Overrides the conversation's preset for this reply."
    )
    model: str | None = strawberry.field(
        default=None, description="Overrides the preset's model for this reply."
    )
    reasoning_effort: ReasoningEffort | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Overrides the preset's reasoning effort for this reply."
    )
    client_message_id: str | None = strawberry.field(
        default=None,
        description=(
            "Client-chosen idempotency key: resending the same key returns the first result "
            "and starts nothing new."
        ),
    )
    folder_id: strawberry.ID | None = strawberry.field(
        default=None, description="Folder for a new conversation."
    )
    attachment_ids: list[strawberry.ID] | None = strawberry.field(
        default=None,
        description=(
            "Uploaded attachments to send (at most 10): unsent uploads, or ones already in this "
            "conversation. With files, `content` may be empty."
        ),
    )


@strawberry.type
class SendMessagePayload:
    conversation: ConversationType
    user_message: MessageType
    assistant_message: MessageType = strawberry.field(
        description="Already stored, status PENDING or STREAMING; follow it with messageStream."
    )

    @classmethod
    def of(cls, result: SendResult) -> SendMessagePayload:
        return cls(
            conversation=ConversationType.from_record(result.conversation),
            user_message=MessageType.from_record(result.user_message),
            assistant_message=MessageType.from_record(result.assistant_message),
        )


@strawberry.type
class MessageStreamEvent:
    message_id: strawberry.ID
    seq: int = strawberry.field(
        description=(
            "1-based position of this event's delta in the reply; 0 for an event that carries "
            "no delta."
        )
    )
    delta: str = strawberry.field(
        description=(
            "Answer text appended to the reply by this event; empty for a reasoning event "
            "and for the `done` event."
        )
    )
    reasoning_delta: str = strawberry.field(
        description=(
            "Reasoning text appended to `Message.reasoning` by this event; empty when the "
            "event carries answer text. Reasoning and answer events share one `seq` "
            "numbering. Models that reason without showing it send no reasoning events."
        )
    )
    status: MessageStatus  # type: ignore[valid-type]
    done: bool = strawberry.field(
        description=(
            "True on the last event of the stream; `message` is then the stored final message."
        )
    )
    message: MessageType | None

    @classmethod
    def of(cls, event: StreamEvent) -> MessageStreamEvent:
        return cls(
            message_id=strawberry.ID(str(event.message_id)),
            seq=event.seq,
            delta=event.delta,
            reasoning_delta=event.reasoning_delta,
            status=event.status,
            done=event.done,
            message=MessageType.from_record(event.message) if event.message else None,
        )


@strawberry.type
class MessageQuery:
    @strawberry.field(permission_classes=[IsAuthenticated])
    async def message(self, info: Info, id: strawberry.ID) -> MessageType | None:
        message = await info.context.services.messages.get(await info.context.owner_id(), id)
        return MessageType.from_record(message)

    @strawberry.field(
        description="Models the configured provider offers that this account may use.",
        permission_classes=[IsAuthenticated],
    )
    async def models(self, info: Info) -> list[Model]:
        services = info.context.services
        offered = await services.prompts.list_models()
        visible = services.model_access.visible(await info.context.require_user(), offered)
        return [Model.of(m) for m in visible]


@strawberry.type
class MessageMutation:
    @strawberry.mutation(permission_classes=[IsAuthenticated])
    async def send_message(self, info: Info, input: SendMessageInput) -> SendMessagePayload:
        result = await info.context.services.sending.send_message(
            await info.context.require_user(),
            content=input.content,
            conversation_id=input.conversation_id,
            folder_id=input.folder_id,
            llm_config_id=input.llm_config_id,
            model=input.model,
            reasoning_effort=input.reasoning_effort,
            client_message_id=input.client_message_id,
            attachment_ids=input.attachment_ids or (),
        )
        return SendMessagePayload.of(result)

    @strawberry.mutation(
        description=(
            "Rates a reply (thumbs up or down, and or a comment of at most 2,000 characters), "
            "replacing any earlier rating; null for both clears it."
        ),
        permission_classes=[IsAuthenticated],
    )
    async def rate_message(
        self,
        info: Info,
        message_id: strawberry.ID,
        rating: FeedbackRating | None = None,  # type: ignore[valid-type]
        comment: str | None = None,
    ) -> MessageType:
        message = await info.context.services.messages.rate(
            await info.context.owner_id(), message_id, rating, comment
        )
        return MessageType.from_record(message)

    @strawberry.mutation(
        description="Stops a PENDING or STREAMING reply; the text so far is kept (status STOPPED).",
        permission_classes=[IsAuthenticated],
    )
    async def stop_generation(self, info: Info, message_id: strawberry.ID) -> MessageType:
        message = await info.context.services.messages.stop(
            await info.context.owner_id(), message_id
        )
        return MessageType.from_record(message)


@strawberry.type
class MessageSubscription:
    @strawberry.subscription(
        description=(
            "Replays the stored reply after `afterSeq`, then follows it live until done.\n"
            "Reconnecting with the last seq seen delivers every remaining delta exactly once,\n"
            "also after the server that produced the reply restarted."
        )
    )
    async def message_stream(
        self, info: Info, message_id: strawberry.ID, after_seq: int | None = 0
    ) -> AsyncGenerator[MessageStreamEvent, None]:
        if after_seq is not None and after_seq < 0:
            raise BadUserInput("afterSeq", "afterSeq must be 0 or more.")
        owner_id: ObjectId = await info.context.owner_id()
        budget = response_budget.get()
        async for event in info.context.services.following.stream(
            owner_id, message_id, after_seq or 0
        ):
            if budget is not None:
                budget.reset()  # each event is a response of its own
            yield MessageStreamEvent.of(event)
