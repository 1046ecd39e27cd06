"""Parsing and validating a GraphQL document: the size and token limits, the depth, alias,
fragment-spread and selection limits, the introspection rule, and one bounded cache of parsed and
validated documents, as two plain stages (`platform/strawberry_execute.py` says why they are
not schema extensions). Why the limits are not validation rules: they must run before
graphql-core's rules and cost time linear in the document whatever its fragments do (see
`api/document_limits.py`); Strawberry's depth and alias rules walked a fragment again at every
spread (2^n for fragments spreading the next one twice).

Why the cache is weighed: a parsed document costs far more memory than its text (about 560
bytes per token: a 10 KB document of 5,000 tokens is 2.8 MB of AST), and a document of one long
comment or string literal is one token of any size. Two LRU caches of 512 entries each could
therefore be made to pin gigabytes by unauthenticated requests varying a comment. The cache
now holds a document's AST and its validation result in one entry, weighs each entry by its
text and its token count, and keeps the total weight under `CACHE_BYTES`; documents of more
than `CACHEABLE_CHARS` characters are parsed and validated every time, never cached. A
document larger than the document size limit is refused before it is parsed."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.types import ExecutionContext

from gql_chat.api.context import start_response_budget
from gql_chat.api.document_limits import DocumentCost, Limits, analyse, limit_errors
from gql_chat.api.errors import with_code
from gql_chat.config import Settings
from gql_chat.platform.strawberry_validation import graphql_core_schema, validate_document

CACHE_SIZE = 512  # entries
CACHE_BYTES = 32 * 1024 * 1024  # estimated memory of the cached ASTs and texts together
CACHEABLE_CHARS = 16 * 1024  # larger documents are never cached
BYTES_PER_TOKEN = 600  # measured: 554-560 bytes of AST (nodes, locations, tokens) per token
# Measured: about 285 bytes per selection after expanding fragments, of what executing the
# document leaves in the executor's memo of it (`platform/graphql_executor`), for as long as it
# lives; a fragment of m fields spread under s fields is s x m selections from s + m tokens.
BYTES_PER_SELECTION = 320
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
# Apollo Server's code for an operation that cannot be chosen (GraphQL spec, GetOperation: a
# document of several operations needs `operationName`; Strawberry would run the first).
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"


def coded(error: GraphQLError) -> GraphQLError:
    """A validation error with the code clients match on (Apollo's), unless it has one."""
    if "code" in (error.extensions or {}):
        return error
    return with_code(error, VALIDATION_FAILED)


def parse_failed(error: GraphQLError) -> GraphQLError:
    """A syntax error (or too many tokens) with Apollo's code."""
    return with_code(error, PARSE_FAILED)


def validated(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: tuple[type[ASTValidationRule], ...],
    limits: Limits,
    cost: DocumentCost,
) -> list[GraphQLError]:
    """The limits first; graphql-core's rules only for a document within them."""
    errors = limit_errors(document, limits, cost) or validate_document(schema, document, rules)
    return [coded(error) for error in errors]


def document_size(query: str, limit: int) -> int | None:
    """The document's size in UTF-8 bytes when it is over `limit`, else None. Cheap for the
    usual document: its characters are counted, and encoded only when they could be over."""
    if len(query) * 4 <= limit:
        return None
    if len(query) > limit:
        return len(query.encode("utf-8", "surrogatepass"))
    size = len(query.encode("utf-8", "surrogatepass"))
    return size if size > limit else None


def too_large(size: int, limit: int) -> GraphQLError:
    return GraphQLError(
        f"The GraphQL document is {size} bytes; at most {limit} are accepted. Send large values"
        " (such as message text) as variables.",
        extensions={"code": PARSE_FAILED},
    )


def _weight(query: str, document: DocumentNode, cost: DocumentCost) -> int:
    """Estimated memory of a parsed document: its text, its AST by its token count, and what
    executing it leaves in the executor's memo by its selections after expanding fragments."""
    tokens = 0
    token = document.loc.start_token if document.loc else None
    while token is not None:
        tokens += 1
        token = token.next
    return len(query) + BYTES_PER_TOKEN * tokens + BYTES_PER_SELECTION * cost.selections


@dataclass(slots=True)
class Entry:
    document: DocumentNode
    weight: int
    operations: int
    cost: DocumentCost
    rules: tuple[type[ASTValidationRule], ...] | None = None
    errors: list[GraphQLError] | None = None


class DocumentCache:
    """An LRU cache of parsed (and validated) documents by their text, bounded in entries and
    in estimated bytes."""

    def __init__(self, max_entries: int = CACHE_SIZE, max_bytes: int = CACHE_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.weight = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, query: str) -> Entry | None:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
        return entry

    def add(self, query: str, entry: Entry) -> None:
        if len(query) > CACHEABLE_CHARS or entry.weight > self.max_bytes // 16:
            return
        previous = self._entries.pop(query, None)
        if previous is not None:
            self.weight -= previous.weight
        self._entries[query] = entry
        self.weight += entry.weight
        while len(self._entries) > self.max_entries or self.weight > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.weight -= evicted.weight

    def clear(self) -> None:
        self._entries.clear()
        self.weight = 0


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The limits read from the app's settings (bound on first use)."""

    limits: Limits
    max_document_bytes: int
    max_response_bytes: int


class DocumentChecks:
    """The parse and validation stages (`platform/strawberry_execute.DocumentStages`) with the
    limits and this schema's cache, keyed by the document's text: a repeated document costs a
    lookup; a varied one costs linear time. A limit left None is the app's setting, read from the
    request context on first use (the schema and its app share one `Settings`)."""

    def __init__(
        self,
        *,
        max_tokens: int,
        max_depth: int,
        max_aliases: int,
        max_fragment_spreads: int,
        forbid_introspection: bool,
        max_selections: int | None = None,
        max_repeated_fields: int | None = None,
        max_document_bytes: int | None = None,
    ) -> None:
        self.max_tokens = max_tokens
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.max_fragment_spreads = max_fragment_spreads
        self.max_selections = max_selections
        self.max_repeated_fields = max_repeated_fields
        self.max_document_bytes = max_document_bytes
        self.extra_rules: tuple[type[ASTValidationRule], ...] = (
            (NoSchemaIntrospectionCustomRule,) if forbid_introspection else ()
        )
        self.cache = DocumentCache()
        self._bound: RequestLimits | None = None

    def _limits(self, context: Any) -> RequestLimits:
        if self._bound is not None:
            return self._bound
        settings = getattr(getattr(context, "services", None), "settings", None)
        if not isinstance(settings, Settings):
            settings = Settings.model_construct()

        def setting(value: int | None, default: int) -> int:
            return value if value is not None else default

        self._bound = RequestLimits(
            Limits(
                self.max_depth,
                self.max_aliases,
                self.max_fragment_spreads,
                setting(self.max_selections, settings.max_selections),
                setting(self.max_repeated_fields, settings.max_repeated_fields),
            ),
            setting(self.max_document_bytes, settings.max_document_bytes),
            settings.max_response_bytes,
        )
        return self._bound

    def parse(self, context: ExecutionContext) -> Entry:
        """The cached or newly parsed document (`context.graphql_document`), or a GraphQLError:
        too large, not parsable, or several operations and no `operationName`."""
        query = context.query
        assert query is not None
        request_limits = self._limits(context.context)
        start_response_budget(request_limits.max_response_bytes)
        entry = self.cache.get(query)
        if entry is None:
            size = document_size(query, request_limits.max_document_bytes)
            if size is not None:
                raise too_large(size, request_limits.max_document_bytes)
            try:
                document = parse(query, max_tokens=self.max_tokens)
            except GraphQLError as exc:
                raise parse_failed(exc) from None
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            cost = analyse(document)  # once: the weight here, the limits at validation
            entry = Entry(document, _weight(query, document, cost), operations, cost)
            self.cache.add(query, entry)
        if entry.operations > 1 and context.operation_name is None:
            raise GraphQLError(
                "Must provide operation name if query contains multiple operations.",
                extensions={"code": OPERATION_RESOLUTION_FAILURE},
            )
        context.graphql_document = entry.document
        return entry

    def validate(self, context: ExecutionContext, entry: Entry) -> None:
        """The document's errors as `context.pre_execution_errors` (empty when valid), validated
        once per set of rules."""
        assert context.graphql_document is entry.document
        rules = (*context.validation_rules, *self.extra_rules)
        if entry.rules != rules or entry.errors is None:
            entry.errors = validated(
                graphql_core_schema(context.schema),
                entry.document,
                rules,
                self._limits(context.context).limits,
                entry.cost,
            )
            entry.rules = rules
        context.pre_execution_errors = entry.errors
