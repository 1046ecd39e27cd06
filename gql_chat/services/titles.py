"""Automatic titles: after a conversation's first completed reply, a short title from a model.

A failure keeps the provisional title and is logged, never surfaced to the user."""

from __future__ import annotations

import logging

from gql_chat.config import Settings
from gql_chat.domain.messages import MessageRecord, MessageStatus
from gql_chat.llm.types import ChatProvider, ChatRequest, PromptMessage, TextDelta
from gql_chat.services.conversations import ConversationService
from gql_chat.services.model_access import ModelAccess
from gql_chat.store.database import Database
from gql_chat.streams.user_events import UserEventKind

logger = logging.getLogger(__name__)

AUTO_TITLE_SOURCES = ("default", "first_words")
TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. Answer with the title only, "
    "without quotes or a final period."
)
MAX_TITLE_CHARS = 80
MAX_COLLECTED_CHARS = 1000
"""How much of the title model's answer is read: `max_tokens` asks for 24 tokens, but a
provider need not honour it."""
# Quotes (straight and typographic) and markdown marks that models like to wrap titles in.
TITLE_DECORATIONS = "\"'`*#\u201c\u201d\u2018\u2019"
TITLE_WORDS = 8
TITLE_CHARS = 60
EXCERPT_CHARS = 2000


def title_from(content: str) -> str:
    """A provisional title: the message's first words."""
    words = content.split()
    title = " ".join(words[:TITLE_WORDS])
    if len(title) > TITLE_CHARS:
        title = title[: TITLE_CHARS - 1].rstrip() + "…"
    elif len(words) > TITLE_WORDS:
        title += "…"
    return title or "New conversation"


def clean_title(raw: str) -> str:
    title = " ".join(raw.split()).strip().strip(TITLE_DECORATIONS).strip()
    title = title.removesuffix(".").strip()
    if len(title) > MAX_TITLE_CHARS:
        title = title[: MAX_TITLE_CHARS - 1].rstrip() + "…"
    return title


class TitleService:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        provider: ChatProvider,
        conversations: ConversationService,
        model_access: ModelAccess,
    ) -> None:
        self._model_access = model_access
        self._settings = settings
        self._db = database
        self._provider = provider
        self._conversations = conversations

    async def after_reply(self, reply: MessageRecord) -> None:
        """Title the conversation if this is its first completed reply and nobody named it."""
        if reply.status is not MessageStatus.COMPLETE or reply.parent_id is None:
            return
        conversation = await self._db.conversations.get(reply.owner_id, reply.conversation_id)
        if conversation is None or conversation.title_source not in AUTO_TITLE_SOURCES:
            return
        owner = await self._db.users.get(reply.owner_id)
        if owner is None:
            return
        try:
            question = await self._db.messages.get(reply.owner_id, reply.parent_id)
            question_text = question.content if question else ""
            title = (
                await self._generate(question_text, reply.content)
                if self._model_access.allows(owner, self._settings.title_model)
                else title_from(question_text)  # no model the owner may not use
            )
        except Exception:
            logger.warning(
                "automatic title failed; keeping the provisional one",
                exc_info=True,
                extra={"conversation_id": str(conversation.id)},
            )
            return
        if not title:
            logger.warning("automatic title came back empty; keeping the provisional one")
            return
        updated = await self._db.conversations.set_auto_title(
            reply.owner_id, conversation.id, title, AUTO_TITLE_SOURCES
        )
        if updated:
            self._conversations.publish(
                reply.owner_id, UserEventKind.CONVERSATION_UPDATED, conversation.id
            )

    async def _generate(self, question: str, answer: str) -> str:
        if self._settings.uses_offline_model:
            return title_from(question)
        request = ChatRequest(
            model=self._settings.title_model,
            messages=[
                PromptMessage("system", TITLE_PROMPT),
                PromptMessage(
                    "user",
                    f"User: {question[:EXCERPT_CHARS]}\n\nAssistant: {answer[:EXCERPT_CHARS]}",
                ),
            ],
            max_tokens=24,
        )
        parts: list[str] = []
        collected = 0
        events = self._provider.stream(request)
        try:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    collected += len(event.text)
                    if collected >= MAX_COLLECTED_CHARS:
                        break  # a title is 80 characters: a model that rambles is cut short
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        return clean_title("".join(parts)[:MAX_COLLECTED_CHARS])
