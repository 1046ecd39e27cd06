"""Depth, alias and fragment-spread limits of a parsed document, in time linear in its size.
(One algorithm, about 350 lines with its explanation: kept whole so it reads as one proof.)

Why not Strawberry's `QueryDepthLimiter` and `MaxAliasesLimiter`: they walk a fragment again at
every spread, so fragments that each spread the next one twice cost 2^n (22 levels, 750 bytes:
23 s of event loop). Here each definition is walked once, reduced to its own numbers plus a
weight per fragment it spreads, and each fragment's totals are then computed once (memoised,
with an explicit stack: a long fragment chain cannot exhaust Python's recursion limit). A
fragment cycle or an unknown fragment counts as empty; graphql-core's standard rules, which run
after these limits, report them.

What is counted:
- expanded fragment spreads: how many spreads a full inline expansion of every operation holds
  (plus each fragment no operation uses, so a fragment cannot hide from the limit by being
  unused); this bounds everything that walks fragments per spread (e.g. `info.selected_fields`).
- depth, per operation, as Strawberry counts it: the selections nested under the most fields;
  the insides of `__`-prefixed (introspection) fields do not count.
- aliases, in all operations together, as execution meets them: graphql-core collects a fragment
  once per selection set, so `...F ...F` counts F's aliases once, while spreads under different
  fields add up. A fragment reached through two different fragments at one level counts twice
  (an over-count, never an under-count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

# Counts stop growing here: the arithmetic stays on small integers however many levels of
# doubling a document has, and every limit is far below.
SATURATED = 10**15


class Limits(NamedTuple):
    max_depth: int
    max_aliases: int
    max_fragment_spreads: int
    max_selections: int = 1000
    max_repeated_fields: int = 150


class Cost(NamedTuple):
    spreads: int
    aliases: int
    depth: int
    selections: int = 0


EMPTY = Cost(0, 0, 0, 0)


@dataclass
class _Part:
    """One definition's own numbers, and what it adds per unit of each fragment it spreads."""

    spreads: int = 0
    aliases: int = 0
    depth: int = 0
    selections: int = 0  # fields and inline fragments
    spread_refs: Counter[str] = field(default_factory=Counter)  # every spread
    alias_refs: Counter[str] = field(default_factory=Counter)  # once per selection set
    depth_refs: dict[str, int] = field(default_factory=dict)  # deepest spread of each


@dataclass(frozen=True)
class DocumentCost:
    operations: tuple[tuple[OperationDefinitionNode, Cost], ...]
    spreads: int
    aliases: int
    selections: int
    visits: int  # selections and fragment references looked at: linear in the document


def _deferred(node: FragmentSpreadNode | InlineFragmentNode) -> bool:
    """Under `@defer`, execution may collect a fragment once more per deferral."""
    return any(directive.name.value == "defer" for directive in node.directives or ())


def _part(selection_set: SelectionSetNode) -> tuple[_Part, int]:
    """Walk one definition without entering fragments. An inline fragment shares its parent's
    selection set (one collection at execution); a field starts a new one."""
    part = _Part()
    visits = 0
    # (selections, depth offset, fragments already collected there (None: not deduplicated),
    # whether depth is counted below)
    stack: list[tuple[SelectionSetNode, int, set[str] | None, bool]] = [
        (selection_set, 0, set(), True)
    ]
    while stack:
        selections, offset, collected, counted = stack.pop()
        for selection in selections.selections:
            visits += 1
            if counted and offset > part.depth:
                part.depth = offset
            if not isinstance(selection, FragmentSpreadNode):
                part.selections += 1
            if isinstance(selection, FieldNode):
                if selection.alias:
                    part.aliases += 1
                if selection.selection_set:
                    below = counted and not selection.name.value.startswith("__")
                    stack.append((selection.selection_set, offset + 1, set(), below))
            elif isinstance(selection, InlineFragmentNode):
                shared = None if _deferred(selection) else collected
                stack.append((selection.selection_set, offset, shared, counted))
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                part.spreads += 1
                part.spread_refs[name] += 1
                if collected is None or _deferred(selection):
                    part.alias_refs[name] += 1
                elif name not in collected:
                    collected.add(name)
                    part.alias_refs[name] += 1
                if counted and offset >= part.depth_refs.get(name, 0):
                    part.depth_refs[name] = offset
    return part, visits


def _total(part: _Part, costs: dict[str, Cost]) -> Cost:
    """A definition's totals from its part and the totals of the fragments it spreads (a
    fragment without totals, unknown or on a cycle, counts as empty)."""
    spreads, aliases, depth = part.spreads, part.aliases, part.depth
    selections = part.selections
    for name, count in part.spread_refs.items():
        cost = costs.get(name, EMPTY)
        spreads += count * cost.spreads
        selections += count * cost.selections
    for name, count in part.alias_refs.items():
        aliases += count * costs.get(name, EMPTY).aliases
    for name, offset in part.depth_refs.items():
        depth = max(depth, offset + costs.get(name, EMPTY).depth)
    return Cost(
        min(spreads, SATURATED),
        min(aliases, SATURATED),
        depth,
        min(selections, SATURATED),
    )


def _fragment_costs(parts: dict[str, _Part]) -> tuple[dict[str, Cost], int]:
    """Each fragment's totals, each computed once, dependencies first (depth-first, iterative)."""
    costs: dict[str, Cost] = {}
    active: set[str] = set()
    visits = 0
    for root in parts:
        if root in costs:
            continue
        active.add(root)
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(parts[root].spread_refs))]
        while stack:
            name, refs = stack[-1]
            for ref in refs:
                visits += 1
                if ref in parts and ref not in costs and ref not in active:
                    active.add(ref)
                    stack.append((ref, iter(parts[ref].spread_refs)))
                    break
            else:
                stack.pop()
                active.discard(name)
                part = parts[name]
                visits += len(part.spread_refs) + len(part.alias_refs) + len(part.depth_refs)
                costs[name] = _total(part, costs)
    return costs, visits


def _reachable(roots: Iterable[str], parts: dict[str, _Part]) -> set[str]:
    seen: set[str] = set()
    pending = [name for name in roots if name in parts]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(ref for ref in parts[name].spread_refs if ref in parts)
    return seen


def analyse(document: DocumentNode) -> DocumentCost:
    """The document's numbers, for the limits and for the tests."""
    parts: dict[str, _Part] = {}
    operation_parts: list[tuple[OperationDefinitionNode, _Part]] = []
    visits = 0
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode | OperationDefinitionNode):
            part, seen = _part(definition.selection_set)
            visits += seen
            if isinstance(definition, FragmentDefinitionNode):
                parts[definition.name.value] = part  # a duplicate name: the last, as graphql-core
            else:
                operation_parts.append((definition, part))
    costs, seen = _fragment_costs(parts)
    visits += seen
    operations = tuple((operation, _total(part, costs)) for operation, part in operation_parts)
    used = _reachable((ref for _, part in operation_parts for ref in part.spread_refs), parts)
    visits += sum(3 * len(part.spread_refs) for _, part in operation_parts)
    visits += sum(len(part.spread_refs) for part in parts.values())
    spreads = sum(cost.spreads for _, cost in operations)
    spreads += sum(cost.spreads for name, cost in costs.items() if name not in used)
    aliases = sum(cost.aliases for _, cost in operations)
    selections = sum(cost.selections for _, cost in operations)
    selections += sum(cost.selections for name, cost in costs.items() if name not in used)
    return DocumentCost(
        operations=operations,
        spreads=min(spreads, SATURATED),
        aliases=min(aliases, SATURATED),
        selections=min(selections, SATURATED),
        visits=visits,
    )


def most_repeated(document: DocumentNode, budget: int) -> int:
    """The most field selections sharing one response path (response keys from the root, e.g.
    `conversation.messages.edges`) with every fragment written out in place, in any operation
    or unused fragment: graphql-core's OverlappingFieldsCanBeMerged compares every pair of them
    (1,240 `me{id}` at the root: 1.1 s). Fields under different types count together (an
    over-count). At most `budget` selections are looked at: more answers SATURATED (call this
    only for a document whose expanded selections and spreads are within their limits; a
    fragment cycle can still expand past them, and a fragment is never entered again below
    itself)."""
    fragments: dict[str, FragmentDefinitionNode] = {}
    roots: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            fragments[definition.name.value] = definition
        elif isinstance(definition, OperationDefinitionNode):
            roots.append(definition.selection_set)
    spread = {
        selection.name.value for root in roots for selection in _spreads_below(root, fragments)
    }
    roots += [f.selection_set for name, f in fragments.items() if name not in spread]
    most = 0
    visits = 0
    for root in roots:
        paths: dict[tuple[int, str], int] = {}  # (parent path, response key) -> path
        counts = [0]
        stack: list[tuple[SelectionSetNode, int, tuple[str, ...]]] = [(root, 0, ())]
        while stack:
            selections, path, chain = stack.pop()
            for selection in selections.selections:
                visits += 1
                if visits > budget:
                    return SATURATED
                if isinstance(selection, FieldNode):
                    key = (path, (selection.alias or selection.name).value)
                    below = paths.get(key)
                    if below is None:
                        below = paths[key] = len(counts)
                        counts.append(0)
                    counts[below] += 1
                    most = max(most, counts[below])
                    if selection.selection_set:
                        stack.append((selection.selection_set, below, chain))
                elif isinstance(selection, InlineFragmentNode):
                    stack.append((selection.selection_set, path, chain))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = fragments.get(name)
                    if fragment is not None and name not in chain:
                        stack.append((fragment.selection_set, path, (*chain, name)))
    return most


def _spreads_below(
    root: SelectionSetNode, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[FragmentSpreadNode]:
    """Every fragment spread reachable from `root`, each fragment entered once."""
    entered: set[str] = set()
    pending = [root]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode | InlineFragmentNode):
                if selection.selection_set:
                    pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                yield selection
                name = selection.name.value
                if name not in entered and name in fragments:
                    entered.add(name)
                    pending.append(fragments[name].selection_set)


def _shown(count: int) -> str:
    return f"more than {SATURATED - 1}" if count >= SATURATED else str(count)


def limit_errors(document: DocumentNode, limits: Limits, cost: DocumentCost) -> list[GraphQLError]:
    """Validation errors for each limit the document exceeds (Strawberry's messages for depth
    and aliases, which clients may already match); `cost` is `analyse(document)`."""
    errors: list[GraphQLError] = []
    if cost.spreads > limits.max_fragment_spreads:
        errors.append(
            GraphQLError(
                f"{_shown(cost.spreads)} fragment spreads after expanding fragments."
                f" Allowed: {limits.max_fragment_spreads}"
            )
        )
    for operation, operation_cost in cost.operations:
        if operation_cost.depth > limits.max_depth:
            name = operation.name.value if operation.name else "anonymous"
            errors.append(
                GraphQLError(
                    f"'{name}' exceeds maximum operation depth of {limits.max_depth}", operation
                )
            )
    if cost.aliases > limits.max_aliases:
        errors.append(
            GraphQLError(f"{_shown(cost.aliases)} aliases found. Allowed: {limits.max_aliases}")
        )
    if cost.selections > limits.max_selections:
        errors.append(
            GraphQLError(
                f"{_shown(cost.selections)} field selections after expanding fragments."
                f" Allowed: {limits.max_selections}"
            )
        )
    if errors:
        return errors
    budget = limits.max_selections + limits.max_fragment_spreads
    repeated = most_repeated(document, budget)
    if repeated >= SATURATED:
        errors.append(
            GraphQLError(
                f"more than {limits.max_selections} field selections after expanding"
                f" fragments. Allowed: {limits.max_selections}"
            )
        )
    elif repeated > limits.max_repeated_fields:
        errors.append(
            GraphQLError(
                f"{repeated} selections of one field (the same response key at the same"
                f" place) after expanding fragments. Allowed: {limits.max_repeated_fields}"
            )
        )
    return errors
