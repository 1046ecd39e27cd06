"""Fragment expansion attacks: documents whose fragments spread each other must cost server time
linear in their size (issue 18). Before the fix, the 22-level document below took 23 s of event
loop; each of these requests must now finish well under a second."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Node,
    Visitor,
    parse,
    visit,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gql_chat.api.document_limits import SATURATED, Limits, analyse, limit_errors
from tests.conftest import LiveServer
from tests.support import (
    GraphQLClient,
    GraphQLResult,
    SignedIn,
    create_conversation,
    within,
    ws_client,
)

BOUND = 1.0  # seconds of CPU in the app; the fixed analysis takes about a millisecond


def doubling(levels: int, on: str, leaf: str = "id") -> str:
    """Fragments F0..F{levels}, each spreading the next one twice: 2^levels when expanded."""
    chain = " ".join(f"fragment F{i} on {on} {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
    return f"{chain} fragment F{levels} on {on} {{ {leaf} }}"


# The document from the issue: 22 levels, about 750 bytes, no login needed.
ME_BOMB = "{ me { ...F0 } } " + doubling(22, "User")


def rejected_for_spreads(result: GraphQLResult) -> None:
    assert result.data is None
    assert "fragment spreads" in result.errors[0]["message"], result.errors
    assert set(result.error_codes) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_the_issue_document_is_refused_at_once(gql: GraphQLClient) -> None:
    assert len(ME_BOMB) < 900
    with within(BOUND):
        result = await gql.execute(ME_BOMB)
    rejected_for_spreads(result)
    assert result.errors[0]["message"].startswith(f"{2**23 - 1} fragment spreads")
    # A varied comment misses the caches; it is just as cheap.
    with within(BOUND):
        rejected_for_spreads(await gql.execute("# nonce 1\n" + ME_BOMB))


async def test_the_conversation_variant_is_refused_at_once(alice: SignedIn) -> None:
    await create_conversation(alice, title="Trip")
    bomb = "{ conversations { edges { node { ...F0 } } } } " + doubling(20, "Conversation")
    with within(BOUND):
        rejected_for_spreads(await alice.execute(bomb))


async def test_bombs_through_inline_fragments_and_alias_lists_are_refused_at_once(
    alice: SignedIn,
) -> None:
    through_inline = "{ me { ...F0 } } " + " ".join(
        f"fragment F{i} on User {{ ... on User {{ ...F{i + 1} }} ... {{ ...F{i + 1} }} }}"
        for i in range(30)
    )
    through_inline += " fragment F30 on User { id }"
    aliased = (
        "{ " + " ".join(f"a{i}: me {{ ...F0 }}" for i in range(30)) + " } " + doubling(24, "User")
    )
    aliased_inside = "{ me { ...F0 } } " + " ".join(
        f"fragment F{i} on User {{ x{i}: id ...F{i + 1} y{i}: defaultLlmConfig {{ id }} ...F{i + 1} }}"
        for i in range(25)
    )
    aliased_inside += " fragment F25 on User { id }"
    for document in (through_inline, aliased, aliased_inside):
        with within(BOUND):
            rejected_for_spreads(await alice.execute(document))


async def test_deep_inline_fragments_and_many_aliased_spreads_are_answered_quickly(
    alice: SignedIn,
) -> None:
    nested = "{ me { " + "... on User { id " * 150 + "}" * 150 + " } }"
    with within(BOUND):
        assert (await alice.execute(nested)).ok()["me"]["id"] == alice.user_id
    # 30 aliases, each spreading a small fragment once: 30 spreads, within every limit.
    listed = (
        "{ "
        + " ".join(f"a{i}: me {{ ...Row }}" for i in range(30))
        + " } fragment Row on User { id email ... on User { displayName } }"
    )
    with within(BOUND):
        data = (await alice.execute(listed)).ok()
    assert data["a29"]["email"] == alice.email


async def test_a_fragment_is_counted_once_per_selection_set(alice: SignedIn) -> None:
    thirty = "fragment F on User { " + " ".join(f"a{i}: id" for i in range(30)) + " }"
    three_times = await alice.execute("{ me { ...F ...F ... on User { ...F } } } " + thirty)
    assert three_times.ok()["me"]["a29"] == alice.user_id
    # Spread under two fields, it runs twice: 60 aliases, plus the field's own.
    twice = await alice.execute("{ me { ...F } other: me { ...F } } " + thirty)
    assert twice.errors[0]["message"] == "61 aliases found. Allowed: 30"
    assert twice.error_codes == ["GRAPHQL_VALIDATION_FAILED"]
    distinct = "{ me { " + " ".join(f"a{i}: id" for i in range(31)) + " } }"
    assert (await alice.execute(distinct)).errors[0]["message"] == "31 aliases found. Allowed: 30"


async def test_depth_counts_through_fragments_once(gql: GraphQLClient) -> None:
    deep = "{ folders { ...P0 } } " + " ".join(
        f"fragment P{i} on Folder {{ parent {{ ...P{i + 1} }} parent {{ ...P{i + 1} }} }}"
        for i in range(5)
    )
    deep += " fragment P5 on Folder { " + "parent { " * 8 + "id" + " }" * 8 + " }"
    with within(BOUND):
        result = await gql.execute(deep)
    assert result.errors[0]["message"] == "'anonymous' exceeds maximum operation depth of 12"
    assert result.error_codes == ["GRAPHQL_VALIDATION_FAILED"]


async def test_fragment_cycles_unknown_fragments_and_long_chains_are_validation_errors(
    gql: GraphQLClient,
) -> None:
    unknown = await gql.execute("{ me { ...Nope } }")
    assert unknown.errors[0]["message"] == "Unknown fragment 'Nope'."
    cycle = await gql.execute(
        "{ me { ...A } } fragment A on User { ...B ...B } fragment B on User { ...A ...A }"
    )
    assert "within itself" in cycle.errors[0]["message"]
    # 600 fragments in a chain exhausted the old recursive walk (an internal error).
    chain = " ".join(f"fragment F{i} on User {{ ...F{i + 1} }}" for i in range(600))
    with within(BOUND):
        long_chain = await gql.execute(
            "{ me { ...F0 } } " + chain + " fragment F600 on User { id }"
        )
    rejected_for_spreads(long_chain)
    for result in (unknown, cycle):
        assert set(result.error_codes) == {"GRAPHQL_VALIDATION_FAILED"}


async def test_subscriptions_are_checked_the_same_way(
    live_server: LiveServer, live_gql: GraphQLClient
) -> None:
    token = (await live_gql.register())["accessToken"]
    bomb = "subscription { userEvents { ...F0 } } " + doubling(22, "UserEvent", "kind")
    async with ws_client(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        with within(BOUND):
            await ws.subscribe(bomb)
            message: dict[str, Any] = await asyncio.wait_for(ws.receive(), timeout=10)
    assert message["type"] == "error"
    assert "fragment spreads" in message["payload"][0]["message"]
    assert message["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


# The analysis itself, against brute-force expansion of small random documents.

# ("field", name, alias, children | None), ("inline", children) or ("spread", name)
Tree = list[tuple[Any, ...]]
FIELDS = ("a", "b", "__typename")
PARENTS = ("a", "b", "__schema")


@st.composite
def selections(draw: st.DrawFn, targets: list[str], level: int = 0) -> Tree:
    """A non-empty selection set spreading only `targets`."""
    kinds = ["leaf", "spread", "field", "inline"] if level < 3 else ["leaf", "spread"]
    tree: Tree = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind == "spread" and targets:
            tree.append(("spread", draw(st.sampled_from(targets))))
        elif kind == "field":
            children = draw(selections(targets, level + 1))
            tree.append(("field", draw(st.sampled_from(PARENTS)), draw(st.booleans()), children))
        elif kind == "inline":
            tree.append(("inline", draw(selections(targets, level + 1))))
        else:
            tree.append(("field", draw(st.sampled_from(FIELDS)), draw(st.booleans()), None))
    return tree


@st.composite
def documents(draw: st.DrawFn) -> tuple[dict[str, Tree], list[Tree]]:
    """Fragments F0..Fn; Fi spreads only later ones (a DAG), unless cycles are drawn; an
    unknown fragment now and then."""
    count = draw(st.integers(0, 6))
    cyclic = draw(st.booleans())
    names = [f"F{i}" for i in range(count)]
    fragments = {}
    for i, name in enumerate(names):
        targets = (names if cyclic else names[i + 1 :]) + ["Nope"]
        fragments[name] = draw(selections(targets))
    operations = [draw(selections([*names, "Nope"])) for _ in range(draw(st.integers(1, 2)))]
    return fragments, operations


def render(tree: Tree) -> str:
    parts = []
    for node in tree:
        if node[0] == "spread":
            parts.append(f"...{node[1]}")
        elif node[0] == "inline":
            parts.append(f"... {{ {render(node[1])} }}")
        else:
            _, name, alias, children = node
            text = f"x: {name}" if alias else name
            parts.append(f"{text} {{ {render(children)} }}" if children else text)
    return " ".join(parts)


def source(fragments: dict[str, Tree], operations: list[Tree]) -> str:
    ops = " ".join(f"query Q{i} {{ {render(tree)} }}" for i, tree in enumerate(operations))
    frags = " ".join(
        f"fragment {name} on T {{ {render(tree)} }}" for name, tree in fragments.items()
    )
    return f"{ops} {frags}"


def is_acyclic(fragments: dict[str, Tree]) -> bool:
    def refs(tree: Tree) -> Iterator[str]:
        for node in tree:
            if node[0] == "spread":
                yield node[1]
            elif node[0] == "inline":
                yield from refs(node[1])
            elif node[3]:
                yield from refs(node[3])

    done: set[str] = set()

    def visit(name: str, path: frozenset[str]) -> bool:
        if name in path:
            return False
        if name in done or name not in fragments:
            return True
        ok = all(visit(ref, path | {name}) for ref in refs(fragments[name]))
        done.add(name)
        return ok

    return all(visit(name, frozenset()) for name in fragments)


def brute_spreads(tree: Tree, fragments: dict[str, Tree]) -> int:
    """Spreads in the full inline expansion."""
    total = 0
    for node in tree:
        if node[0] == "spread":
            total += 1 + (
                brute_spreads(fragments[node[1]], fragments) if node[1] in fragments else 0
            )
        elif node[0] == "inline":
            total += brute_spreads(node[1], fragments)
        elif node[3]:
            total += brute_spreads(node[3], fragments)
    return total


def brute_depth(tree: Tree, fragments: dict[str, Tree], depth: int = 0) -> int:
    """Strawberry's depth: the deepest selection, not below `__` fields."""
    deepest = depth
    for node in tree:
        if node[0] == "spread" and node[1] in fragments:
            deepest = max(deepest, brute_depth(fragments[node[1]], fragments, depth))
        elif node[0] == "inline":
            deepest = max(deepest, brute_depth(node[1], fragments, depth))
        elif node[0] == "field" and node[3] and not node[1].startswith("__"):
            deepest = max(deepest, brute_depth(node[3], fragments, depth + 1))
    return deepest


def brute_aliases(tree: Tree, fragments: dict[str, Tree], *, closure: bool) -> int:
    """Aliases as execution collects them. `closure=True` is graphql-core exactly: a fragment
    once per selection set however it is reached. `closure=False` is what the analysis counts:
    once per selection set for the spreads written there, each fragment's own total otherwise."""
    total = 0
    collected: set[str] = set()

    def level(nodes: Tree) -> None:
        nonlocal total
        for node in nodes:
            if node[0] == "field":
                total += node[2]
                if node[3]:
                    total += brute_aliases(node[3], fragments, closure=closure)
            elif node[0] == "inline":
                level(node[1])
            elif node[1] in fragments and node[1] not in collected:
                collected.add(node[1])
                if closure:
                    level(fragments[node[1]])
                else:
                    total += brute_aliases(fragments[node[1]], fragments, closure=False)

    level(tree)
    return total


def used(fragments: dict[str, Tree], operations: list[Tree]) -> set[str]:
    reached: set[str] = set()

    def walk(tree: Tree) -> None:
        for node in tree:
            if node[0] == "spread":
                if node[1] in fragments and node[1] not in reached:
                    reached.add(node[1])
                    walk(fragments[node[1]])
            elif node[0] == "inline":
                walk(node[1])
            elif node[3]:
                walk(node[3])

    for tree in operations:
        walk(tree)
    return reached


def selection_count(document: DocumentNode) -> int:
    count = 0

    class Count(Visitor):
        def enter(self, node: Node, *_: Any) -> None:
            nonlocal count
            count += isinstance(node, FieldNode | InlineFragmentNode | FragmentSpreadNode)

    visit(document, Count())
    return count


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_analysis_is_linear_and_matches_brute_force(
    drawn: tuple[dict[str, Tree], list[Tree]],
) -> None:
    fragments, operations = drawn
    document = parse(source(fragments, operations))
    cost = analyse(document)
    assert cost.visits <= 6 * selection_count(document)
    if not is_acyclic(fragments):
        return  # graphql-core rejects cycles; the analysis only has to stay linear
    unused = [name for name in fragments if name not in used(fragments, operations)]
    assert cost.spreads == sum(brute_spreads(tree, fragments) for tree in operations) + sum(
        brute_spreads(fragments[name], fragments) for name in unused
    )
    assert [c.depth for _, c in cost.operations] == [brute_depth(t, fragments) for t in operations]
    exact = sum(brute_aliases(tree, fragments, closure=True) for tree in operations)
    counted = sum(brute_aliases(tree, fragments, closure=False) for tree in operations)
    assert cost.aliases == counted >= exact


@pytest.mark.parametrize("levels", [10, 100, 600])
def test_doubling_fragments_cost_linear_work(levels: int) -> None:
    document = parse("{ me { ...F0 } } " + doubling(levels, "User"), max_tokens=100_000)
    cost = analyse(document)
    assert cost.visits <= 6 * selection_count(document)
    assert cost.spreads == min(2 ** (levels + 1) - 1, SATURATED)
    message = limit_errors(document, Limits(12, 30, 100), cost)[0].message
    assert message.endswith("fragment spreads after expanding fragments. Allowed: 100")
