"""Message trees: the active path from the root to a leaf, and the newest leaf of a branch.
Every walk is bounded by the number of nodes, so even corrupt data (a cycle) cannot loop."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def subtree_of(nodes: Iterable[Node], root_id: ObjectId) -> list[ObjectId]:
    """`root_id` and every message below it."""
    children: dict[ObjectId | None, list[ObjectId]] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node.id)
    found = [root_id]
    seen = {root_id}
    for current in found:  # grows while it is walked; each node is added once
        for child in children.get(current, []):
            if child not in seen:
                seen.add(child)
                found.append(child)
    return found


def parents_first(nodes: Iterable[Node]) -> list[ObjectId]:
    """Every message, each after its parent (breadth first from the roots, in id order): the
    order a reader rebuilding the tree needs. A message whose parent is gone is a root."""
    listed = sorted(nodes, key=lambda node: node.id)
    present = {node.id for node in listed}
    children: dict[ObjectId | None, list[ObjectId]] = {}
    for node in listed:
        parent = node.parent_id if node.parent_id in present else None
        children.setdefault(parent, []).append(node.id)
    found = list(children.get(None, []))
    for current in found:  # grows while it is walked; a tree has no cycle to loop on
        found.extend(children.get(current, []))
    return found


def leaf_after_removal(
    remaining: Sequence[Node], removed_parent: ObjectId | None
) -> ObjectId | None:
    """Where the active branch goes when the branch it was on is removed: the newest leaf left
    under the removed part's parent (the parent itself when nothing else hangs there), or with
    no parent the newest of the remaining root branches; None when nothing remains."""
    if removed_parent is not None and any(node.id == removed_parent for node in remaining):
        return newest_leaf_under(remaining, removed_parent)
    roots = [node.id for node in remaining if node.parent_id is None]
    return newest_leaf_under(remaining, max(roots)) if roots else None
