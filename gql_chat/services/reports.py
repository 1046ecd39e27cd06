"""Reports over a user's data: usage rollups and conversation export."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from bson import ObjectId

from gql_chat.domain.attachments import AttachmentRecord
from gql_chat.domain.clock import iso_utc
from gql_chat.domain.conversations import ConversationRecord
from gql_chat.domain.messages import MessageRecord, MessageStatus, UsageGroup, UsageRow
from gql_chat.domain.trees import parents_first, path_to
from gql_chat.errors import BadUserInput
from gql_chat.services.conversations import ConversationService
from gql_chat.store.database import Database


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
        start = _utc(start, "from")
        end = _utc(end, "to")
        if start is not None and end is not None and end <= start:
            raise BadUserInput("to", "`to` must be after `from`.")
        return await self._db.usage.summary(owner_id, group_by, start, end)

    async def export(
        self,
        owner_id: ObjectId,
        conversation_id: str,
        fmt: ExportFormat,
        charge: Callable[[int], None] | None = None,
        *,
        all_branches: bool = False,
    ) -> str:
        """The active branch (or every branch, each message after its parent) with roles,
        timestamps, models and usage. `charge` is called with the size of the text before the
        export is built (so a request over its response budget builds nothing), and with the
        rest of the export's size once it is built."""
        conversation = await self._conversations.get(owner_id, conversation_id)
        store = self._db.messages
        nodes = await store.nodes(owner_id, [conversation.id])
        ids = parents_first(nodes) if all_branches else path_to(nodes, conversation.active_leaf_id)
        messages = await store.get_many(owner_id, ids)
        estimate = len(conversation.title) + sum(
            len(m.content) + len(m.reasoning) for m in messages
        )
        if charge is not None:
            charge(estimate)
        files = await self._db.attachments.get_many(
            owner_id, {i for m in messages for i in m.attachment_ids}
        )
        exported = self._render(conversation, messages, files, fmt)
        if charge is not None and len(exported) > estimate:
            charge(len(exported) - estimate)
        return exported

    @staticmethod
    def _render(
        conversation: ConversationRecord,
        messages: list[MessageRecord],
        files: dict[ObjectId, AttachmentRecord],
        fmt: ExportFormat,
    ) -> str:
        """Attachments are listed with their metadata (the bytes are downloaded apart)."""

        def attachments(message: MessageRecord) -> list[AttachmentRecord]:
            return [files[i] for i in message.attachment_ids if i in files]

        if fmt is ExportFormat.JSON:
            return json.dumps(
                {
                    "id": str(conversation.id),
                    "title": conversation.title,
                    "createdAt": iso_utc(conversation.created_at),
                    "updatedAt": iso_utc(conversation.updated_at),
                    "activeLeafId": (
                        str(conversation.active_leaf_id) if conversation.active_leaf_id else None
                    ),
                    "messages": [_message_json(m, attachments(m)) for m in messages],
                },
                ensure_ascii=False,
                indent=2,
            )
        lines = [f"# {conversation.title}", "", f"_Started {iso_utc(conversation.created_at)}_"]
        for message in messages:
            lines += ["", f"## {message.role.value.title()} · {iso_utc(message.created_at)}"]
            details = _details(message)
            if details:
                lines.append(f"_{details}_")
            if message.reasoning:  # collapsed: a reader opens it if they want it
                lines += ["", "<details>", "<summary>Reasoning</summary>", ""]
                lines += [message.reasoning, "", "</details>"]
            lines += ["", message.content]
            if listed := attachments(message):
                lines += ["", "Attachments:", *(f"- {_file_line(a)}" for a in listed)]
        return "\n".join(lines) + "\n"


def _utc(value: datetime | None, field: str) -> datetime | None:
    """An aware UTC time; a time without an offset is taken as UTC (as stored times are). A
    time whose UTC value is outside years 1-9999 is bad input."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise BadUserInput(field, f"`{field}` is out of range.") from exc


def _message_json(message: MessageRecord, files: list[AttachmentRecord]) -> dict[str, Any]:
    usage = message.usage
    return {
        "id": str(message.id),
        "parentId": str(message.parent_id) if message.parent_id else None,
        "role": message.role.value,
        "content": message.content,
        "reasoning": message.reasoning or None,
        "attachments": [_file_json(a) for a in files],
        "status": message.status.value,
        "model": message.model,
        "createdAt": iso_utc(message.created_at),
        "usage": (
            {
                "promptTokens": usage.prompt_tokens,
                "completionTokens": usage.completion_tokens,
                "totalTokens": usage.total_tokens,
                "cost": usage.cost,
                "reasoningTokens": usage.reasoning_tokens,
            }
            if usage
            else None
        ),
    }


def _file_json(attachment: AttachmentRecord) -> dict[str, Any]:
    return {
        "id": str(attachment.id),
        "filename": attachment.filename,
        "mediaType": attachment.media_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "width": attachment.width,
        "height": attachment.height,
        "pageCount": attachment.page_count,
        "createdAt": iso_utc(attachment.created_at),
    }


def _file_line(attachment: AttachmentRecord) -> str:
    parts = [attachment.media_type, f"{attachment.size} bytes"]
    if attachment.width and attachment.height:
        parts.append(f"{attachment.width}x{attachment.height}")
    if attachment.page_count:
        parts.append(f"{attachment.page_count} pages")
    return f"{attachment.filename} ({', '.join(parts)}; sha256 {attachment.sha256})"


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
