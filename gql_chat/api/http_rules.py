"""GraphQL over HTTP rules applied before execution: content negotiation, the request content
type, and CSRF prevention."""

from __future__ import annotations

from functools import lru_cache

from starlette.requests import Request

HEADER_VALUES_REMEMBERED = 256
"""Distinct `Accept` and `Content-Type` values whose answers are kept: clients send a few, each
on every request, and parsing them again cost more than the rest of the view's checks."""

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
HTML = "text/html"
MULTIPART = "multipart/form-data"
UNSUPPORTED_MEDIA_TYPE_MESSAGE = (
    "Unsupported Media Type: send the GraphQL request as 'Content-Type: application/json' "
    "(optionally with 'charset=utf-8')."
)

# Apollo Server's CSRF rule: browsers send these content types (or none) without a CORS
# preflight, so such requests must prove they are not cross-site with a header that forces one.
SIMPLE_CONTENT_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", MULTIPART})
PREFLIGHT_HEADERS = ("x-apollo-operation-name", "apollo-require-preflight")
CSRF_MESSAGE = (
    "This operation has been blocked as a potential Cross-Site Request Forgery (CSRF). Send a "
    "'Content-Type: application/json' header, or a non-empty 'Apollo-Require-Preflight' or "
    "'X-Apollo-Operation-Name' header."
)


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    ranges = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        quality = 1.0
        for parameter in pieces[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((pieces[0].lower(), quality))
    return ranges


def media_type(content_type: str | None) -> str:
    """A `Content-Type` header's media type, lower-cased, without parameters ("" if absent)."""
    return (content_type or "").partition(";")[0].strip().lower()


@lru_cache(maxsize=HEADER_VALUES_REMEMBERED)
def is_json_content_type(content_type: str | None) -> bool:
    """`application/json` (any case), with at most a `charset=utf-8` parameter (any case,
    optionally quoted): the only body we decode as JSON. RFC 9110 syntax: whitespace around `;`,
    none around `=`. Anything else (`application/jsonx`, `charset=utf-7`) is not JSON to us."""
    if content_type is None:
        return False
    media, *parameters = content_type.split(";")
    if media.strip().lower() != JSON:
        return False
    charsets = 0
    for parameter in (p.strip() for p in parameters):
        if not parameter:
            continue  # RFC 9110 allows empty parameters ("application/json;")
        name, _, value = parameter.partition("=")
        if name.lower() != "charset" or value.lower() not in ("utf-8", '"utf-8"'):
            return False
        charsets += 1
    return charsets <= 1


def is_supported_post(content_type: str | None) -> bool:
    """JSON, or multipart (which Strawberry's own parser answers as before)."""
    return is_json_content_type(content_type) or media_type(content_type) == MULTIPART


@lru_cache(maxsize=HEADER_VALUES_REMEMBERED)
def negotiate(accept: str | None) -> str | None:
    """The response media type for an `Accept` header; None when we can offer nothing it takes.

    No header, `*/*` or `application/*` keep the legacy `application/json` (what most clients
    expect); `application/graphql-response+json` is used when asked for at least as strongly."""
    if not accept:
        return JSON
    best: dict[str, float] = {}
    for media, quality in _media_ranges(accept):
        if quality <= 0:
            continue
        if media == GRAPHQL_RESPONSE_JSON:
            best[GRAPHQL_RESPONSE_JSON] = max(best.get(GRAPHQL_RESPONSE_JSON, 0), quality)
        elif media in (JSON, "application/*", "*/*"):
            best[JSON] = max(best.get(JSON, 0), quality)
    if not best:
        return None
    if best.get(GRAPHQL_RESPONSE_JSON, 0) >= best.get(JSON, 0):
        return GRAPHQL_RESPONSE_JSON
    return JSON


def accepts_html(request: Request) -> bool:
    return any(
        media in (HTML, "*/*")
        for media, q in _media_ranges(request.headers.get("accept", ""))
        if q > 0
    )


def is_csrf_suspect(request: Request) -> bool:
    """True for a POST a browser could send cross-site without a preflight.

    A forged request rides on credentials the browser adds by itself (cookies, HTTP auth). We
    take none: a user is known by the `Authorization: Bearer` header alone, which a browser never
    adds on its own, so a cross-site request runs as nobody. A GET runs queries only (a mutation
    over GET is 405, a subscription is refused), which change nothing, and its response is read
    cross-site only where CORS allows. So GET needs no proof: urql's default GET queries work.
    A simple POST still does: as nobody it could still `register` or `login` (login CSRF, sign-
    ups from visitors' addresses)."""
    if request.method == "GET":
        return False
    content_type = request.headers.get("content-type")
    if content_type is not None and media_type(content_type) not in SIMPLE_CONTENT_TYPES:
        return False
    return not any(request.headers.get(header) for header in PREFLIGHT_HEADERS)
