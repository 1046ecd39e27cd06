"""Reports over a user's data: usage rollups and conversation export."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId

from gql_chat.errors import BadUserInput
from gql_chat.services.conversations import ConversationService
from gql_chat.services.threads import messages_on_path
from gql_chat.store.database import Database
from gql_chat.store.messages import MessageRecord, MessageStatus, UsageGroup, UsageRow


class ExportFormat(StrEnum):
    MARKDOWN = "MARKDOWN"
    JSON = "JSON"


class ReportService:
    def __init__(self, database: Database, conversations: ConversationService) -> None:
        self._db = database
        self._conversations = conversations

    async def usage_summary(
        self,
        owner_id: ObjectId,
        group_by: UsageGroup,
        start: datetime | None,
        end: datetime | None,
    ) -> list[UsageRow]:
        if start is not None and end is not None and end <= start:
            raise BadUserInput("to", "`to` must be after `from`.")
        return await self._db.messages.usage_summary(owner_id, group_by, start, end)

    async def export(self, owner_id: ObjectId, conversation_id: str, fmt: ExportFormat) -> str:
        """The active branch with roles, timestamps, models and usage."""
        conversation = await self._conversations.get(owner_id, conversation_id)
        messages = await messages_on_path(
            self._db.messages, owner_id, conversation.id, conversation.active_leaf_id
        )
        if fmt is ExportFormat.JSON:
            return json.dumps(
                {
                    "id": str(conversation.id),
                    "title": conversation.title,
                    "createdAt": conversation.created_at.isoformat(),
                    "messages": [_message_json(m) for m in messages],
                },
                ensure_ascii=False,
                indent=2,
            )
        lines = [f"# {conversation.title}", "", f"_Started {conversation.created_at.isoformat()}_"]
        for message in messages:
            lines += ["", f"## {message.role.value.title()} · {message.created_at.isoformat()}"]
            details = _details(message)
            if details:
                lines.append(f"_{details}_")
            lines += ["", message.content]
        return "\n".join(lines) + "\n"


def _message_json(message: MessageRecord) -> dict[str, Any]:
    usage = message.usage
    return {
        "id": str(message.id),
        "role": message.role.value,
        "content": message.content,
        "status": message.status.value,
        "model": message.model,
        "createdAt": message.created_at.isoformat(),
        "usage": (
            {
                "promptTokens": usage.prompt_tokens,
                "completionTokens": usage.completion_tokens,
                "totalTokens": usage.total_tokens,
                "cost": usage.cost,
            }
            if usage
            else None
        ),
    }


def _details(message: MessageRecord) -> str:
    parts = []
    if message.model:
        parts.append(f"model {message.model}")
    if message.usage:
        parts.append(f"{message.usage.total_tokens} tokens")
        if message.usage.cost is not None:
            parts.append(f"${message.usage.cost:.6f}")
    if message.status is not MessageStatus.COMPLETE:
        parts.append(message.status.value.lower())
    return ", ".join(parts)
