"""Strawberry's validation step, for `gql_chat.api.documents`, which runs it itself (before it,
our document limits; around it, one cache of parsed and validated documents).

It does what Strawberry's own `ValidationCache` extension does, with the same two internals:
`strawberry.schema.schema.validate_document` (undocumented: graphql-core's `validate` plus
Strawberry's `MaybeNullValidationRule` and `OneOfInputValidationRule`, which graphql-core's
public `validate` alone would skip) and the Strawberry schema's private `_schema` (its
graphql-core schema; Strawberry has no public accessor). `require_supported_versions` stops
start-up on a Strawberry version this was not checked against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema
from strawberry.schema.schema import validate_document as _strawberry_validate_document

from gql_chat.platform.versions import (
    UnsupportedVersion,
    distribution_version,
    require_versions,
)

if TYPE_CHECKING:
    from strawberry.schema import Schema

SUPPORTED_STRAWBERRY = ("0.341.",)
"""The Strawberry versions whose validation internals this module was checked against."""


def require_supported_versions() -> None:
    """Stop start-up when Strawberry is a version this module was not checked against."""
    require_versions(
        __name__,
        {"strawberry-graphql": SUPPORTED_STRAWBERRY},
        {"strawberry-graphql": distribution_version("strawberry-graphql")},
    )
    if not callable(_strawberry_validate_document):
        raise UnsupportedVersion("strawberry.schema.schema has no validate_document()")


def validate_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
) -> list[GraphQLError]:
    """Validate as Strawberry does: `rules` plus Strawberry's own rules."""
    return _strawberry_validate_document(schema, document, rules)


def graphql_core_schema(schema: Schema) -> GraphQLSchema:
    """The graphql-core schema under a Strawberry schema."""
    return schema._schema
