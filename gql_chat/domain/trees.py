"""Message trees: the active path from the root to a leaf, and the newest leaf of a branch.
Every walk is bounded by the number of nodes, so even corrupt data (a cycle) cannot loop."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from bson import ObjectId


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
    seen = {root_id}
    while pending:
        current = pending.pop()
        below = [child for child in children.get(current, []) if child not in seen]
        if below:
            seen.update(below)
            pending.extend(below)
        else:
            leaves.append(current)
    return max(leaves)
