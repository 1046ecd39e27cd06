"""Message trees: the active path from the root to a leaf, and sibling groups."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bson import ObjectId

from gql_chat.domain.messages import MessageRecord
from gql_chat.store.messages import MessageStore


class Node(Protocol):
    @property
    def id(self) -> ObjectId: ...

    @property
    def parent_id(self) -> ObjectId | None: ...


def path_to(nodes: Iterable[Node], leaf_id: ObjectId | None) -> list[ObjectId]:
    """Ids from the root down to `leaf_id` (empty when there is no leaf)."""
    parents = {node.id: node.parent_id for node in nodes}
    path: list[ObjectId] = []
    current = leaf_id
    while current is not None and current in parents and len(path) <= len(parents):
        path.append(current)
        current = parents[current]
    path.reverse()
    return path


def newest_leaf_under(nodes: Iterable[Node], root_id: ObjectId) -> ObjectId:
    """The most recently created leaf of the subtree under `root_id` (ids grow with time)."""
    children: dict[ObjectId | None, list[ObjectId]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node.id)
    leaves: list[ObjectId] = []
    pending = [root_id]
    while pending:
        current = pending.pop()
        below = children.get(current, [])
        if below:
            pending.extend(below)
        else:
            leaves.append(current)
    return max(leaves)


async def messages_on_path(
    messages: MessageStore, owner_id: ObjectId, conversation_id: ObjectId, leaf_id: ObjectId | None
) -> list[MessageRecord]:
    """The messages from the root down to `leaf_id`, oldest first: two store calls."""
    path = path_to(await messages.nodes(owner_id, [conversation_id]), leaf_id)
    return await messages.get_many(owner_id, path)
