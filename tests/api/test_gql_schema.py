"""The schema class runs its own stages only, and allows every operation type when called
without the allowed ones, as Strawberry's `execute` does."""

from __future__ import annotations

import pytest
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from gql_chat.api.documents import DocumentChecks
from gql_chat.api.gql_schema import GqlChatSchema
from gql_chat.api.schema import Mutation, Query, build_schema


def test_other_extensions_are_refused() -> None:
    """`execute` would not run them: refusing at construction keeps that from passing quietly."""
    checks = DocumentChecks(
        max_tokens=100,
        max_depth=5,
        max_aliases=5,
        max_fragment_spreads=5,
        forbid_introspection=True,
    )
    with pytest.raises(ValueError, match="no extensions or directives"):
        GqlChatSchema(query=Query, mutation=Mutation, stages=checks, extensions=[SchemaExtension])


async def test_execute_allows_every_operation_type_unless_told() -> None:
    schema = build_schema()
    assert (await schema.execute("mutation { __typename }")).data == {"__typename": "Mutation"}
    with pytest.raises(InvalidOperationTypeError):
        await schema.execute(
            "mutation { __typename }", allowed_operation_types={OperationType.QUERY}
        )
