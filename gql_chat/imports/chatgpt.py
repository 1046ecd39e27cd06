"""ChatGPT's export (`conversations.json`): a JSON array of conversations, each a `mapping` of
node id -> node linked by `parent`, and a `current_node`.

What is kept, node by node (the node id is the message's key; `parent` links are the truth,
`children` lists are not read):

- A node without a message, a message ChatGPT hides
  (`metadata.is_visually_hidden_from_conversation`), a message with no text (whatever its role:
  the empty root system message, an empty reply before a tool call), and the content types that
  are context rather than turns (`user_editable_context`, `model_editable_context`: custom
  instructions and memory; `reasoning_recap`: "Thought for 5 seconds") are skipped: their
  children hang from the nearest kept ancestor instead, so every branch stays connected.
- `user`, `assistant` and `system` messages become USER, ASSISTANT and SYSTEM messages; an
  assistant message's `model` is its `metadata.model_slug`.
- Text parts are kept (joined by a blank line). A `code` message (what the assistant runs in a
  tool) is kept as a fenced code block. What we cannot represent becomes a short bracketed note
  in the text, each counted in `placeholders`: an image part (`[image not imported]`), audio
  and video parts, and any other content type (`[execution output not imported]`).
- A `tool` message (a browsing result, code output, a generated image) becomes an ASSISTANT
  message whose text is one note (`[tool output from python not imported]`), one placeholder:
  its place in the tree is kept, its content is not. A message of a role we do not know is
  treated the same way.
- A `thoughts` message (a reasoning model's thinking) becomes the `reasoning` of the first
  kept message below it when that one is an ASSISTANT message (the answer, or a tool call),
  once: a regenerated reply below the same thoughts gets none (stored once, never copied per
  branch); it is skipped like a hidden node otherwise. Thoughts that reach no assistant
  message are lost and counted in `placeholders` (one per thoughts message, without a note:
  there is no message of theirs to hold one).

Control characters are removed (see `gql_chat.imports.text`). Messages come each after its
parent: depth first, siblings by `create_time` (a node without one last) then key.

The active leaf is `current_node`, or its nearest kept ancestor; when there is none, the
newest leaf. A conversation that cannot be read, or holds no kept message, is one
`ConversationError`; the others are still read. A document that is not a JSON array, or holds
more than `limits.max_conversations` conversations, raises `ValueError` before anything is
read."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gql_chat.domain.messages import MessageRole
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)
from gql_chat.imports.text import (
    BrokenConversation,
    check_count,
    check_size,
    clean_model,
    clean_name,
    clean_prose,
    clean_title,
    describe,
    from_unix,
    known_title,
    newest_leaf,
    tree_order,
)

ROLES = {"user": MessageRole.USER, "assistant": MessageRole.ASSISTANT, "system": MessageRole.SYSTEM}
CONTEXT_TYPES = frozenset({"user_editable_context", "model_editable_context", "reasoning_recap"})
"""Content types that are no conversation turn and hold nothing a reader misses: skipped."""
PART_LABELS = {
    "image_asset_pointer": "image",
    "audio_asset_pointer": "audio",
    "real_time_user_audio_video_asset_pointer": "audio and video",
    "video_container_asset_pointer": "video",
}
"""How a note names a multimodal part we cannot import (others: their content type)."""
_TOOL_NAME = re.compile(r"[\w.\-]{1,40}")
_BACKTICKS = re.compile(r"`{3,}")


def parse_chatgpt(document: object, limits: ImportLimits) -> Iterator[ImportItem]:
    """One item per conversation of a decoded `conversations.json`, in file order. Raises
    `ValueError` now (not while iterating) when the document is no export at all or is too big."""
    if not isinstance(document, list):
        raise ValueError(
            "The file is not a ChatGPT export: conversations.json holds a JSON array of "
            "conversations."
        )
    if len(document) > limits.max_conversations:
        raise ValueError(
            f"The file holds {len(document):,} conversations; at most "
            f"{limits.max_conversations:,} per import."
        )
    return _items(document, limits)


def _items(document: Sequence[object], limits: ImportLimits) -> Iterator[ImportItem]:
    for index, conversation in enumerate(document):
        title = (
            known_title(conversation.get("title"), limits)
            if isinstance(conversation, dict)
            else None
        )
        try:
            yield _conversation(index, conversation, limits)
        except BrokenConversation as broken:
            yield ConversationError(index, title, str(broken))


@dataclass(frozen=True, slots=True)
class _Skip:
    """A node that is no message of ours: its children hang from its parent."""


@dataclass(frozen=True, slots=True)
class _Thoughts:
    text: str


@dataclass(frozen=True, slots=True)
class _Turn:
    role: MessageRole
    content: str
    placeholders: int
    model: str | None
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class _Pending:
    """Thoughts on their way down to the next assistant message: the last thoughts node above
    it, linked to the ones before (shared by branches, so nothing is copied per node)."""

    key: str
    text: str
    previous: _Pending | None


_SKIP = _Skip()


def _conversation(index: int, conversation: object, limits: ImportLimits) -> ImportedConversation:
    if not isinstance(conversation, dict):
        raise BrokenConversation("It is not a JSON object.")
    mapping = conversation.get("mapping")
    if not isinstance(mapping, dict):
        raise BrokenConversation("It has no `mapping` object of messages.")
    parents, messages = _nodes(mapping)
    times = {key: from_unix(message.get("create_time")) for key, message in messages.items()}
    order = tree_order(parents, lambda key: _sibling_rank(key, times.get(key)))
    kept, anchors, placeholders = _walk(order, parents, messages, times, limits)
    if not kept:
        raise BrokenConversation("It holds no messages.")
    current = conversation.get("current_node")
    active = anchors.get(current) if isinstance(current, str) else None
    return ImportedConversation(
        index=index,
        title=clean_title(conversation.get("title"), limits),
        created_at=from_unix(conversation.get("create_time")),
        updated_at=from_unix(conversation.get("update_time")),
        messages=tuple(kept),
        active_leaf_key=active if active is not None else newest_leaf(kept),
        placeholders=placeholders,
    )


def _nodes(
    mapping: Mapping[str, object],
) -> tuple[dict[str, str | None], dict[str, dict[str, object]]]:
    """Each node's parent, and the nodes' messages, once their shapes are checked."""
    parents: dict[str, str | None] = {}
    messages: dict[str, dict[str, object]] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise BrokenConversation(f"Node {describe(key)} is not a JSON object.")
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise BrokenConversation(f"Node {describe(key)} has a `parent` that is not an id.")
        parents[key] = parent
        message = node.get("message")
        if isinstance(message, dict):
            messages[key] = message
        elif message is not None:
            raise BrokenConversation(f"Node {describe(key)} has a `message` that is no object.")
    return parents, messages


def _sibling_rank(key: str, created_at: datetime | None) -> tuple[bool, float, str]:
    """Siblings by time, those without one last, then by key."""
    return (created_at is None, created_at.timestamp() if created_at else 0.0, key)


def _walk(
    order: list[str],
    parents: Mapping[str, str | None],
    messages: Mapping[str, dict[str, object]],
    times: Mapping[str, datetime | None],
    limits: ImportLimits,
) -> tuple[list[ImportedMessage], dict[str, str | None], int]:
    """The kept messages in `order`, each node's nearest kept ancestor (itself when kept), and
    the placeholders. Parents come first in `order`, so one pass settles every node."""
    kept: list[ImportedMessage] = []
    anchors: dict[str, str | None] = {}
    pending: dict[str, _Pending | None] = {}
    thoughts: set[str] = set()
    consumed: set[str] = set()
    placeholders = 0
    for key in order:
        parent = parents[key]
        anchor = anchors[parent] if parent is not None else None
        carried = pending[parent] if parent is not None else None
        message = messages.get(key)
        read = _SKIP if message is None else _read(key, message, times[key], limits)
        if isinstance(read, _Skip):
            anchors[key], pending[key] = anchor, carried
        elif isinstance(read, _Thoughts):
            thoughts.add(key)
            anchors[key], pending[key] = anchor, _Pending(key, read.text, carried)
        else:
            reasoning = ""
            if carried is not None and read.role is MessageRole.ASSISTANT:
                reasoning = _reasoning(key, carried, consumed, limits)
            kept.append(
                ImportedMessage(
                    key, anchor, read.role, read.content, read.created_at, read.model, reasoning
                )
            )
            check_count(len(kept), limits)
            placeholders += read.placeholders
            anchors[key], pending[key] = key, None
    return kept, anchors, placeholders + len(thoughts - consumed)


def _reasoning(key: str, carried: _Pending, consumed: set[str], limits: ImportLimits) -> str:
    """The thoughts above message `key` not given to a message before, oldest first, marked
    as kept: each thoughts text is stored once, with the first reply below it (a thoughts node
    over many replies would otherwise be copied to each: 240 KB of thoughts over 4,000 replies
    took 1.9 GB). Stops reading as soon as they are too long, so a long chain costs no more
    than one message's limit."""
    texts: list[str] = []
    size = -2  # no separator before the first
    link: _Pending | None = carried
    while link is not None and link.key not in consumed:
        texts.append(link.text)
        consumed.add(link.key)
        size += len(link.text) + 2
        if size > limits.max_message_chars:
            raise BrokenConversation(
                f"The reasoning of message {describe(key)} is longer than "
                f"{limits.max_message_chars:,} characters, the most one message may hold."
            )
        link = link.previous
    return "\n\n".join(reversed(texts))


def _read(
    key: str, message: Mapping[str, object], created_at: datetime | None, limits: ImportLimits
) -> _Skip | _Thoughts | _Turn:
    """What one message of the file becomes."""
    metadata = message.get("metadata")
    if isinstance(metadata, dict) and metadata.get("is_visually_hidden_from_conversation") is True:
        return _SKIP
    author = message.get("author")
    role = author.get("role") if isinstance(author, dict) else None
    if not isinstance(role, str):
        raise BrokenConversation(f"Message {describe(key)} has no author role.")
    content = message.get("content")
    kind = content.get("content_type") if isinstance(content, dict) else None
    if not isinstance(content, dict) or not isinstance(kind, str):
        raise BrokenConversation(f"Message {describe(key)} has no content type.")
    if kind in CONTEXT_TYPES:
        return _SKIP
    if kind == "thoughts":
        reasoning = clean_prose(_thoughts_text(content.get("thoughts")))
        return _Thoughts(reasoning) if reasoning.strip() else _SKIP
    if role not in ROLES:
        name = author.get("name") if isinstance(author, dict) else None
        return _Turn(MessageRole.ASSISTANT, _tool_note(role, name), 1, None, created_at)
    text, notes = _content_text(key, kind, content)
    text = check_size(clean_prose(text), limits, key)
    if not text.strip():
        return _SKIP
    model = clean_model(metadata.get("model_slug")) if isinstance(metadata, dict) else None
    is_reply = ROLES[role] is MessageRole.ASSISTANT
    return _Turn(ROLES[role], text, notes, model if is_reply else None, created_at)


def _tool_note(role: str, name: object) -> str:
    """The note that stands for a tool's output (or a message of a role we do not know)."""
    if role != "tool":
        return f"[{clean_name(role, 40) or 'unknown'} message not imported]"
    if isinstance(name, str) and _TOOL_NAME.fullmatch(name):
        return f"[tool output from {name} not imported]"
    return "[tool output not imported]"


def _content_text(key: str, kind: str, content: Mapping[str, object]) -> tuple[str, int]:
    """A message's text, notes included, and how many notes it holds."""
    if kind in ("text", "multimodal_text"):
        parts = content.get("parts")
        if not isinstance(parts, list):
            raise BrokenConversation(f"Message {describe(key)} has no list of parts.")
        pieces = [_part(key, part, allow_objects=kind == "multimodal_text") for part in parts]
        return _joined(text for text, _ in pieces), sum(notes for _, notes in pieces)
    if kind == "code":
        code = content.get("text")
        if not isinstance(code, str):
            raise BrokenConversation(f"The code of message {describe(key)} is not a string.")
        language = content.get("language")
        return _fenced(code, language if isinstance(language, str) else ""), 0
    return _note(kind), 1


def _part(key: str, part: object, *, allow_objects: bool) -> tuple[str, int]:
    """One part of a message: its text, or a note (1) for what we cannot import."""
    if isinstance(part, str):
        return part, 0
    if allow_objects and isinstance(part, dict):
        kind = part.get("content_type")
        text = part.get("text")
        if kind == "audio_transcription" and isinstance(text, str):
            return text, 0  # what was said in voice mode: text we can keep
        label = PART_LABELS.get(kind) if isinstance(kind, str) else None
        return _note(kind if isinstance(kind, str) else "attachment", label), 1
    raise BrokenConversation(f"Message {describe(key)} has a part that is not text.")


def _note(kind: str, label: str | None = None) -> str:
    """A short note for content we cannot import, named by what it is."""
    named = label or clean_name(kind.replace("_", " "), 40) or "content"
    return f"[{named} not imported]"


def _joined(pieces: Iterable[str]) -> str:
    return "\n\n".join(piece for piece in pieces if piece.strip())


def _fenced(code: str, language: str) -> str:
    """Code as a Markdown block, with a fence longer than any run of backticks in it."""
    longest = max((len(run) for run in _BACKTICKS.findall(code)), default=2)
    fence = "`" * (longest + 1)
    tag = clean_name(language, 40) if language != "unknown" else ""
    return f"{fence}{tag.replace(' ', '')}\n{code}\n{fence}" if code.strip() else ""


def _thoughts_text(thoughts: object) -> str:
    """A reasoning model's thinking: each thought's summary as a bold heading, then its text."""
    if not isinstance(thoughts, list):
        return ""
    pieces = []
    for thought in thoughts:
        if not isinstance(thought, dict):
            continue
        summary, body = thought.get("summary"), thought.get("content")
        heading = f"**{summary.strip()}**" if isinstance(summary, str) and summary.strip() else ""
        pieces.append(_joined([heading, body if isinstance(body, str) else ""]))
    return _joined(pieces)
