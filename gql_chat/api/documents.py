"""Parsing and validating a GraphQL document: the token limit, the depth, alias and
fragment-spread limits, the introspection rule, and an LRU cache for each step, all in one
schema extension.

Why one extension: Strawberry instantiates every extension per operation and wraps each of its
hooks in a fresh context manager, a fixed cost per extension per request (six small ones were
about a fifth of a `me` request's server time). Why the limits are not validation rules: they
must run before graphql-core's rules and cost time linear in the document whatever its
fragments do (see `api/document_limits.py`); Strawberry's depth and alias rules walked a
fragment again at every spread (2^n for fragments spreading the next one twice)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from graphql import ASTValidationRule, DocumentNode, GraphQLError, GraphQLSchema, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from gql_chat.api.document_limits import Limits, limit_errors

CACHE_SIZE = 512
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"

cached_parse = lru_cache(maxsize=CACHE_SIZE)(parse)


def coded(error: GraphQLError) -> GraphQLError:
    """A validation error with the code clients match on (Apollo's), unless it has one."""
    if "code" in (error.extensions or {}):
        return error
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        {**(error.extensions or {}), "code": VALIDATION_FAILED},
    )


def validated(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    limits: Limits,
) -> list[GraphQLError]:
    """The limits first; graphql-core's rules only for a document within them."""
    errors = limit_errors(document, limits) or validate_document(schema, document, rules)
    return [coded(error) for error in errors]


def document_checks(
    *,
    max_tokens: int,
    max_depth: int,
    max_aliases: int,
    max_fragment_spreads: int,
    forbid_introspection: bool,
) -> type[SchemaExtension]:
    """An extension class, instantiated per operation, sharing the limits and the caches.
    The validation cache is this schema's, keyed as before (the limits are bound, not part of
    the key): a repeated document costs what it did; a varied one costs linear time."""
    limits = Limits(max_depth, max_aliases, max_fragment_spreads)
    extra_rules: tuple[type[ASTValidationRule], ...] = (
        (NoSchemaIntrospectionCustomRule,) if forbid_introspection else ()
    )

    @lru_cache(maxsize=CACHE_SIZE)
    def cached_validate(
        schema: GraphQLSchema, document: DocumentNode, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        return validated(schema, document, rules, limits)

    class DocumentChecks(SchemaExtension):
        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            context.graphql_document = cached_parse(context.query, max_tokens=max_tokens)
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            assert context.graphql_document is not None
            context.pre_execution_errors = cached_validate(
                context.schema._schema,
                context.graphql_document,
                (*context.validation_rules, *extra_rules),
            )
            yield

    return DocumentChecks
