"""The explorer page itself: pinned assets with SRI, the configurable assets URL, and a CSP
that allows exactly what the page needs."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from gql_chat.api.graphiql import SCRIPTS
from gql_chat.app import create_app
from gql_chat.config import Settings
from tests.conftest import serve


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
