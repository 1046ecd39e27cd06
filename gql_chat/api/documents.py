"""Parsing and validating a GraphQL document: the token limit, the depth, alias and
introspection rules, and an LRU cache for each step, all in one schema extension.

Why one extension: Strawberry instantiates every extension per operation and wraps each of its
hooks in a fresh context manager, a fixed cost per extension per request (six small ones were
about a fifth of a `me` request's server time). Why rules built once: Strawberry's
`QueryDepthLimiter` and `MaxAliasesLimiter` build a new rule class per instance, so a
validation cache keyed on the rules would never hit."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

from graphql import ASTValidationRule, parse
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.schema import validate_document

CACHE_SIZE = 512

cached_parse = lru_cache(maxsize=CACHE_SIZE)(parse)
cached_validate = lru_cache(maxsize=CACHE_SIZE)(validate_document)


@lru_cache(maxsize=16)
def limit_rules(
    max_depth: int, max_aliases: int, forbid_introspection: bool
) -> tuple[type[ASTValidationRule], ...]:
    rules: list[type[ASTValidationRule]] = [depth_rule(max_depth, None), aliases_rule(max_aliases)]
    if forbid_introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    return tuple(rules)


def document_checks(
    *, max_tokens: int, max_depth: int, max_aliases: int, forbid_introspection: bool
) -> type[SchemaExtension]:
    """An extension class, instantiated per operation, sharing the rules and the caches."""
    extra_rules = limit_rules(max_depth, max_aliases, forbid_introspection)

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
