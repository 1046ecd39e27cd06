"""The explorer page itself: pinned assets with SRI, the configurable assets URL, and a CSP
that allows exactly what the page needs."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import httpx
import pytest

from gql_chat.api.graphiql import SCRIPTS
from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import LiveServer, serve


async def explorer(settings: Settings) -> httpx.Response:
    app = create_app(settings)
    async with serve(app, base_url="http://chat.example") as http:
        return await http.get("/graphql", headers={"Accept": "text/html"})


async def test_cdn_assets_are_pinned_with_integrity(
    settings_factory: Callable[..., Settings],
) -> None:
    page = await explorer(settings_factory())
    assert page.status_code == 200
    for asset in SCRIPTS:
        tag = f'src="https://unpkg.com/{asset.package}@{asset.version}/{asset.path}" integrity="{asset.integrity}"'
        assert tag in page.text
    assert 'integrity="sha384-' in page.text.split("graphiql.min.css")[1][:200]
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None
    assert f'<script nonce="{nonce.group(1)}">' in page.text
    assert "script-src https://unpkg.com 'nonce-" in policy
    assert "connect-src 'self' ws://chat.example" in policy
    assert "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert '"Authorization": "Bearer "' in page.text.replace("\\n", "\n").replace('\\"', '"')


async def test_self_hosted_assets(settings_factory: Callable[..., Settings]) -> None:
    page = await explorer(settings_factory(graphiql_assets_url="https://assets.internal/npm/"))
    assert 'src="https://assets.internal/npm/graphiql/graphiql.min.js"' in page.text
    assert "unpkg" not in page.text
    assert "script-src https://assets.internal 'nonce-" in page.headers["content-security-policy"]


async def policy_for_host(server: LiveServer, host: bytes) -> str:
    """The explorer's CSP when the request's Host header is `host` (raw: clients refuse
    to send most of these)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(
            b"GET /graphql HTTP/1.1\r\nHost: " + host + b"\r\nAccept: text/html\r\n"
            b"Connection: close\r\n\r\n"
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1")
    finally:
        writer.close()
    assert head.startswith("HTTP/1.1 200 "), head
    policies = [
        line.partition(":")[2].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("content-security-policy:")
    ]
    assert len(policies) == 1
    return policies[0]


@pytest.mark.parametrize(
    "host",
    [
        b"a b; script-src *",
        b"chat.example; script-src *",
        b"chat.example 'unsafe-inline'",
        b"chat.example,evil.example",
        b"chat.example/path",
        b"'self'",
        b"[::1]:8000",
        b"",
    ],
)
async def test_a_host_header_cannot_inject_into_the_policy(
    live_server: LiveServer, host: bytes
) -> None:
    policy = await policy_for_host(live_server, host)
    directives = [directive.strip() for directive in policy.split(";")]
    names = [directive.split(" ")[0] for directive in directives]
    assert len(names) == len(set(names)), policy  # no directive added or repeated
    assert "connect-src 'self'" in directives  # and nothing else: no websocket source
    assert "*" not in policy


@pytest.mark.parametrize("host", [b"chat.example", b"chat.example:8443", b"127.0.0.1:8000"])
async def test_a_plain_host_is_the_websocket_source(live_server: LiveServer, host: bytes) -> None:
    policy = await policy_for_host(live_server, host)
    assert f"connect-src 'self' ws://{host.decode()};" in policy
