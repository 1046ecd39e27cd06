"""What an import reads from a file, whatever its format: conversation trees, ready to store,
and what could not be read, conversation by conversation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gql_chat.domain.messages import MessageRole


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """Bounds on one file: what is over them is reported, never half-stored."""

    max_conversations: int = 5_000
    max_messages: int = 10_000
    """Per conversation."""
    max_message_chars: int = 500_000
    max_title_chars: int = 200


@dataclass(frozen=True, slots=True)
class ImportedFile:
    """A file a message carries, by its id in the file (its bytes are found apart)."""

    key: str
    filename: str


@dataclass(frozen=True, slots=True)
class ImportedMessage:
    key: str
    """Its id in the file: unique within its conversation."""
    parent_key: str | None
    role: MessageRole
    content: str
    created_at: datetime | None
    """Aware, in UTC; None when the file does not say."""
    model: str | None = None
    reasoning: str = ""
    files: tuple[ImportedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportedConversation:
    index: int
    """Its position among the file's conversations (0-based), for the job's report."""
    title: str
    created_at: datetime | None
    updated_at: datetime | None
    messages: tuple[ImportedMessage, ...]
    """Every branch; each message after its parent."""
    active_leaf_key: str | None
    """The message the conversation was left at (its active branch ends there)."""
    placeholders: int = 0
    """Parts the file holds that we cannot represent (tool calls, images), each kept as a
    short note in its message's text."""


@dataclass(frozen=True, slots=True)
class ConversationError:
    """A conversation of the file that is not imported, and why (one per broken one)."""

    index: int
    title: str | None
    message: str


ImportItem = ImportedConversation | ConversationError
