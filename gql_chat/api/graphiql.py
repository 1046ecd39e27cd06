"""The GraphiQL explorer page, made for this API: an Authorization header template, the header
forwarded as the websocket `connection_init` payload (so subscriptions work), a starter tab, pinned
assets with subresource integrity, and a Content-Security-Policy that allows exactly those."""

from __future__ import annotations

import html
import json
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse

DEFAULT_ASSETS_URL = "https://unpkg.com"


@dataclass(frozen=True, slots=True)
class Asset:
    package: str
    version: str
    path: str
    integrity: str

    def url(self, base: str) -> str:
        """unpkg-style `{base}/{package}@{version}/{path}`, or a node_modules-style
        `{base}/{package}/{path}` for self-hosted copies."""
        if base.rstrip("/") == DEFAULT_ASSETS_URL:
            return f"{DEFAULT_ASSETS_URL}/{self.package}@{self.version}/{self.path}"
        return f"{base.rstrip('/')}/{self.package}/{self.path}"


# Hashes of the npm packages' files, which unpkg serves byte for byte.
REACT = Asset(
    "react",
    "18.3.1",
    "umd/react.production.min.js",
    "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
)
REACT_DOM = Asset(
    "react-dom",
    "18.3.1",
    "umd/react-dom.production.min.js",
    "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
)
GRAPHQL_WS = Asset(
    "graphql-ws",
    "5.16.2",
    "umd/graphql-ws.min.js",
    "sha384-+EVxFEOpy8LWPRQcpntm0FKN2O+BzrMNSL0G3HIgVWFmeb6xqZqjuLivrQUTXZKi",
)
GRAPHIQL_JS = Asset(
    "graphiql",
    "3.8.3",
    "graphiql.min.js",
    "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
)
GRAPHIQL_CSS = Asset(
    "graphiql",
    "3.8.3",
    "graphiql.min.css",
    "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
)
SCRIPTS = (REACT, REACT_DOM, GRAPHQL_WS, GRAPHIQL_JS)

STARTER_QUERY = """# Welcome to gql_chat. Run the operations top to bottom: put the cursor in one
# and press ▶ (or Ctrl-Enter).
#
# 1. Register (or Login). Copy `accessToken` into the Headers tab below:
#      {"Authorization": "Bearer <accessToken>"}
mutation Register {
  register(input: {email: "you@example.com", password: "a long password"}) {
    accessToken
    user { id email }
  }
}

mutation Login {
  login(input: {email: "you@example.com", password: "a long password"}) {
    accessToken
    refreshToken
  }
}

query Me {
  me { id email displayName }
}

# 2. Send a message. Copy `assistantMessage.id` into the Variables tab as "id".
mutation Send {
  sendMessage(input: {content: "Hello! What can you do?"}) {
    conversation { id title }
    assistantMessage { id status }
  }
}

# 3. Watch the reply stream in (over the websocket, with your Authorization header).
subscription Follow($id: ID!) {
  messageStream(messageId: $id, afterSeq: 0) {
    seq
    delta
    status
    done
    message { content usage { totalTokens cost } }
  }
}
"""
STARTER_VARIABLES = '{\n  "id": "paste assistantMessage.id here"\n}'
STARTER_HEADERS = '{\n  "Authorization": "Bearer "\n}'

# The fetcher: HTTP for queries and mutations (GraphiQL's own), and graphql-ws for subscriptions,
# with a client per Authorization value, so the header editor's token authenticates the socket.
PAGE_SCRIPT = (Path(__file__).parent / "graphiql.js").read_text()


def _script_tag(asset: Asset, base: str) -> str:
    return (
        f'<script src="{html.escape(asset.url(base))}" integrity="{asset.integrity}" '
        'crossorigin="anonymous"></script>'
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "'self'"


CSP_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?(?::[0-9]{1,5})?")
"""A host and optional port as a CSP source expression may spell them (letters, digits and
hyphens in dot-separated labels): the Host header is the client's, and anything else in it
(a space, a `;`, a quote) would add to or end the directive."""


def websocket_source(host: str, secure: bool) -> str:
    """The page's own websocket origin for `connect-src`, or nothing when the Host header is
    not a plain host[:port] (an IPv6 literal, or an injection attempt): CSP Level 3 browsers
    match same-origin ws:/wss: with 'self' anyway; the explicit source is for older ones."""
    if not CSP_HOST.fullmatch(host):
        return ""
    return f" {'wss' if secure else 'ws'}://{host}"


def content_security_policy(assets_url: str, nonce: str, host: str, secure: bool) -> str:
    assets = _origin(assets_url)
    websocket = websocket_source(host, secure)
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {assets} 'nonce-{nonce}'",
            # GraphiQL and CodeMirror set inline styles.
            f"style-src {assets} 'unsafe-inline'",
            f"font-src {assets} data:",
            "img-src 'self' data:",
            f"connect-src 'self'{websocket}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def render_graphiql(request: Request, assets_url: str) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    config = json.dumps(
        {
            "path": request.url.path,
            "assetsUrl": assets_url,
            "query": STARTER_QUERY,
            "variables": STARTER_VARIABLES,
            "headers": STARTER_HEADERS,
        }
    ).replace("</", "<\\/")
    scripts = "\n    ".join(_script_tag(asset, assets_url) for asset in SCRIPTS)
    page = f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>gql_chat · GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{html.escape(GRAPHIQL_CSS.url(assets_url))}"
          integrity="{GRAPHIQL_CSS.integrity}" crossorigin="anonymous">
    <style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
  </head>
  <body>
    <div id="graphiql">Loading the GraphiQL explorer…</div>
    {scripts}
    <script type="application/json" id="gql-chat-config">{config}</script>
    <script nonce="{nonce}">{PAGE_SCRIPT}</script>
  </body>
</html>
"""
    policy = content_security_policy(
        assets_url,
        nonce,
        request.headers.get("host", request.url.netloc),
        request.url.scheme == "https",
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": policy})
