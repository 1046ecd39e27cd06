"""Direct resolvers: a field that needs none of Strawberry's resolver chain answers exactly as
through the chain (the same data, the same errors at the same paths), and a field that needs
any of it keeps it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType
from hypothesis import given, settings
from hypothesis import strategies as st
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter

from gql_chat.api.schema import build_schema
from gql_chat.platform import strawberry_resolvers
from gql_chat.platform.strawberry_resolvers import install_direct_resolvers
from gql_chat.platform.versions import UnsupportedVersion


class Deny(BasePermission):
    message = "denied"

    def has_permission(self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any) -> bool:
        return False


class Allow(BasePermission):
    def has_permission(self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any) -> bool:
        return True


class AllowLater(BasePermission):
    async def has_permission(
        self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any
    ) -> bool:
        await asyncio.sleep(0)
        label: str = source.label
        return info.context["marker"] == "m" and not label.endswith("1")


class Coded(BasePermission):
    message = "coded denial"
    error_extensions = {"code": "FORBIDDEN"}

    async def has_permission(
        self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any
    ) -> bool:
        label: str = source.label
        return label.startswith("top")


class NotABool(BasePermission):
    async def has_permission(  # type: ignore[override]
        self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any
    ) -> object:
        return "yes"


class Quiet(BasePermission):
    """Denies without raising: the field is then null, as through Strawberry's chain."""

    def has_permission(self, source: Any, info: strawberry.Info[Any, Any], **kwargs: Any) -> bool:
        return False

    def on_unauthorized(self) -> None:
        return None


async def _label_later(parent: strawberry.Parent[Node], info: strawberry.Info) -> str:
    await asyncio.sleep(0)
    return f"{info.python_name} {parent.label}"


def _by_root(root: Node) -> str:
    return f"root {root.label}"


def _by_parent(parent: strawberry.Parent[Node]) -> str:
    return f"parent {parent.label}"


def _by_nothing() -> int:
    return 7


@strawberry.type
class Node:
    label: str
    child: Node | None

    @strawberry.field
    def plain(self) -> str:
        return f"plain {self.label}"

    @strawberry.field
    def with_info(self, info: strawberry.Info) -> str:
        return f"{info.field_name} {info.path.key} {info.context['marker']} {self.label}"

    @strawberry.field
    async def later(self) -> Node | None:
        await asyncio.sleep(0)
        return self.child

    @strawberry.field
    def failing(self) -> str | None:
        raise ValueError(f"failed at {self.label}")

    @strawberry.field
    def failing_non_null(self) -> str:
        raise ValueError(f"no value at {self.label}")

    @strawberry.field
    async def failing_later(self) -> str | None:
        raise ValueError(f"failed later at {self.label}")

    @strawberry.field
    def wrong_type(self) -> int:
        return self.label  # type: ignore[return-value]

    rooted: str = strawberry.field(resolver=_by_root)
    parented: str = strawberry.field(resolver=_by_parent)
    constant: int = strawberry.field(resolver=_by_nothing)

    guarded: int | None = strawberry.field(resolver=_by_nothing, permission_classes=[Deny])
    allowed: str = strawberry.field(resolver=_label_later, permission_classes=[Allow])
    allowed_later: str | None = strawberry.field(
        resolver=_label_later, permission_classes=[Allow, AllowLater]
    )
    coded: str | None = strawberry.field(resolver=_label_later, permission_classes=[Coded])
    denied_non_null: str = strawberry.field(resolver=_label_later, permission_classes=[Deny])
    not_a_bool: str | None = strawberry.field(resolver=_label_later, permission_classes=[NotABool])
    quiet: str | None = strawberry.field(resolver=_label_later, permission_classes=[Quiet])
    silent: str | None = strawberry.field(
        resolver=_label_later, extensions=[PermissionExtension([Deny()], fail_silently=True)]
    )

    @strawberry.field
    def with_argument(self, times: int = 2) -> str:
        return self.label * times


@strawberry.type
class NodeQuery:
    @strawberry.field
    def nodes(self) -> list[Node]:
        return NODES


NODES: list[Node] = []
DIRECT = {"plain", "withInfo", "later", "failing", "failingNonNull", "failingLater"}
DIRECT |= {"wrongType", "rooted", "parented", "constant"}
GUARDED = {"allowed", "allowedLater", "coded", "deniedNonNull", "notABool", "quiet"}
NODE_FIELDS = sorted(DIRECT | GUARDED | {"label", "guarded", "withArgument", "silent"})


def _chain(depth: int) -> Node | None:
    node = None
    for level in range(depth):
        node = Node(label=f"n{level}", child=node)
    return node


@st.composite
def selections(draw: st.DrawFn, depth: int = 0) -> str:
    """A selection set over `Node`: some of its fields, some aliased or asked twice, and its
    object fields (`child`, `later`) nested further."""
    names = draw(st.lists(st.sampled_from(NODE_FIELDS), min_size=1, max_size=6))
    parts = [
        f"{alias}: {name}" if (alias := draw(st.sampled_from(["", "a", "b"]))) else name
        for name in names
    ]
    if depth < 2:
        for object_field in draw(st.lists(st.sampled_from(["child", "later"]), max_size=2)):
            parts.append(f"{object_field} {{ {draw(selections(depth + 1))} }}")
    return " ".join(parts)


def _answer(schema: strawberry.Schema, query: str) -> tuple[str, list[tuple[Any, ...]]]:
    result = asyncio.run(schema.execute(query, context_value={"marker": "m"}))
    errors = sorted(
        (e.message, e.path, json.dumps(e.extensions, sort_keys=True)) for e in result.errors or []
    )
    return json.dumps(result.data), errors  # key order included


@given(
    selection=selections(),
    depths=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=3),
)
@settings(max_examples=150, deadline=None)
def test_direct_resolvers_answer_as_strawberrys_chain(selection: str, depths: list[int]) -> None:
    NODES[:] = [Node(label=f"top{i}", child=_chain(depth)) for i, depth in enumerate(depths)]
    query = f"{{ nodes {{ {selection} }} }}"
    direct = strawberry.Schema(query=NodeQuery)
    chained = strawberry.Schema(query=NodeQuery)
    install_direct_resolvers(direct)
    assert _answer(direct, query) == _answer(chained, query)


def test_only_fields_that_need_no_part_of_the_chain_get_a_direct_resolver() -> None:
    schema = strawberry.Schema(query=NodeQuery)
    node = schema._schema.type_map["Node"]
    assert isinstance(node, GraphQLObjectType)
    chain = {name: field.resolve for name, field in node.fields.items()}
    assert install_direct_resolvers(schema) == len(DIRECT) + len(GUARDED) + 1  # `Query.nodes`
    fields = node.fields
    replaced = {name for name, field in fields.items() if field.resolve is not chain[name]}
    # Not `guarded` (a permission on a sync field), `silent` (failing silently),
    # `withArgument`, plain attributes.
    assert replaced == DIRECT | GUARDED


def test_gql_chats_schema_installs_them() -> None:
    """Every field of gql_chat's schema with a direct resolver is one that Strawberry would
    have chained: a resolver function, no arguments, no extensions or only the permission
    check."""
    schema = build_schema()
    direct = guarded = 0
    for type_ in schema._schema.type_map.values():
        if not isinstance(type_, GraphQLObjectType):
            continue
        for field in type_.fields.values():
            resolver = getattr(field.resolve, "__qualname__", "")
            definition: Any = (field.extensions or {}).get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if resolver.startswith("_direct_resolver"):
                assert definition.base_resolver is not None
                assert not field.args
                assert not definition.extensions
                direct += 1
            elif resolver.startswith("_guarded_resolver"):
                assert definition.is_async
                assert not field.args
                [check] = definition.extensions
                assert isinstance(check, PermissionExtension)
                guarded += 1
    assert direct >= 10  # `Conversation.folder`, `Conversation.llmConfig`, `Message.content`...
    assert guarded >= 5  # `me`, `sessions`, `folders`...


def test_an_unchecked_strawberry_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strawberry_resolvers, "distribution_version", lambda name: "0.400.0")
    with pytest.raises(UnsupportedVersion, match=r"found .*strawberry-graphql 0\.400\.0"):
        strawberry_resolvers.require_supported_versions()


def test_a_strawberry_without_the_handler_lookup_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(GraphQLCoreConverter, "_get_field_exception_handlers")
    with pytest.raises(UnsupportedVersion, match="_get_field_exception_handlers"):
        strawberry_resolvers.require_supported_versions()
