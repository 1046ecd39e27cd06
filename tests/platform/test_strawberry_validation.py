"""Strawberry's validation step as `gql_chat.api.documents` runs it: Strawberry's own rules
included, and only on the Strawberry version it was checked against."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema, parse, specified_rules

from gql_chat.api.schema import build_schema
from gql_chat.platform import strawberry_validation
from gql_chat.platform.versions import UnsupportedVersion


def test_the_graphql_core_schema_is_the_one_strawberry_executes() -> None:
    schema = build_schema()
    core = strawberry_validation.graphql_core_schema(schema)
    assert isinstance(core, GraphQLSchema)
    assert core.query_type is not None
    assert "me" in core.query_type.fields


def test_documents_are_validated_with_the_rules_given() -> None:
    core = strawberry_validation.graphql_core_schema(build_schema())
    rules = tuple(specified_rules)
    assert strawberry_validation.validate_document(core, parse("{ me { id } }"), rules) == []
    (error,) = strawberry_validation.validate_document(core, parse("{ nope }"), rules)
    assert "nope" in error.message


def test_an_unchecked_strawberry_version_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(strawberry_validation, "distribution_version", lambda name: "0.342.0")
    with pytest.raises(UnsupportedVersion) as raised:
        strawberry_validation.require_supported_versions()
    message = str(raised.value)
    assert "gql_chat.platform.strawberry_validation" in message
    assert "strawberry-graphql 0.341.*" in message
    assert "found strawberry-graphql 0.342.0" in message
