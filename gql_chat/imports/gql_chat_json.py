"""Our own JSON export (`exportConversation(format: JSON)`) read back: a conversation object
`{"id", "title", "createdAt", "messages": [...]}`, a JSON array of them, or
`{"conversations": [...]}`.

Two shapes of a conversation are read:

- with `parentId` on its messages (and `activeLeafId`, `updatedAt` on the conversation): every
  branch, linked by `parentId` (null for a root). If one message has the field, all must.
- without it: the active branch in order, so each message's parent is the one before it.

A message's key is its `id`. `reasoning` is kept; `status` and `usage` are not read.
Attachments are not imported: each one listed becomes a note at the end of its message's text
(`[attachment photo.png not imported]`), counted in `placeholders`. Control characters are
removed (see `gql_chat.imports.text`). Messages come each after its parent: depth first,
siblings in file order.

The active leaf is `activeLeafId` (which must name a message of the conversation); without it,
the newest leaf (the last message, for the shape without `parentId`). Times are RFC 3339
(`2026-12-03T12:00:00.000Z`; one without an offset is UTC). A conversation that cannot be read
(a bad time, role or type, a duplicate `id`, a `parentId` naming no message of it, links that
loop, too many or too long messages, no messages) is one `ConversationError`; the others are
still read. A document of none of the three shapes, or with more than
`limits.max_conversations` conversations, raises `ValueError` before anything is read."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from gql_chat.domain.messages import MessageRole
from gql_chat.imports.model import (
    ConversationError,
    ImportedConversation,
    ImportedFile,
    ImportedMessage,
    ImportItem,
    ImportLimits,
)
from gql_chat.imports.text import (
    BrokenConversation,
    check_count,
    check_size,
    clean_name,
    clean_prose,
    clean_title,
    describe,
    from_rfc3339,
    known_title,
    newest_leaf,
    tree_order,
)

ROLES = {role.value: role for role in MessageRole}


def parse_gql_chat_json(
    document: object, limits: ImportLimits, *, with_files: bool = False
) -> Iterator[ImportItem]:
    """One item per conversation of a decoded export, in file order. Raises `ValueError` now
    (not while iterating) when the document is no export of ours or is too big. `with_files`:
    the files' bytes are at hand (an account archive): attachments are listed on their
    messages (`ImportedMessage.files`) instead of noted in their text."""
    conversations = _conversations_of(document)
    if len(conversations) > limits.max_conversations:
        raise ValueError(
            f"The file holds {len(conversations):,} conversations; at most "
            f"{limits.max_conversations:,} per import."
        )
    return _items(conversations, limits, with_files)


def _conversations_of(document: object) -> Sequence[object]:
    """The conversations of a document of any of the three shapes."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        if "conversations" in document:
            listed = document["conversations"]
            if isinstance(listed, list):
                return listed
            raise ValueError("The file's `conversations` is not a JSON array.")
        if "messages" in document:
            return [document]
    raise ValueError(
        "The file is not a gql_chat JSON export: it holds a conversation object, a JSON array "
        "of them, or an object with a `conversations` array."
    )


def _items(
    conversations: Sequence[object], limits: ImportLimits, with_files: bool
) -> Iterator[ImportItem]:
    for index, conversation in enumerate(conversations):
        title = (
            known_title(conversation.get("title"), limits)
            if isinstance(conversation, dict)
            else None
        )
        try:
            yield _conversation(index, conversation, limits, with_files)
        except BrokenConversation as broken:
            yield ConversationError(index, title, str(broken))


def _conversation(
    index: int, conversation: object, limits: ImportLimits, with_files: bool
) -> ImportedConversation:
    if not isinstance(conversation, dict):
        raise BrokenConversation("It is not a JSON object.")
    listed = conversation.get("messages")
    if not isinstance(listed, list):
        raise BrokenConversation("It has no `messages` array.")
    if not listed:
        raise BrokenConversation("It holds no messages.")
    check_count(len(listed), limits)
    messages, placeholders = _messages(listed, limits, with_files)
    active = conversation.get("activeLeafId")
    if active is not None and (not isinstance(active, str) or active not in messages):
        raise BrokenConversation("Its `activeLeafId` names no message of it.")
    position = {key: place for place, key in enumerate(messages)}
    order = tree_order({k: m.parent_key for k, m in messages.items()}, position.__getitem__)
    ordered = tuple(messages[key] for key in order)
    return ImportedConversation(
        index=index,
        title=clean_title(conversation.get("title"), limits),
        created_at=from_rfc3339(conversation.get("createdAt"), "Its `createdAt`"),
        updated_at=from_rfc3339(conversation.get("updatedAt"), "Its `updatedAt`"),
        messages=ordered,
        active_leaf_key=active if active is not None else newest_leaf(ordered),
        placeholders=placeholders,
    )


def _messages(
    listed: Sequence[object], limits: ImportLimits, with_files: bool
) -> tuple[dict[str, ImportedMessage], int]:
    """The messages by key, in file order, and how many attachment notes they hold."""
    linked = any(isinstance(m, dict) and "parentId" in m for m in listed)
    messages: dict[str, ImportedMessage] = {}
    placeholders = 0
    previous: str | None = None
    for place, message in enumerate(listed, start=1):
        if not isinstance(message, dict):
            raise BrokenConversation(f"Message {place} is not a JSON object.")
        key = message.get("id")
        if not isinstance(key, str) or not key:
            raise BrokenConversation(f"Message {place} has no `id`.")
        if key in messages:
            raise BrokenConversation(f"Two messages have the id {describe(key)}.")
        parent = _parent(key, message) if linked else previous
        messages[key], notes = _message(key, parent, message, limits, with_files)
        placeholders += notes
        previous = key
    return messages, placeholders


def _parent(key: str, message: Mapping[str, object]) -> str | None:
    if "parentId" not in message:
        raise BrokenConversation(
            f"Message {describe(key)} has no `parentId`, while others of its conversation do."
        )
    parent = message["parentId"]
    if parent is not None and not isinstance(parent, str):
        raise BrokenConversation(f"Message {describe(key)} has a `parentId` that is not an id.")
    return parent


def _message(
    key: str,
    parent: str | None,
    message: Mapping[str, object],
    limits: ImportLimits,
    with_files: bool,
) -> tuple[ImportedMessage, int]:
    """One message, and how many attachment notes its text holds."""
    label = describe(key)  # once: error messages name the message by it
    what = f"Message {label}"
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise BrokenConversation(f"{what} has no role USER, ASSISTANT or SYSTEM.")
    content = _string(message.get("content"), f"{what} has a `content` that is not text.")
    reasoning = _string(message.get("reasoning"), f"{what} has a `reasoning` that is not text.")
    model = message.get("model")
    if model is not None and not isinstance(model, str):
        raise BrokenConversation(f"{what} has a `model` that is not text.")
    listed = message.get("attachments")
    files = _attachment_refs(what, listed) if with_files else ()
    notes = [] if with_files else _attachment_notes(what, listed)
    text = "\n\n".join(piece for piece in (clean_prose(content), "\n".join(notes)) if piece)
    imported = ImportedMessage(
        key=key,
        parent_key=parent,
        role=ROLES[role],
        content=check_size(text, limits, key),
        created_at=from_rfc3339(message.get("createdAt"), f"The time of message {label}"),
        model=clean_name(model) or None if model is not None else None,
        reasoning=check_size(clean_prose(reasoning), limits, key, "The reasoning of message"),
        files=files,
    )
    return imported, len(notes)


def _string(value: object, problem: str) -> str:
    """Text that may be absent (null or missing reads as empty)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BrokenConversation(problem)
    return value


def _attachment_refs(what: str, attachments: object) -> tuple[ImportedFile, ...]:
    """The files a message lists, by their id in the file (their bytes are elsewhere)."""
    refs = []
    for attachment in _listed(what, attachments):
        key = attachment.get("id") if isinstance(attachment, dict) else None
        filename = attachment.get("filename") if isinstance(attachment, dict) else None
        if not isinstance(key, str) or not key:
            raise BrokenConversation(f"{what} lists an attachment without an `id`.")
        name = clean_name(filename) if isinstance(filename, str) else ""
        refs.append(ImportedFile(key=key, filename=name or "file"))
    return tuple(refs)


def _listed(what: str, attachments: object) -> list[object]:
    if attachments is None:
        return []
    if not isinstance(attachments, list):
        raise BrokenConversation(f"{what} has `attachments` that are not a JSON array.")
    return attachments


def _attachment_notes(what: str, attachments: object) -> list[str]:
    """A note for each attachment listed: the files themselves are not in the JSON."""
    notes = []
    for attachment in _listed(what, attachments):
        filename = attachment.get("filename") if isinstance(attachment, dict) else None
        name = clean_name(filename) if isinstance(filename, str) else ""
        notes.append(f"[attachment {name} not imported]" if name else "[attachment not imported]")
    return notes
